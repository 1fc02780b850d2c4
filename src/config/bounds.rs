//! The bounds of every period in the configuration, as pure functions.
//!
//! Lower bounds keep a tiny value from turning a deadline into a busy loop
//! (a report every microsecond, a commit deadline that is always due).
//! Upper bounds keep deadline arithmetic inside what the platform can
//! express: on 32-bit Raspberry Pi OS `time_t` is 32 bits, so a timerfd
//! cannot be armed past 2038-01-19 03:14:07 UTC, and a rotation period whose
//! first end lies beyond that would wrap to a moment in the past (a timer
//! that fires at once, for ever).
//!
//! Owns: the limits and the checks that name them. Must not: read the
//! clock or the configuration itself (the caller passes `now` and values)
//! or report problems (it returns the message; the checker reports it).

use crate::store::rotation;
use std::time::Duration;

/// Shortest `console-feedback-period-seconds`.
pub const MIN_FEEDBACK: Duration = Duration::from_millis(100);

/// Longest `console-feedback-period-seconds`, and of any other monotonic
/// period: 2^30 s (34 years). Half of a 32-bit `time_t`, so that the
/// monotonic clock (seconds since boot) plus the period still fits one.
pub const MAX_MONOTONIC_S: u64 = 1 << 30;

/// Shortest `commit-interval-ms`.
pub const MIN_COMMIT_MS: u64 = 10;

/// Shortest `file-rotation-time-seconds`.
pub const MIN_ROTATION_S: u64 = 1;

/// The largest seconds value this build's `time_t` holds.
pub fn time_t_max() -> i64 {
    if std::mem::size_of::<libc::time_t>() <= 4 {
        i64::from(i32::MAX)
    } else {
        i64::MAX
    }
}

/// Why `seconds` is not a usable `console-feedback-period-seconds`, if it
/// is not.
pub fn feedback_problem(seconds: f64) -> Option<String> {
    let min = MIN_FEEDBACK.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "2^30 is exact in an f64")]
    let max = MAX_MONOTONIC_S as f64;
    if seconds.is_nan() || seconds < min || seconds > max {
        Some(format!(
            "must be a number of seconds from {min} to {max}; found {seconds}"
        ))
    } else {
        None
    }
}

/// Why a rotation period of `period_s` seconds cannot be used at the wall
/// clock moment `now_us` on a platform whose `time_t` holds at most
/// `time_t_max` seconds, if it cannot: the end of the current period (the
/// moment the rotation timer is armed for) must be expressible.
pub fn rotation_problem(period_s: u64, now_us: i64, time_t_max: i64) -> Option<String> {
    if period_s < MIN_ROTATION_S {
        return Some(format!("must be at least {MIN_ROTATION_S} second"));
    }
    let end_s = rotation::period_end_us(now_us, period_s).div_euclid(1_000_000);
    if end_s > time_t_max {
        let last = rotation::day_folder(time_t_max.saturating_mul(1_000_000));
        return Some(format!(
            "a period of {period_s} s would end after {last}, past the last moment this \
             system's 32-bit time_t can hold; use a shorter period"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28 00:00:00 UTC.
    const NOW_US: i64 = 1_795_824_000_000_000;
    const T32: i64 = i32::MAX as i64;

    #[test]
    fn a_tiny_feedback_period_is_refused_and_a_sane_one_accepted() {
        assert!(feedback_problem(0.000_001).is_some());
        assert!(feedback_problem(0.05).is_some());
        assert!(feedback_problem(0.0).is_some());
        assert!(feedback_problem(-3.0).is_some());
        assert!(feedback_problem(f64::NAN).is_some());
        assert!(feedback_problem(0.1).is_none());
        assert!(feedback_problem(0.5).is_none());
        assert!(feedback_problem(3.0).is_none());
        assert!(feedback_problem(1e30).is_some());
        let msg = feedback_problem(0.001).unwrap();
        assert!(msg.contains("from 0.1"), "{msg}");
    }

    #[test]
    fn on_a_32_bit_time_t_a_rotation_period_ending_after_2038_is_refused() {
        // The period end of 2^31 s (68 years) is 2^31 s after the epoch:
        // one second past the last 32-bit moment.
        let msg = rotation_problem(1 << 31, NOW_US, T32).unwrap();
        assert!(msg.contains("2038-01-19"), "{msg}");
        assert!(rotation_problem(40 * 365 * 86_400, NOW_US, T32).is_some());
        assert!(rotation_problem(u64::from(u32::MAX), NOW_US, T32).is_some());
    }

    #[test]
    fn on_a_32_bit_time_t_ordinary_periods_are_accepted() {
        for p in [1, 300, 3_600, 86_400, 7 * 86_400, 365 * 86_400] {
            assert_eq!(rotation_problem(p, NOW_US, T32), None, "{p}");
        }
    }

    #[test]
    fn the_32_bit_guard_is_exact_at_the_boundary() {
        // A one-day period: the last period that ends by 2^31 - 1 s is
        // accepted, the one after it is not.
        let day = 86_400;
        let last_end = (T32 / day) * day; // 2038-01-19 00:00:00
        let inside_us = (last_end - 1) * 1_000_000;
        assert_eq!(rotation_problem(day as u64, inside_us, T32), None);
        let after_us = last_end * 1_000_000;
        assert!(rotation_problem(day as u64, after_us, T32).is_some());
    }

    #[test]
    fn on_a_64_bit_time_t_even_the_longest_period_is_accepted() {
        assert_eq!(
            rotation_problem(u64::from(u32::MAX), NOW_US, i64::MAX),
            None
        );
    }

    #[test]
    fn a_zero_rotation_period_is_refused() {
        assert!(rotation_problem(0, NOW_US, i64::MAX).is_some());
    }

    #[test]
    fn this_build_knows_its_time_t() {
        let expected = if cfg!(target_pointer_width = "64") {
            i64::MAX
        } else {
            time_t_max()
        };
        assert_eq!(time_t_max(), expected);
        assert!(time_t_max() >= T32);
    }
}
