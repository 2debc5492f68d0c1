//! Durations as people write them in flags and files ("30s", "5m", "1h30m",
//! "250ms") and as we print them back ("1h 30m 5s"). Every duration read
//! from a flag, a file or a server goes through [`parse`], which refuses
//! anything longer than `config::MAX_DURATION` while it reads, so no sum can
//! overflow; a caller with a smaller cap (`unlock --for`, provider timeouts)
//! checks it after. Timestamps (points in time) are `timestamp`'s.

use std::fmt;
use std::time::Duration;

use crate::config::MAX_DURATION;

/// The accepted syntax, for a hint after an error.
pub(crate) const SYNTAX: &str = "a number with a unit, e.g. 500ms, 30s, 5m or 1h30m";

/// The longest text read: room for any sensible duration spelt out in
/// words ("1 year 11 months 30 days 23 hours 59 minutes 59 seconds").
const MAX_LEN: usize = 100;

const NANOS_PER_SEC: u128 = 1_000_000_000;
const DAY_SECS: u64 = 86_400;
/// A month of 30.44 days and a year of 365.25 days, as the durations in
/// existing files have always been read.
const MONTH_SECS: u64 = 2_630_016;
const YEAR_SECS: u64 = 31_557_600;

/// Each unit's spellings (case matters: `M` is a month, `m` a minute) and
/// its length in nanoseconds.
const UNITS: [(&[&str], u128); 10] = [
    (&["ns", "nsec", "nanos"], 1),
    (&["us", "µs", "usec"], 1_000),
    (&["ms", "msec", "millis"], 1_000_000),
    (&["s", "sec", "secs", "second", "seconds"], NANOS_PER_SEC),
    (
        &["m", "min", "mins", "minute", "minutes"],
        60 * NANOS_PER_SEC,
    ),
    (&["h", "hr", "hrs", "hour", "hours"], 3600 * NANOS_PER_SEC),
    (&["d", "day", "days"], DAY_SECS as u128 * NANOS_PER_SEC),
    (
        &["w", "wk", "wks", "week", "weeks"],
        7 * DAY_SECS as u128 * NANOS_PER_SEC,
    ),
    (
        &["M", "month", "months"],
        MONTH_SECS as u128 * NANOS_PER_SEC,
    ),
    (
        &["y", "yr", "yrs", "year", "years"],
        YEAR_SECS as u128 * NANOS_PER_SEC,
    ),
];

/// Digits after a decimal point: more could only be finer than 1ns.
const MAX_FRACTION_DIGITS: usize = 9;

/// What is wrong with a duration. Each message reads inside "… is not a
/// duration (MESSAGE)"; the caller adds the limit or [`SYNTAX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    /// Nothing but whitespace.
    Empty,
    /// More than [`MAX_LEN`] bytes.
    TooLongText,
    /// `found` (none: the end) where `wanted` should be.
    Unexpected {
        found: Option<char>,
        wanted: &'static str,
    },
    /// A number with no unit after it.
    UnitMissing(String),
    /// Letters that are not a unit.
    UnknownUnit(String),
    /// A fraction finer than a nanosecond.
    TooPrecise,
    /// Longer than `config::MAX_DURATION`.
    OverMaximum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::TooLongText => write!(f, "it is over {MAX_LEN} characters long"),
            Self::Unexpected {
                found: Some(c),
                wanted,
            } => write!(f, "found {c:?} where {wanted} should be"),
            Self::Unexpected {
                found: None,
                wanted,
            } => write!(f, "it ends where {wanted} should be"),
            Self::UnitMissing(n) => write!(f, "{n} has no unit, e.g. {n}s or {n}ms"),
            Self::UnknownUnit(unit) => write!(
                f,
                "unknown unit \"{}\"; the units are ns, us, ms, s, m, h, d, w, M (months) and y (years)",
                unit.escape_default()
            ),
            Self::TooPrecise => f.write_str("it is finer than a nanosecond"),
            Self::OverMaximum => write!(
                f,
                "it is longer than the maximum of {}",
                format(MAX_DURATION)
            ),
        }
    }
}

