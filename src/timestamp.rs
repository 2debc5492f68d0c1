//! Points in time as RFC 3339 text in UTC, to the second
//! ("2026-12-02T04:19:59Z"): the audit trail's `time` and the dates
//! `secret show` prints. The calendar is the `time` crate's (already linked
//! for the broker's certificates); the digits are written here. A time the
//! format cannot hold (before year 0 or after 9999, only from a damaged
//! file or clock) is written as Unix seconds, `@SECONDS`, never a panic.
//! Durations are `duration`'s.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` in UTC, to the second (a fraction is dropped, towards the past).
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).map_or(i64::MIN, |s| -s);
            if before.subsec_nanos() > 0 {
                whole.saturating_sub(1)
            } else {
                whole
            }
        }
    };
    calendar(secs).unwrap_or_else(|| format!("@{secs}"))
}

/// `secs` seconds after 1970-01-01T00:00:00Z, in UTC.
pub(crate) fn rfc3339_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(calendar)
        .unwrap_or_else(|| format!("@{secs}"))
}

fn calendar(secs: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    (0..=9999).contains(&t.year()).then(|| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unix_seconds_in_utc() {
        assert_eq!(rfc3339_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_unix(59), "1970-01-01T00:00:59Z");
        assert_eq!(rfc3339_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_unix(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(rfc3339_unix(1_796_185_199), "2026-12-02T04:19:59Z");
        assert_eq!(rfc3339_unix(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339_unix(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn times_out_of_range_are_unix_seconds() {
        assert_eq!(rfc3339_unix(253_402_300_800), "@253402300800");
        assert_eq!(rfc3339_unix(u64::MAX), "@18446744073709551615");
    }

    #[test]
    fn system_times_drop_the_fraction_towards_the_past() {
        let at = |secs, nanos| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(at(1_796_185_199, 999_999_999)),
            "2026-12-02T04:19:59Z"
        );
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(rfc3339(before), "1969-12-31T23:59:58Z");
        let before = UNIX_EPOCH - Duration::from_secs(2);
        assert_eq!(rfc3339(before), "1969-12-31T23:59:58Z");
        let ancient = UNIX_EPOCH - Duration::from_secs(100_000_000_000);
        assert_eq!(rfc3339(ancient), "@-100000000000");
    }
}
