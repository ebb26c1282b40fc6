//! Regression tests for what fuzzing found (docs/HARDENING.md lists each
//! finding); the findings inside one module are tested in that module's own
//! unit tests, and every crashing input is also replayed from
//! `fuzz/regressions/` by tests/fuzz_corpus_replay.rs.

use agent_init::source::parse_retry_after;
use std::time::{Duration, SystemTime};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_754_473)
}

#[test]
fn retry_after_date_with_a_year_past_four_digits_is_ignored_not_overflowed() {
    // Found by the `retry_after` fuzz target: the day arithmetic overflowed
    // i64 (a panic in debug builds, a wrapped, wrong wait in release).
    for year in ["133333333333333333", "9223372036854775807", "10000", "-1"] {
        let header = format!("Sun, 06 Nov {year} 04:08:37 GMT");
        assert_eq!(parse_retry_after(&header, now()), None, "{header}");
    }
}

#[test]
fn retry_after_date_in_year_9999_is_a_wait_past_any_deadline() {
    let d = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()).unwrap();
    assert!(d > Duration::from_secs(86_400 * 365 * 7000), "{d:?}");
}

#[test]
fn retry_after_date_in_the_past_means_retry_now() {
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 1970 00:00:01 GMT", now()),
        Some(Duration::ZERO)
    );
}
