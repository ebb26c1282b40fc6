//! When a request to the secrets service is tried again (PROTOCOL.md §4):
//! exponential backoff with full jitter, the server's `Retry-After`, and the
//! one retry loop ([`with_retries`]) that agent-init's fetch and the
//! agent-secrets CLI share.
//!
//! Guarantees: the n-th wait is never longer than `min(8 s, 250 ms * 2^n)`,
//! even when the system's random source fails (only the jitter is lost); a
//! `Retry-After` is read as delta-seconds (at most a day) or an IMF-fixdate,
//! and anything else is ignored, never an error. [`with_retries`] adds the
//! jitter to a `Retry-After` (never comes back earlier), starts no attempt
//! after the deadline and sleeps no wait that would pass it.

use super::TransportFailure;
use crate::base::error::{Error, Result};
use ring::rand::SecureRandom;
use std::time::{Duration, Instant, SystemTime};

/// First backoff window.
const BASE: Duration = Duration::from_millis(250);
/// Largest backoff window.
const CAP: Duration = Duration::from_secs(8);

/// Exponential backoff with full jitter: the n-th wait is drawn uniformly from
/// `[0, min(CAP, BASE * 2^n)]`.
pub struct Backoff {
    attempt: u32,
    rng: ring::rand::SystemRandom,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempt: 0,
            rng: ring::rand::SystemRandom::new(),
        }
    }
}

impl Backoff {
    /// The window the next wait is drawn from.
    pub fn window(&self) -> Duration {
        BASE.saturating_mul(1u32 << self.attempt.min(16)).min(CAP)
    }

    /// Draws the next wait and widens the window.
    pub fn next_wait(&mut self) -> Duration {
        let window = self.window().as_micros() as u64;
        self.attempt = self.attempt.saturating_add(1);
        let mut b = [0u8; 8];
        // A failing CSPRNG only loses the jitter, never the wait's upper bound.
        let r = match self.rng.fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => u64::MAX,
        };
        Duration::from_micros(r % (window + 1))
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP date (IMF-fixdate), relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            v.parse::<u64>().unwrap_or(u64::MAX).min(86_400),
        ));
    }
    let at = crate::base::time::parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait a response's `Retry-After` asks for, if it has one that parses.
pub fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// What one attempt came to, for [`with_retries`].
pub enum Attempt<T> {
    /// The answer: no more attempts.
    Done(T),
    /// Worth another attempt: what happened, and the wait the server asked for.
    Transient(String, Option<Duration>),
    /// Not worth another attempt.
    Fatal(Error),
}

impl<T> From<TransportFailure> for Attempt<T> {
    fn from(f: TransportFailure) -> Self {
        match f {
            TransportFailure::Transient(what) => Attempt::Transient(what, None),
            TransportFailure::Fatal(e) => Attempt::Fatal(e),
        }
    }
}

impl<T> Attempt<T> {
    /// A transport failure while the body was being read: a transient one
    /// says so, and has no `Retry-After` (the status line had none to give).
    pub fn body_cut_short(f: TransportFailure) -> Self {
        match f {
            TransportFailure::Transient(what) => {
                Attempt::Transient(format!("body cut short: {what}"), None)
            }
            TransportFailure::Fatal(e) => Attempt::Fatal(e),
        }
    }
}

/// Runs `attempt` (its number, from 1, and the time left) until it is done
/// or fatal, waiting between attempts with [`Backoff`] (on top of a
/// `Retry-After`, never instead of it). It gives up, 69, when `deadline` is
/// reached or the next wait would pass it; the message names how many
/// attempts ran since `start`, the last failure, and `timeout_var`, the knob
/// that sets the deadline. `retrying` hears of each wait before it is slept:
/// the attempt's number, what failed, the wait and whether the server asked
/// for one.
pub fn with_retries<T>(
    start: Instant,
    deadline: Instant,
    timeout_var: &str,
    mut attempt: impl FnMut(u32, Duration) -> Attempt<T>,
    mut retrying: impl FnMut(u32, &str, Duration, bool),
) -> Result<T> {
    let gave_up = |attempts: u32, why: &str| {
        Error::Unavailable(format!(
            "secrets service unavailable: gave up after {attempts} attempt(s) in {:.1}s ({why}); {timeout_var} sets the deadline",
            start.elapsed().as_secs_f64()
        ))
    };
    let mut backoff = Backoff::default();
    let mut n = 0u32;
    loop {
        n += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(gave_up(n - 1, "deadline reached"));
        }
        let (what, retry_after) = match attempt(n, remaining) {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fatal(e) => return Err(e),
            Attempt::Transient(what, ra) => (what, ra),
        };
        let jitter = backoff.next_wait();
        // Retry-After is the earliest time to come back, not a meeting time:
        // a fleet told "1" and obeying it exactly returns as one wave every
        // second (docs/HARDENING.md, the storm). The jitter on top spreads it.
        let wait = retry_after.map_or(jitter, |ra| ra.saturating_add(jitter));
        if wait >= deadline.saturating_duration_since(Instant::now()) {
            return Err(gave_up(
                n,
                &format!("last: {what}; the next try would pass the deadline"),
            ));
        }
        retrying(n, &what, wait, retry_after.is_some());
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_windows_double_from_250ms_to_8s() {
        let mut b = Backoff::default();
        let mut windows = vec![];
        for _ in 0..8 {
            windows.push(b.window().as_millis());
            let w = b.next_wait();
            assert!(w <= Duration::from_millis(*windows.last().unwrap() as u64));
        }
        assert_eq!(windows, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn jitter_spreads_over_the_window() {
        let mut lo = 0;
        for _ in 0..200 {
            let mut b = Backoff::default();
            if b.next_wait() < Duration::from_millis(125) {
                lo += 1;
            }
        }
        // Uniform on [0, 250ms]: about half below 125ms; far from 0 or 200.
        assert!((40..160).contains(&lo), "{lo}");
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 1994-11-06 08:49:37 GMT is 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now),
            None
        );
    }
}