/// Reads a duration: one or more numbers, each with a unit, optionally
/// separated by whitespace ("1h30m", "1h 30m", "90 s", "1.5h"), or a bare
/// "0". At most `config::MAX_DURATION`.
pub(crate) fn parse(text: &str) -> Result<Duration, Error> {
    if text.len() > MAX_LEN {
        return Err(Error::TooLongText);
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Empty);
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let max = MAX_DURATION.as_nanos();
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = number(rest)?;
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !(c.is_ascii_alphabetic() || c == 'µ'))
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(match after.chars().next() {
                None => Error::UnitMissing(number.text.to_owned()),
                Some(c) if c.is_ascii_digit() => Error::UnitMissing(number.text.to_owned()),
                found => Error::Unexpected {
                    found,
                    wanted: "a unit",
                },
            });
        }
        let unit_nanos = UNITS
            .iter()
            .find(|(names, _)| names.contains(&unit))
            .map(|&(_, nanos)| nanos)
            .ok_or_else(|| Error::UnknownUnit(unit.to_owned()))?;
        total = number
            .nanos(unit_nanos)?
            .checked_add(total)
            .filter(|&t| t <= max)
            .ok_or(Error::OverMaximum)?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| Error::OverMaximum)?;
    let nanos = u32::try_from(total % NANOS_PER_SEC).map_err(|_| Error::OverMaximum)?;
    Ok(Duration::new(secs, nanos))
}

/// A number as written: "12" or "1.25".
struct Number<'a> {
    text: &'a str,
    whole: &'a str,
    fraction: &'a str,
}

impl Number<'_> {
    /// The number times a unit of `unit` nanoseconds, exactly.
    fn nanos(&self, unit: u128) -> Result<u128, Error> {
        // Only digits: the parse can fail only by overflowing.
        let whole: u128 = self.whole.parse().map_err(|_| Error::OverMaximum)?;
        let whole = whole.checked_mul(unit).ok_or(Error::OverMaximum)?;
        if self.fraction.is_empty() {
            return Ok(whole);
        }
        let numerator: u128 = self.fraction.parse().map_err(|_| Error::TooPrecise)?;
        let digits = u32::try_from(self.fraction.len()).map_err(|_| Error::TooPrecise)?;
        let denominator = 10u128.pow(digits);
        let scaled = numerator.checked_mul(unit).ok_or(Error::OverMaximum)?;
        if scaled % denominator != 0 {
            return Err(Error::TooPrecise);
        }
        whole
            .checked_add(scaled / denominator)
            .ok_or(Error::OverMaximum)
    }
}

/// The number `text` starts with, and what follows it.
fn number(text: &str) -> Result<(Number<'_>, &str), Error> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let whole_len = digits(text);
    if whole_len == 0 {
        return Err(Error::Unexpected {
            found: text.chars().next(),
            wanted: "a number",
        });
    }
    let (whole, after) = text.split_at(whole_len);
    let Some(after_point) = after.strip_prefix('.') else {
        return Ok((
            Number {
                text: whole,
                whole,
                fraction: "",
            },
            after,
        ));
    };
    let fraction_len = digits(after_point);
    if fraction_len == 0 {
        return Err(Error::Unexpected {
            found: after_point.chars().next(),
            wanted: "a digit after the decimal point",
        });
    }
    if fraction_len > MAX_FRACTION_DIGITS {
        return Err(Error::TooPrecise);
    }
    let (fraction, after) = after_point.split_at(fraction_len);
    let len = whole_len + 1 + fraction_len;
    Ok((
        Number {
            text: &text[..len],
            whole,
            fraction,
        },
        after,
    ))
}

