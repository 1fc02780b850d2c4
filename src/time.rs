//! Time as Attic writes it: a unix-microsecond timestamp in RFC 3339 UTC
//! with six decimals (`2026-11-27T10:00:00.123456Z`, the form of every
//! export and of the JSON report), and a UTC calendar day. The one place
//! that formats time; the clocks themselves are `clock`'s, TIME arguments
//! `select::time`'s, day folders `layout`'s.
//!
//! Pure functions: nothing here reads a clock. The calendar is jiff's.

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;

/// Microseconds in one second.
const US_PER_S: i64 = 1_000_000;

/// RFC 3339 in UTC with exactly six decimals: `2026-11-27T10:00:00.123456Z`.
/// `None` for a timestamp outside the years -9999..=9999.
pub fn rfc3339_us(t_us: i64) -> Option<String> {
    let mut out = String::with_capacity(27);
    TimeFormatter::default()
        .write(t_us, &mut out)
        .then_some(out)
}

/// Formats many timestamps quickly: rows of one second share the date and
/// time of day, so jiff runs once per second, not once per row.
#[derive(Debug, Default)]
pub struct TimeFormatter {
    /// The second whose prefix is cached, if any.
    second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: String,
}

impl TimeFormatter {
    /// Appends the RFC 3339 form of `t_us` to `out`; false (and nothing
    /// appended) if it is out of range.
    pub fn write(&mut self, t_us: i64, out: &mut String) -> bool {
        let second = t_us.div_euclid(US_PER_S);
        let micros = t_us.rem_euclid(US_PER_S);
        if self.second != Some(second) {
            let Ok(ts) = Timestamp::from_second(second) else {
                return false;
            };
            self.prefix.clear();
            let printer = DateTimePrinter::new().precision(Some(0));
            if printer.print_timestamp(&ts, &mut self.prefix).is_err() {
                return false;
            }
            // The printer ends with `Z`: keep only the date and time.
            self.prefix.pop();
            self.second = Some(second);
        }
        out.push_str(&self.prefix);
        let mut frac = *b".000000Z";
        let mut m = micros;
        for d in frac[1..7].iter_mut().rev() {
            // `m % 10` is a digit, so the narrowing cannot lose anything.
            *d = b'0' + u8::try_from(m % 10).unwrap_or(0);
            m /= 10;
        }
        out.push_str(std::str::from_utf8(&frac).unwrap_or(".000000Z"));
        true
    }
}

/// `YYYY-MM-DD` (UTC) of unix seconds `secs`; `None` out of jiff's range.
pub fn utc_date(secs: i64) -> Option<String> {
    let ts = Timestamp::from_second(secs).ok()?;
    Some(ts.strftime("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_237_600_000_000; // 2025-11-27T10:00:00Z

    #[test]
    fn timestamps_print_in_utc_with_six_decimals() {
        assert_eq!(
            rfc3339_us(NOW + 123_456).as_deref(),
            Some("2025-11-27T10:00:00.123456Z")
        );
        assert_eq!(
            rfc3339_us(NOW).as_deref(),
            Some("2025-11-27T10:00:00.000000Z")
        );
        assert_eq!(
            rfc3339_us(-1).as_deref(),
            Some("1969-12-31T23:59:59.999999Z")
        );
        assert_eq!(rfc3339_us(i64::MAX), None);
    }

    #[test]
    fn the_formatter_cache_gives_the_same_text_as_a_fresh_one() {
        let mut f = TimeFormatter::default();
        for t in [NOW, NOW + 1, NOW + 999_999, NOW + 1_000_000, NOW - 3, NOW] {
            let mut out = String::new();
            assert!(f.write(t, &mut out));
            assert_eq!(Some(out), rfc3339_us(t));
        }
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(utc_date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(utc_date(951_782_400).as_deref(), Some("2000-02-29"));
        assert_eq!(utc_date(1_015_200_000).as_deref(), Some("2002-03-04"));
    }
}
