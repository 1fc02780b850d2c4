//! Rotation arithmetic: which period a moment belongs to and which UTC day
//! folder it goes in (the names of the files are in the parent module).
//!
//! Pure functions of their arguments: this module must not read a clock,
//! touch the file system or panic, whatever the input (negative times, far
//! future, absurd periods).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds in one second.
pub(super) const US_PER_S: i64 = 1_000_000;
/// Microseconds in one day.
pub(super) const US_PER_DAY: i64 = 86_400 * US_PER_S;

/// The end (exclusive) of the period of `period_s` seconds that contains
/// `t_us` (Unix microseconds).
///
/// Periods are aligned to multiples of `period_s` since the Unix epoch, so a
/// 300 s period ends at :00, :05, ... A moment exactly on a boundary belongs
/// to the period that starts there. A period of 0 is treated as 1 s; a
/// period too long to express in microseconds is clamped; the result
/// saturates at `i64::MAX` instead of overflowing.
pub fn period_end_us(t_us: i64, period_s: u64) -> i64 {
    let period_us = i64::try_from(period_s.max(1))
        .ok()
        .and_then(|s| s.checked_mul(US_PER_S))
        .unwrap_or(i64::MAX);
    // `period_us - rem` is in (0, period_us], so only the sum can overflow.
    t_us.saturating_add(period_us - t_us.rem_euclid(period_us))
}

/// The latest wall-clock moment (unix µs) the rotation timer
/// (`clock::WallTimer`) can be armed for: the largest `time_t`.
///
/// On 64-bit systems that is beyond any date that matters. On 32-bit
/// Raspberry Pi OS (armv7, glibc's 32-bit `time_t`, which the `libc` crate
/// binds) it is 2038-01-19T03:14:07Z: a later deadline cannot be expressed
/// in the `itimerspec` that `timerfd_settime` takes, so config validation
/// refuses rotation periods that end later ([`wall_deadline_problem`]) and
/// `WallTimer::set` refuses such a deadline instead of wrapping it.
/// (Monotonic deadlines are `Instant`s, 64-bit on every target, and mio
/// clamps the poll timeout: the report period has no such limit.)
pub fn latest_wall_deadline_us() -> i64 {
    if size_of::<libc::time_t>() >= 8 {
        i64::MAX
    } else {
        i64::from(i32::MAX) * US_PER_S
    }
}

/// [`wall_deadline_problem`] for a config checked at `now`, on this system.
pub fn wall_deadline_problem_at(period_s: u64, now: SystemTime) -> Option<String> {
    let now_us = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    };
    wall_deadline_problem(period_s, now_us, latest_wall_deadline_us())
}

/// Why a rotation period of `period_s` seconds cannot be used at `now_us`,
/// if it cannot: the period containing `now_us` ends after `latest_us`, the
/// latest moment the wall timer can be armed for
/// ([`latest_wall_deadline_us`]: 2038-01-19T03:14:07Z where `time_t`
/// is 32 bits, as on 32-bit Raspberry Pi OS; never on a 64-bit system).
/// Config validation calls it so such a period exits 78 at start instead of
/// failing when the timer is armed.
pub fn wall_deadline_problem(period_s: u64, now_us: i64, latest_us: i64) -> Option<String> {
    let end = period_end_us(now_us, period_s);
    if end <= latest_us {
        return None;
    }
    // Any period up to `latest - now` ends by `latest`: its end is at most
    // one period after `now`.
    let longest_s = latest_us.saturating_sub(now_us).div_euclid(US_PER_S).max(0);
    Some(format!(
        "a {period_s} s period ends on {}, after {}, the last moment this system's \
         32-bit time_t can arm the rotation timer for; use at most {longest_s} seconds",
        day_folder(end),
        day_folder(latest_us)
    ))
}

