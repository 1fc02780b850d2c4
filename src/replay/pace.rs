//! When each replayed row is due: the recorded gaps divided by the speed.
//! Pure arithmetic; the loop passes the start instant and reads the clock.

use std::time::{Duration, Instant};

/// The schedule of a replay.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// `--speed`: 1 = as recorded, 2 = twice as fast, 0 = no waiting.
    speed: f64,
    /// When the first row went out, and its timestamp.
    origin: Option<(Instant, i64)>,
}

impl Pace {
    /// A schedule at `speed` (0 or less = as fast as the broker takes it).
    pub fn new(speed: f64) -> Pace {
        Pace {
            speed,
            origin: None,
        }
    }

    /// When a row recorded at `t_us` is due. The first row asked about is
    /// due at `now` and anchors the schedule; a row recorded before the
    /// anchor (a clock step in the recording) is due at once.
    pub fn due(&mut self, t_us: i64, now: Instant) -> Instant {
        if self.speed <= 0.0 || !self.speed.is_finite() {
            return now;
        }
        let (start, t0) = *self.origin.get_or_insert((now, t_us));
        let gap_us = t_us.saturating_sub(t0).max(0);
        // Microseconds as f64 are exact up to 2^53 us (285 years).
        let scaled_s = gap_us as f64 / 1e6 / self.speed;
        start + Duration::try_from_secs_f64(scaled_s).unwrap_or(Duration::MAX / 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_divided_by_the_speed_from_the_first_row() {
        let t = Instant::now();
        let mut p = Pace::new(2.0);
        assert_eq!(p.due(10_000_000, t), t);
        assert_eq!(p.due(11_000_000, t), t + Duration::from_millis(500));
        let mut slow = Pace::new(0.5);
        slow.due(0, t);
        assert_eq!(slow.due(1_000_000, t), t + Duration::from_secs(2));
    }

    #[test]
    fn speed_zero_never_waits() {
        let t = Instant::now();
        let mut p = Pace::new(0.0);
        p.due(0, t);
        assert_eq!(p.due(3_600_000_000, t), t);
    }

    #[test]
    fn a_row_older_than_the_first_is_due_at_once() {
        let t = Instant::now();
        let mut p = Pace::new(1.0);
        p.due(5_000_000, t);
        assert_eq!(p.due(1_000_000, t + Duration::from_secs(1)), t);
    }
}