/// Writes a duration the way [`parse`] reads it back: the non-zero parts
/// from years down to nanoseconds, largest first ("1h 30m 5s", "500ms",
/// "2days 3h", "1year"); "0s" for zero.
pub(crate) fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if secs == 0 && nanos == 0 {
        return "0s".to_owned();
    }
    let in_year = secs % YEAR_SECS;
    let in_day = in_year % MONTH_SECS % DAY_SECS;
    // (value, unit, whether the unit is a word that takes a plural "s")
    let parts = [
        (secs / YEAR_SECS, "year", true),
        (in_year / MONTH_SECS, "month", true),
        (in_year % MONTH_SECS / DAY_SECS, "day", true),
        (in_day / 3600, "h", false),
        (in_day % 3600 / 60, "m", false),
        (in_day % 60, "s", false),
        (u64::from(nanos / 1_000_000), "ms", false),
        (u64::from(nanos / 1000 % 1000), "us", false),
        (u64::from(nanos % 1000), "ns", false),
    ];
    parts
        .iter()
        .filter(|(value, _, _)| *value > 0)
        .map(|&(value, unit, word)| {
            let plural = if word && value > 1 { "s" } else { "" };
            format!("{value}{unit}{plural}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn every_unit_spelling_is_read() {
        let ns = |n| Duration::from_nanos(n);
        let cases: &[(&[&str], Duration)] = &[
            (&["ns", "nsec", "nanos"], ns(7)),
            (&["us", "µs", "usec"], ns(7_000)),
            (&["ms", "msec", "millis"], ns(7_000_000)),
            (&["s", "sec", "secs", "second", "seconds"], secs(7)),
            (&["m", "min", "mins", "minute", "minutes"], secs(7 * 60)),
            (&["h", "hr", "hrs", "hour", "hours"], secs(7 * 3600)),
            (&["d", "day", "days"], secs(7 * 86_400)),
            (&["w", "wk", "wks", "week", "weeks"], secs(49 * 86_400)),
            (&["M", "month", "months"], secs(7 * 2_630_016)),
        ];
        for (names, want) in cases {
            for name in *names {
                assert_eq!(parse(&format!("7{name}")), Ok(*want), "7{name}");
                assert_eq!(parse(&format!("7 {name}")), Ok(*want), "7 {name}");
            }
        }
        for name in ["y", "yr", "yrs", "year", "years"] {
            assert_eq!(parse(&format!("1{name}")), Ok(MAX_DURATION), "1{name}");
        }
    }

    #[test]
    fn sequences_whitespace_and_fractions() {
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse("  1h\t30m 5s \n"), Ok(secs(5405)));
        assert_eq!(parse("2h 37min"), Ok(secs(9420)));
        assert_eq!(parse("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1.5h"), Ok(secs(5400)));
        assert_eq!(parse("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("4.2s"), Ok(Duration::new(4, 200_000_000)));
        assert_eq!(parse("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(parse("007s"), Ok(secs(7)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_text_says_what_is_wrong() {
        assert_eq!(parse(""), Err(Error::Empty));
        assert_eq!(parse(" \t\n"), Err(Error::Empty));
        assert_eq!(parse("10"), Err(Error::UnitMissing("10".into())));
        assert_eq!(parse("1h 30"), Err(Error::UnitMissing("30".into())));
        assert_eq!(parse("10 20s"), Err(Error::UnitMissing("10".into())));
        assert_eq!(parse("1.5"), Err(Error::UnitMissing("1.5".into())));
        assert_eq!(parse("10S"), Err(Error::UnknownUnit("S".into())));
        assert_eq!(
            parse("10 fortnights"),
            Err(Error::UnknownUnit("fortnights".into()))
        );
        let unexpected = |found, wanted| Err(Error::Unexpected { found, wanted });
        assert_eq!(parse("soon"), unexpected(Some('s'), "a number"));
        assert_eq!(parse("-5s"), unexpected(Some('-'), "a number"));
        assert_eq!(parse("1h,30m"), unexpected(Some(','), "a number"));
        assert_eq!(parse("1h-"), unexpected(Some('-'), "a number"));
        assert_eq!(parse(".5s"), unexpected(Some('.'), "a number"));
        let no_digit = "a digit after the decimal point";
        assert_eq!(parse("1.s"), unexpected(Some('s'), no_digit));
        assert_eq!(parse("1."), unexpected(None, no_digit));
        assert_eq!(parse("1.2.3s"), unexpected(Some('.'), "a unit"));
        assert_eq!(parse("10%"), unexpected(Some('%'), "a unit"));
        assert_eq!(parse("0.5ns"), Err(Error::TooPrecise));
        assert_eq!(parse("1.0000000001s"), Err(Error::TooPrecise));
        assert_eq!(parse(&"1s".repeat(51)), Err(Error::TooLongText));

        let message = |text| parse(text).expect_err(text).to_string();
        assert_eq!(message("10"), "10 has no unit, e.g. 10s or 10ms");
        assert_eq!(message(""), "it is empty");
        assert_eq!(message("soon"), "found 's' where a number should be");
        assert_eq!(
            message("1.\u{1b}"),
            "found '\\u{1b}' where a digit after the decimal point should be"
        );
        assert!(
            message("3 lightyears").contains("unknown unit \"lightyears\"; the units are ns, us")
        );
        assert_eq!(message("2y"), "it is longer than the maximum of 1year");
    }

    #[test]
    fn the_maximum_is_enforced_while_reading() {
        assert_eq!(parse("1y"), Ok(MAX_DURATION));
        assert_eq!(parse("365.25d"), Ok(MAX_DURATION));
        assert_eq!(parse("1y 1ns"), Err(Error::OverMaximum));
        assert_eq!(parse("2y"), Err(Error::OverMaximum));
        assert_eq!(parse("1000y"), Err(Error::OverMaximum));
        assert_eq!(parse("500000000000y"), Err(Error::OverMaximum));
        assert_eq!(
            parse("99999999999999999999999999999999999999999s"),
            Err(Error::OverMaximum)
        );
        assert_eq!(parse(&format!("{}ns", u128::MAX)), Err(Error::OverMaximum));
        assert_eq!(
            parse("18446744073709551615s 18446744073709551615s"),
            Err(Error::OverMaximum)
        );
        // Many parts that each fit but add up to more.
        assert_eq!(parse(&"1M".repeat(13)), Err(Error::OverMaximum));
    }

    #[test]
    fn formatting_matches_what_we_always_printed() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(secs(5405)), "1h 30m 5s");
        assert_eq!(format(secs(9420)), "2h 37m");
        assert_eq!(format(secs(3600)), "1h");
        assert_eq!(format(secs(86_400)), "1day");
        assert_eq!(format(secs(2 * 86_400 + 3 * 3600)), "2days 3h");
        assert_eq!(format(MAX_DURATION), "1year");
        assert_eq!(format(Duration::new(1, 2_003_004)), "1s 2ms 3us 4ns");
        assert_eq!(
            format(Duration::new(2 * 31_557_600 + 2_630_016 + 61, 0)),
            "2years 1month 1m 1s"
        );
        // Any duration at all, from any server, formats without a panic.
        assert_eq!(
            format(Duration::MAX).split(' ').next(),
            Some("584542046090years")
        );
    }

    #[test]
    fn formatted_durations_read_back_the_same() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(1, 2_003_004),
            Duration::from_millis(250),
            secs(59),
            secs(5405),
            secs(86_399),
            secs(7 * 86_400 + 1),
            secs(2_630_016 * 11 + 86_400 * 30 + 3599),
            MAX_DURATION - Duration::from_nanos(1),
            MAX_DURATION,
        ];
        for d in samples {
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        for text in ["30s", "5m", "1h 30m", "500ms", "1year"] {
            assert_eq!(format(parse(text).expect(text)), text);
        }
    }
}