/// The UTC date of `t_us` (Unix microseconds) as `YYYY-MM-DD`: the name of
/// the day folder a file created at that moment goes in.
pub fn day_folder(t_us: i64) -> String {
    let (y, m, d) = civil_from_days(t_us.div_euclid(US_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 -> proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`; exact for every `i64` day count that
/// a microsecond timestamp can produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are in small, known ranges, so the conversions cannot fail.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::relative_path;
    use std::path::PathBuf;

    /// Unix microseconds of a UTC date-time (test helper, via days_from_civil).
    fn utc_us(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        ((days * 86_400) + hh * 3_600 + mm * 60 + ss) * US_PER_S
    }

    #[test]
    fn a_moment_inside_a_period_ends_at_the_next_aligned_boundary() {
        let t = utc_us(2024, 5, 1, 12, 3, 17) + 123;
        assert_eq!(period_end_us(t, 300), utc_us(2024, 5, 1, 12, 5, 0));
        assert_eq!(period_end_us(t, 3_600), utc_us(2024, 5, 1, 13, 0, 0));
        assert_eq!(period_end_us(t, 86_400), utc_us(2024, 5, 2, 0, 0, 0));
    }

    #[test]
    fn a_moment_exactly_on_a_boundary_belongs_to_the_next_period() {
        let b = utc_us(2024, 5, 1, 12, 5, 0);
        assert_eq!(period_end_us(b, 300), b + 300 * US_PER_S);
        assert_eq!(period_end_us(b - 1, 300), b);
    }

    #[test]
    fn the_epoch_and_negative_times_are_aligned_too() {
        assert_eq!(period_end_us(0, 60), 60 * US_PER_S);
        assert_eq!(period_end_us(-1, 60), 0);
        assert_eq!(period_end_us(-60 * US_PER_S, 60), 0);
        assert_eq!(period_end_us(-60 * US_PER_S - 1, 60), -60 * US_PER_S);
    }

    #[test]
    fn absurd_periods_and_extreme_times_do_not_panic() {
        assert_eq!(period_end_us(5, 0), US_PER_S);
        assert_eq!(period_end_us(i64::MAX, 1), i64::MAX);
        assert_eq!(period_end_us(i64::MAX - 1, u64::MAX), i64::MAX);
        assert!(period_end_us(i64::MIN, 300) > i64::MIN);
        assert!(period_end_us(i64::MIN, u64::MAX) > i64::MIN);
        let _ = day_folder(i64::MIN);
        let _ = day_folder(i64::MAX);
    }

    #[test]
    fn the_day_folder_changes_exactly_at_utc_midnight() {
        let midnight = utc_us(2023, 12, 31, 0, 0, 0) + US_PER_DAY;
        assert_eq!(day_folder(midnight - 1), "2023-12-31");
        assert_eq!(day_folder(midnight), "2024-01-01");
        assert_eq!(day_folder(0), "1970-01-01");
        assert_eq!(day_folder(-1), "1969-12-31");
    }

    #[test]
    fn leap_days_are_dated_correctly() {
        assert_eq!(day_folder(utc_us(2024, 2, 29, 23, 59, 59)), "2024-02-29");
        assert_eq!(
            day_folder(utc_us(2024, 2, 28, 12, 0, 0) + US_PER_DAY),
            "2024-02-29"
        );
        assert_eq!(
            day_folder(utc_us(2000, 2, 28, 12, 0, 0) + US_PER_DAY),
            "2000-02-29"
        );
        // 1900 is not a leap year: the day after 28 February is 1 March.
        assert_eq!(
            day_folder(utc_us(1900, 2, 28, 12, 0, 0) + US_PER_DAY),
            "1900-03-01"
        );
        assert_eq!(
            day_folder(utc_us(2023, 2, 28, 12, 0, 0) + US_PER_DAY),
            "2023-03-01"
        );
    }

    #[test]
    fn known_timestamps_give_known_dates() {
        assert_eq!(day_folder(1_700_000_000 * US_PER_S), "2023-11-14");
        assert_eq!(day_folder(951_782_400 * US_PER_S), "2000-02-29");
        assert_eq!(day_folder(253_402_300_799 * US_PER_S), "9999-12-31");
        assert_eq!(day_folder(253_402_300_800 * US_PER_S), "10000-01-01");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = utc_us(1900, 1, 1, 0, 0, 0) / US_PER_DAY;
        let mut prev = String::new();
        for day in start..start + 146_097 {
            let name = day_folder(day * US_PER_DAY + 1);
            let parts: Vec<i64> = name.split('-').map(|p| p.parse().unwrap()).collect();
            assert_eq!(
                utc_us(parts[0], parts[1], parts[2], 0, 0, 0),
                day * US_PER_DAY
            );
            assert!(name > prev, "{name} after {prev}");
            prev = name;
        }
    }

    /// `latest_wall_deadline_us()` on a 32-bit `time_t` system.
    const END_OF_TIME_T_US: i64 = 2_147_483_647 * US_PER_S;

    #[test]
    fn a_period_that_ends_after_the_end_of_a_32_bit_time_t_is_refused_with_the_longest_that_fits() {
        let now = utc_us(2026, 11, 28, 2, 0, 0);
        // One day, one year: end long before 2038.
        assert_eq!(wall_deadline_problem(86_400, now, END_OF_TIME_T_US), None);
        assert_eq!(
            wall_deadline_problem(365 * 86_400, now, END_OF_TIME_T_US),
            None
        );
        // The largest configurable period (u32::MAX s, about 136 years).
        let why = wall_deadline_problem(u64::from(u32::MAX), now, END_OF_TIME_T_US).unwrap();
        assert!(
            why.contains("2106-02-07") && why.contains("2038-01-19"),
            "{why}"
        );
        let longest: u64 = why
            .rsplit("at most ")
            .next()
            .and_then(|t| t.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        // The suggestion fits, and is close to the real limit.
        assert_eq!(wall_deadline_problem(longest, now, END_OF_TIME_T_US), None);
        assert_eq!(
            i64::try_from(longest).unwrap() * US_PER_S,
            END_OF_TIME_T_US - now
        );
        // A period whose aligned end falls just past the limit is refused,
        // one whose end falls exactly on it is not.
        let p = 2_147_483_647u64; // its first end is 2038-01-19T03:14:07Z itself
        assert_eq!(wall_deadline_problem(p, now, END_OF_TIME_T_US), None);
        assert!(wall_deadline_problem(p + 1, now, END_OF_TIME_T_US).is_some());
    }

    #[test]
    fn no_period_is_refused_where_time_t_is_64_bits() {
        let now = utc_us(2026, 11, 28, 2, 0, 0);
        for p in [0, 1, 86_400, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(wall_deadline_problem(p, now, i64::MAX), None);
        }
        // Even after 2038.
        let later = utc_us(2040, 1, 1, 0, 0, 0);
        assert_eq!(wall_deadline_problem(300, later, i64::MAX), None);
        assert!(wall_deadline_problem(300, later, END_OF_TIME_T_US).is_some());
    }

    #[test]
    fn times_after_2038_are_aligned_and_dated_like_any_other() {
        // Pure i64 arithmetic: the same on a 32-bit system.
        let t = utc_us(2040, 2, 29, 23, 59, 59) + 500_000;
        assert_eq!(period_end_us(t, 300), utc_us(2040, 3, 1, 0, 0, 0));
        assert_eq!(day_folder(t), "2040-02-29");
        assert_eq!(day_folder(END_OF_TIME_T_US), "2038-01-19");
        assert_eq!(day_folder(END_OF_TIME_T_US + US_PER_S), "2038-01-19");
        assert_eq!(
            relative_path(utc_us(2106, 2, 7, 6, 28, 16)),
            PathBuf::from("2106-02-07/4294967296000000.sqlite")
        );
    }

    #[test]
    fn the_latest_wall_deadline_is_the_end_of_time_t() {
        if std::mem::size_of::<libc::time_t>() == 4 {
            assert_eq!(latest_wall_deadline_us(), END_OF_TIME_T_US);
        } else {
            assert_eq!(latest_wall_deadline_us(), i64::MAX);
        }
    }

    #[test]
    fn a_config_checked_now_accepts_a_day_and_judges_136_years_by_time_t() {
        let now = SystemTime::now();
        assert_eq!(wall_deadline_problem_at(86_400, now), None);
        let longest = wall_deadline_problem_at(u64::from(u32::MAX), now);
        assert_eq!(longest.is_some(), std::mem::size_of::<libc::time_t>() == 4);
    }
}
