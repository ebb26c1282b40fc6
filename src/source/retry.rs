//! When the fetch tries again (PROTOCOL.md §4): exponential backoff with
//! full jitter, and the server's `Retry-After`.
//!
//! Guarantees: the n-th wait is never longer than `min(8 s, 250 ms * 2^n)`,
//! even when the system's random source fails (only the jitter is lost); a
//! `Retry-After` is read as delta-seconds (at most a day) or an IMF-fixdate,
//! and anything else is ignored, never an error. The caller adds the jitter
//! to a `Retry-After` (never earlier) and keeps every wait inside its
//! deadline.

use ring::rand::SecureRandom;
use std::time::{Duration, SystemTime};

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
