//! Storm control: at most `concurrency` requests run their handlers at once;
//! up to `queue` more wait, in arrival order, for a slot to free; only a
//! request that finds the queue full is answered 503 at once, with a
//! `Retry-After` from the measured drain rate (how many requests finished per
//! second lately), so a fleet restarting together is served as fast as the
//! service can rather than shed and retried blindly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many recent completions the drain rate is measured over.
const WINDOW: usize = 256;
/// Completions older than this do not count: the rate is the current one.
const HORIZON: Duration = Duration::from_secs(10);
/// The longest wait a 503 asks for: half of agent-init's default 60 s
/// deadline, so a client told to wait still has time to come back.
pub const MAX_RETRY_AFTER: u64 = 30;
/// How many of the newest completions the drain rate is measured over.
const RATE_SAMPLE: usize = 64;
/// With no measured rate, the time one request is assumed to hold a slot.
const ASSUMED_SLOT_TIME: Duration = Duration::from_millis(100);
/// Two completions further apart than this were not one busy stretch: the
/// service was idle between them, and that gap says nothing about its rate.
const IDLE_GAP: Duration = Duration::from_secs(1);
/// Fewer completions than this in the current busy stretch are no rate yet.
const MIN_SAMPLE: usize = 8;

/// The gate in front of the handlers.
pub struct Gate {
    slots: std::sync::Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
    done: Mutex<VecDeque<Instant>>,
    /// When the requests already sent away are expected back: each 503 books
    /// the next free moment at the drain rate, so a fleet told to wait is
    /// spread over the time the service needs to serve it, not sent back as
    /// one wave that overflows the queue again.
    booked: Mutex<Option<Instant>>,
}

/// A slot held while a handler runs; freeing it counts one completion.
pub struct Pass<'a> {
    gate: &'a Gate,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut done = self.gate.done.lock().unwrap_or_else(|p| p.into_inner());
        if done.len() == WINDOW {
            done.pop_front();
        }
        done.push_back(now);
    }
}

/// Decrements the waiting count however the wait ends (a slot, or the
/// connection going away while queued).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(concurrency: usize, queue: usize) -> Gate {
        let concurrency = concurrency.max(1);
        Gate {
            slots: std::sync::Arc::new(Semaphore::new(concurrency)),
            concurrency,
            queue,
            waiting: AtomicUsize::new(0),
            done: Mutex::new(VecDeque::with_capacity(WINDOW)),
            booked: Mutex::new(None),
        }
    }

    /// Waits for a slot; `Err(seconds)` when the queue is full, the
    /// `Retry-After` to send.
    pub async fn enter(&self) -> Result<Pass<'_>, u64> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Pass {
                gate: self,
                _permit: permit,
            });
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let guard = Waiting(&self.waiting);
        if ahead >= self.queue {
            drop(guard);
            return Err(self.retry_after(ahead));
        }
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the gate's semaphore is never closed");
        drop(guard);
        Ok(Pass {
            gate: self,
            _permit: permit,
        })
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Seconds until this request's turn: the `ahead` queued requests, the
    /// ones running and the ones already sent away drained at the measured
    /// rate; rounded up, within [1, MAX_RETRY_AFTER].
    fn retry_after(&self, ahead: usize) -> u64 {
        let now = Instant::now();
        let rate = self.drain_rate(now);
        let mut booked = self.booked.lock().unwrap_or_else(|p| p.into_inner());
        let (seconds, next) = book(
            *booked,
            now,
            ahead + self.concurrency,
            self.concurrency,
            rate,
        );
        *booked = Some(next);
        seconds
    }

    /// Completions per second while the service was busy: over the last
    /// [`RATE_SAMPLE`] completions within [`HORIZON`], from the first of them
    /// to the last. Idle time before a storm is not in that span, so the first
    /// 503s of a storm do not see a near-zero rate (they did: 60 s waits that
    /// outlived agent-init's deadline). `None` with fewer than two.
    pub fn drain_rate(&self, now: Instant) -> Option<f64> {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let recent: Vec<Instant> = done
            .iter()
            .rev()
            .take(RATE_SAMPLE)
            .filter(|t| now.duration_since(**t) <= HORIZON)
            .copied()
            .collect();
        rate_of(&recent)
    }
}

/// Completions per second of `recent` (newest first), over the current busy
/// stretch only: the sample ends at the first gap over [`IDLE_GAP`], and
/// fewer than [`MIN_SAMPLE`] completions are no rate. (A storm's first 503s
/// saw the request that created the token seconds before, one interval of
/// idle time, as the rate: 0.3 per second, and were told to wait 30 s.)
fn rate_of(recent: &[Instant]) -> Option<f64> {
    let busy = 1 + recent
        .windows(2)
        .take_while(|w| w[0].duration_since(w[1]) <= IDLE_GAP)
        .count();
    let recent = &recent[..busy.min(recent.len())];
    let (newest, oldest) = (recent.first()?, recent.last()?);
    let span = newest.duration_since(*oldest);
    if recent.len() < MIN_SAMPLE || span.is_zero() {
        return None;
    }
    Some((recent.len() - 1) as f64 / span.as_secs_f64())
}

