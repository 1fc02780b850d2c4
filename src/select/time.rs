//! TIME arguments (`--from`, `--to`). The RFC 3339 form of a
//! `reception_timestamp` is [`crate::time`]'s.
//!
//! Pure functions: `now` is an argument, nothing here reads a clock. Date
//! arithmetic and RFC 3339 parsing are jiff's; this module only decides
//! which of the four TIME forms a string is.

use jiff::{Timestamp, civil, tz::Offset};

/// Microseconds in one second.
const US_PER_S: i64 = 1_000_000;

/// Parses a TIME argument into unix microseconds.
///
/// The forms, tried in this order:
/// - relative to `now_us`: `-90s`, `-30m`, `-2h`, `-7d` (a minus sign, a
///   number, fractions allowed, one unit);
/// - unix seconds: `1764237600`, `1764237600.25` (up to microseconds);
/// - a date: `2026-11-27` = that day's UTC midnight;
/// - RFC 3339 with an offset: `2026-11-27T10:00:00Z`, `...+01:00`.
///
/// The error is one sentence naming the forms, for a one-line message.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "invalid time {text:?}: expected RFC 3339 (2026-11-27T10:00:00Z), a date \
             (2026-11-27), unix seconds (1764237600.5) or a time relative to now (-90s, -30m, -2h, -7d)"
        )
    };
    if let Some(rest) = s.strip_prefix('-') {
        if let Some(unit) = rest.chars().last().filter(char::is_ascii_alphabetic) {
            let scale = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            let amount = decimal_us(&rest[..rest.len() - 1]).ok_or_else(bad)?;
            let back = amount.checked_mul(scale).ok_or_else(bad)?;
            return now_us.checked_sub(back).ok_or_else(bad);
        }
    }
    if s.bytes()
        .next()
        .is_some_and(|b| b == b'-' || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b == b'-' || b == b'.' || b.is_ascii_digit())
        && !s[1..].contains('-')
    {
        return match s.strip_prefix('-') {
            Some(rest) => decimal_us(rest).map(|v| -v),
            None => decimal_us(s),
        }
        .ok_or_else(bad);
    }
    if s.len() == 10 {
        let date: civil::Date = s.parse().map_err(|_| bad())?;
        let ts = Offset::UTC
            .to_timestamp(date.to_datetime(civil::Time::midnight()))
            .map_err(|_| bad())?;
        return Ok(ts.as_microsecond());
    }
    let ts: Timestamp = s.parse().map_err(|_| {
        // A civil date and time without an offset is ambiguous: say how to
        // make it an instant instead of only that it is invalid.
        if s.parse::<civil::DateTime>().is_ok() {
            format!(
                "invalid time {text:?}: a date and time needs a time zone offset: add Z for UTC \
                 ({s}Z) or an offset ({s}+01:00)"
            )
        } else {
            bad()
        }
    })?;
    Ok(ts.as_microsecond())
}

/// A non-negative decimal number of seconds (`12`, `12.5`, `.5`) as
/// microseconds; digits past the sixth decimal are an error rather than
/// silently dropped.
fn decimal_us(text: &str) -> Option<i64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
    {
        return None;
    }
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        micros *= 10;
    }
    whole.checked_mul(US_PER_S)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_237_600_000_000; // 2025-11-27T10:00:00Z

    #[test]
    fn rfc3339_with_z_or_an_offset_is_an_instant() {
        assert_eq!(parse_time("2025-11-27T10:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_time("2025-11-27T11:00:00+01:00", 0), Ok(NOW));
        assert_eq!(parse_time("2025-11-27T10:00:00.5Z", 0), Ok(NOW + 500_000));
    }

    #[test]
    fn a_date_is_utc_midnight() {
        assert_eq!(parse_time("2025-11-27", 0), Ok(NOW - 10 * 3_600_000_000));
    }

    #[test]
    fn unix_seconds_take_fractions_to_the_microsecond() {
        assert_eq!(parse_time("1764237600", 0), Ok(NOW));
        assert_eq!(parse_time("1764237600.25", 0), Ok(NOW + 250_000));
        assert_eq!(parse_time("1764237600.000001", 0), Ok(NOW + 1));
        assert_eq!(parse_time("0", 5), Ok(0));
        assert!(parse_time("1764237600.0000001", 0).is_err());
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(parse_time("-90s", NOW), Ok(NOW - 90_000_000));
        assert_eq!(parse_time("-30m", NOW), Ok(NOW - 1_800_000_000));
        assert_eq!(parse_time("-2h", NOW), Ok(NOW - 7_200_000_000));
        assert_eq!(parse_time("-7d", NOW), Ok(NOW - 7 * 86_400_000_000));
        assert_eq!(parse_time("-1.5s", NOW), Ok(NOW - 1_500_000));
    }

    #[test]
    fn garbage_is_refused_with_a_message_that_names_the_forms() {
        for bad in [
            "",
            "yesterday",
            "-5x",
            "-s",
            "2025-13-01",
            "1.2.3",
            "--5s",
            "12-",
            "-",
        ] {
            let e = parse_time(bad, NOW).expect_err(bad);
            assert!(e.contains("RFC 3339") && e.contains("-90s"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_time_without_an_offset_says_to_add_z_or_an_offset() {
        let e = parse_time("2026-12-03T10:00:00", 0).unwrap_err();
        assert!(e.contains("add Z for UTC (2026-12-03T10:00:00Z)"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn huge_numbers_are_errors_not_overflows() {
        assert!(parse_time("99999999999999999999", NOW).is_err());
        assert!(parse_time("-9999999999999999d", NOW).is_err());
    }
}
