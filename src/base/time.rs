//! Calendar arithmetic and the two date forms agent-init reads or writes:
//! the HTTP date of `Retry-After` (IMF-fixdate, RFC 9110 §5.6.7) and the
//! RFC 3339 UTC timestamps of PROTOCOL.md §6.2; and durations as flags and
//! variables write them ([`parse_seconds`]).
//!
//! Guarantees: [`parse_http_date`] accepts only IMF-fixdate with a
//! four-digit year and in-range fields, and returns `None` (never panics or
//! overflows) on anything else; [`rfc3339_at`] writes
//! `YYYY-MM-DDTHH:MM:SSZ`, the form §6.2 stamps, for any second count.
//! Only [`rfc3339_now`] reads the clock.

use std::time::{Duration, SystemTime};

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7, the preferred form).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    // IMF-fixdate has a four-digit year; a longer one overflowed the day
    // arithmetic below (found by the `retry_after` fuzz target).
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut hms = parts.next()?.split(':');
    let (h, m, sec): (u64, u64, u64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let secs = days.checked_mul(86_400)? + (h * 3600 + m * 60 + sec) as i64;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The day count since 1970-01-01 of the civil date `(year, month, day)`
/// (Howard Hinnant's algorithm); the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's algorithm); the inverse of `days_from_civil`.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `secs` seconds since 1970-01-01 UTC.
pub fn rfc3339_at(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The system clock as `YYYY-MM-DDTHH:MM:SSZ`: the "now" that
/// `protocol::update::merge` takes (a clock before 1970 reads as
/// 1970-01-01).
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339_at(secs)
}

/// A number of seconds as a flag or a variable writes it (blanks around it
/// ignored), if finite and `ok` accepts it: one reading of a duration for
/// agent-init's knobs, `health --timeout` and agent-secrets' `--timeout`.
pub fn parse_seconds(text: &str, ok: impl Fn(f64) -> bool) -> Option<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && ok(*s))
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_from_days_inverts_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn http_date_matches_known_epochs() {
        let t = parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        assert_eq!(t, SystemTime::UNIX_EPOCH);
        let t = parse_http_date("Fri, 27 Nov 2026 04:41:13 GMT").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_795_754_473
        );
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [-719_468, -1, 0, 1, 11_016, 20_784, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn rfc3339_stamps_are_utc_seconds_with_z() {
        assert_eq!(rfc3339_at(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_at(1_795_754_473), "2026-11-27T04:41:13Z");
        let now = rfc3339_now();
        assert!(
            now.len() == 20 && now.ends_with('Z') && now.as_bytes()[10] == b'T',
            "{now}"
        );
    }

    #[test]
    fn seconds_are_read_one_way_within_the_caller_s_bounds() {
        assert_eq!(
            parse_seconds(" 2.5 ", |s| s > 0.0),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_seconds("0", |s| s > 0.0), None);
        assert_eq!(parse_seconds("inf", |_| true), None);
        assert_eq!(parse_seconds("NaN", |_| true), None);
        assert_eq!(parse_seconds("soon", |_| true), None);
    }
}