/// One 503's wait, and the new booking: this request's turn comes after the
/// `pending` requests ahead of it have drained, and after every request sent
/// away before it (`booked`, when the last of them is due back), one
/// interval of the drain rate apart. Returns (seconds, rounded up, within
/// [1, MAX_RETRY_AFTER]; the instant this request is due).
pub fn book(
    booked: Option<Instant>,
    now: Instant,
    pending: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> (u64, Instant) {
    let rate = effective_rate(concurrency, rate);
    let drained = now + Duration::from_secs_f64(pending as f64 / rate);
    let due = booked.map_or(drained, |b| b.max(drained)) + Duration::from_secs_f64(1.0 / rate);
    let cap = now + Duration::from_secs(MAX_RETRY_AFTER);
    let due = due.min(cap);
    let seconds = due.duration_since(now).as_secs_f64().ceil() as u64;
    (seconds.clamp(1, MAX_RETRY_AFTER), due)
}

fn effective_rate(concurrency: usize, rate: Option<f64>) -> f64 {
    match rate {
        Some(r) if r > 0.0 && r.is_finite() => r,
        _ => concurrency.max(1) as f64 / ASSUMED_SLOT_TIME.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(pending: usize, rate: Option<f64>) -> u64 {
        book(None, Instant::now(), pending, 8, rate).0
    }

    #[test]
    fn retry_after_is_the_time_to_drain_the_queue_at_the_measured_rate() {
        // (pending + this one) / rate, rounded up.
        assert_eq!(wait(999, Some(500.0)), 2);
        assert_eq!(wait(1000, Some(500.0)), 3);
        assert_eq!(wait(3, Some(500.0)), 1);
        assert_eq!(wait(1_000_000, Some(10.0)), MAX_RETRY_AFTER);
        // No rate yet: 100 ms per request per slot (72 pending on 8 slots).
        assert_eq!(wait(72, None), 1);
        assert_eq!(wait(799, None), 10);
    }

    #[test]
    fn requests_sent_away_are_booked_one_after_another_at_the_drain_rate() {
        let now = Instant::now();
        let mut booked = None;
        let mut bands = std::collections::BTreeMap::new();
        let mut last = 0;
        for _ in 0..1000 {
            let (s, due) = book(booked, now, 72, 8, Some(200.0));
            booked = Some(due);
            assert!(s >= last, "a later 503 is never told an earlier time");
            last = s;
            *bands.entry(s).or_insert(0) += 1;
        }
        // 1000 requests at 200 per second, after 72 ahead: due over 5.4 s,
        // at most 200 of them in any one second.
        assert_eq!(last, 6);
        assert!(bands.values().all(|&n| n <= 200), "{bands:?}");
        // A booking in the past (an old storm) does not delay a new one.
        let (s, _) = book(Some(now), now + Duration::from_secs(60), 72, 8, Some(200.0));
        assert_eq!(s, 1);
        // Never past the cap.
        let (s, due) = book(Some(now + Duration::from_secs(40)), now, 72, 8, Some(200.0));
        assert_eq!(
            (s, due),
            (MAX_RETRY_AFTER, now + Duration::from_secs(MAX_RETRY_AFTER))
        );
    }

    #[test]
    fn a_lone_request_before_a_storm_is_no_drain_rate() {
        let t0 = Instant::now();
        // The token was created 3 s before the storm's first completion: one
        // interval of idle time, not a rate of 0.33 per second.
        let recent = [t0 + Duration::from_secs(3), t0];
        assert_eq!(rate_of(&recent), None);
        // Seven quick completions after it: still too few to be a rate.
        let mut recent: Vec<Instant> = (0..7)
            .rev()
            .map(|i| t0 + Duration::from_secs(3) + Duration::from_millis(i))
            .collect();
        recent.push(t0);
        assert_eq!(rate_of(&recent), None);
        // Eight are: 7 intervals over 7 ms, the gap before them left out.
        recent.insert(0, t0 + Duration::from_secs(3) + Duration::from_millis(7));
        let rate = rate_of(&recent).unwrap();
        assert!((900.0..1100.0).contains(&rate), "{rate}");
    }

    #[test]
    fn idle_time_before_a_storm_does_not_lower_the_measured_rate() {
        let t0 = Instant::now();
        // One request 9 s ago, then 64 completions 1 ms apart just now.
        let mut done: Vec<Instant> = (0..64)
            .map(|i| t0 + Duration::from_secs(9) + Duration::from_millis(i))
            .collect();
        done.insert(0, t0);
        let recent: Vec<Instant> = done.iter().rev().take(RATE_SAMPLE).copied().collect();
        let rate = rate_of(&recent).unwrap();
        assert!((900.0..1100.0).contains(&rate), "{rate}");
        // The same through the gate's own window.
        let gate = Gate::new(8, 64);
        gate.done.lock().unwrap().extend(done.iter().copied());
        let now = t0 + Duration::from_secs(9) + Duration::from_millis(64);
        let rate = gate.drain_rate(now).unwrap();
        assert!((900.0..1100.0).contains(&rate), "{rate}");
    }

    #[tokio::test]
    async fn requests_wait_for_a_slot_and_only_a_full_queue_is_refused() {
        let gate = std::sync::Arc::new(Gate::new(1, 2));
        let first = gate.enter().await.unwrap();
        let mut queued = Vec::new();
        for _ in 0..2 {
            let g = gate.clone();
            queued.push(tokio::spawn(async move { g.enter().await.map(|_| ()) }));
        }
        while gate.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        let refused = gate.enter().await.err().expect("the queue is full");
        assert!((1..=MAX_RETRY_AFTER).contains(&refused));
        drop(first);
        for q in queued {
            assert!(q.await.unwrap().is_ok(), "a queued request got a slot");
        }
        assert_eq!(gate.waiting(), 0);
        assert!(gate.enter().await.is_ok());
    }
}
