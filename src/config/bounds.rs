//! The bounds of every period in the configuration, as pure functions.
//!
//! Lower bounds keep a tiny value from turning a deadline into a busy loop
//! (a report every microsecond, a commit deadline that is always due); the
//! upper bound of a monotonic period keeps `now + period` inside a 32-bit
//! `time_t` for decades of uptime. (The wall-clock rotation deadline and a
//! 32-bit `time_t` are guarded with the rotation arithmetic and where the
//! timer is armed.)
//!
//! Owns: the limits and the checks that name them. Must not: read the
//! clock or the configuration itself, or report problems (it returns the
//! message; the checker reports it).

use std::time::Duration;

/// Shortest `console-feedback-period-seconds`.
pub const MIN_FEEDBACK: Duration = Duration::from_millis(100);

/// Longest `console-feedback-period-seconds`, and of any other monotonic
/// period: 2^30 s (34 years). Half of a 32-bit `time_t`, so that the
/// monotonic clock (seconds since boot) plus the period still fits one.
pub const MAX_MONOTONIC_S: u64 = 1 << 30;

/// Shortest `commit-interval-ms`.
pub const MIN_COMMIT_MS: u64 = 10;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
