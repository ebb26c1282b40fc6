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

/// The gate in front of the handlers.
pub struct Gate {
    slots: std::sync::Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
    done: Mutex<VecDeque<Instant>>,
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

    /// Seconds until the `ahead` queued requests and the ones running have
    /// drained at the measured rate, rounded up, at least 1.
    fn retry_after(&self, ahead: usize) -> u64 {
        let rate = self.drain_rate(Instant::now());
        retry_after_for(ahead + self.concurrency, self.concurrency, rate)
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

/// Completions per second of `recent` (newest first): `n - 1` intervals over
/// the span from the oldest to the newest.
fn rate_of(recent: &[Instant]) -> Option<f64> {
    let (newest, oldest) = (recent.first()?, recent.last()?);
    let span = newest.duration_since(*oldest);
    if recent.len() < 2 || span.is_zero() {
        return None;
    }
    Some((recent.len() - 1) as f64 / span.as_secs_f64())
}

/// `ceil(pending / rate)` seconds, within [1, MAX_RETRY_AFTER]. With no
/// measured rate (a storm's first seconds, or slots stuck on a slow
/// database), it assumes [`ASSUMED_SLOT_TIME`] per request per slot: short
/// enough that a client retries well inside its deadline, and the queue
/// absorbs the rest.
pub fn retry_after_for(pending: usize, concurrency: usize, rate: Option<f64>) -> u64 {
    let rate = match rate {
        Some(r) if r > 0.0 && r.is_finite() => r,
        _ => concurrency.max(1) as f64 / ASSUMED_SLOT_TIME.as_secs_f64(),
    };
    let s = (pending as f64 / rate).ceil();
    (s as u64).clamp(1, MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_the_time_to_drain_the_queue_at_the_measured_rate() {
        assert_eq!(retry_after_for(1000, 8, Some(500.0)), 2);
        assert_eq!(retry_after_for(1001, 8, Some(500.0)), 3);
        assert_eq!(retry_after_for(3, 8, Some(500.0)), 1);
        assert_eq!(retry_after_for(1_000_000, 8, Some(10.0)), MAX_RETRY_AFTER);
        // No rate yet: 100 ms per request per slot (72 pending on 8 slots).
        assert_eq!(retry_after_for(72, 8, None), 1);
        assert_eq!(retry_after_for(800, 8, None), 10);
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
