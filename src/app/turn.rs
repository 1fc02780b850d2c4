//! The loop's small pieces of state between turns, kept apart from `App`
//! so that each is a unit test: what a turn's events asked for, the
//! systemd watchdog's schedule, the longest turn, the poll timeout and
//! the wall timer's next moment.
//!
//! Owns: that arithmetic. Must not: read a clock or touch a stream.

use crate::event_loop;
use std::time::{Duration, Instant};

/// What one turn's events asked for, carried out after every token is
/// dispatched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Turn {
    /// SIGINT/SIGTERM: begin the stop sequence.
    pub(super) stop: bool,
    /// SIGHUP or a step of the wall clock: close every open file.
    pub(super) rotate_all: bool,
}

/// systemd's watchdog, fed from the loop's own deadlines, so that a
/// wedged loop stops feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Watchdog {
    /// `WATCHDOG_USEC` halved; `None`: no watchdog.
    pub(super) every: Option<Duration>,
    /// When the next WATCHDOG=1 is due.
    pub(super) due: Option<Instant>,
}

impl Watchdog {
    /// The first WATCHDOG=1 is due at `start`.
    pub(super) fn new(every: Option<Duration>, start: Instant) -> Watchdog {
        Watchdog {
            every,
            due: every.map(|_| start),
        }
    }

    /// True when a WATCHDOG=1 is due at `now`; the next one is then due
    /// `every` later.
    pub(super) fn take_due(&mut self, now: Instant) -> bool {
        if let (Some(due), Some(every)) = (self.due, self.every)
            && now >= due
        {
            self.due = Some(now + every);
            return true;
        }
        false
    }
}

/// The longest loop turn so far, logged at the stop: a long turn delays
/// every stream (the benchmark reads it to bound rotation stalls).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LongestTurn {
    /// Wall time.
    pub(super) wall: Duration,
    /// The same in CPU time: on a loaded machine the wall figure includes
    /// time the scheduler gave to other processes.
    pub(super) cpu: Duration,
}

impl LongestTurn {
    /// Records one turn; true if it is the longest so far in wall time.
    pub(super) fn record(&mut self, wall: Duration, cpu: Duration) -> bool {
        self.cpu = self.cpu.max(cpu);
        if wall > self.wall {
            self.wall = wall;
            return true;
        }
        false
    }
}

/// How long the poll may wait: not at all while bytes wait unread in a
/// stream, otherwise until `deadline` (`None`: until an event).
pub(super) fn poll_timeout(
    unread: bool,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<Duration> {
    if unread {
        Some(Duration::ZERO)
    } else {
        event_loop::timeout(deadline, now)
    }
}

/// The wall timer's next moment: the earliest rotation, or, with no file
/// open, the far moment that only a step of the clock reaches; `None`
/// once that has passed too.
pub(super) fn wall_target(rotation_us: Option<i64>, far_us: i64, now_us: i64) -> Option<i64> {
    rotation_us.or_else(|| (far_us > now_us).then_some(far_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_bytes_make_the_poll_return_at_once_whatever_the_deadline() {
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert_eq!(poll_timeout(true, Some(far), now), Some(Duration::ZERO));
        assert_eq!(poll_timeout(true, None, now), Some(Duration::ZERO));
    }

    #[test]
    fn without_unread_bytes_the_poll_waits_until_the_deadline_or_an_event() {
        let now = Instant::now();
        let soon = now + Duration::from_millis(40);
        assert_eq!(
            poll_timeout(false, Some(soon), now),
            Some(Duration::from_millis(40))
        );
        assert_eq!(
            poll_timeout(false, Some(now), now + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(poll_timeout(false, None, now), None);
    }

    #[test]
    fn the_wall_timer_follows_the_rotation_or_else_the_far_moment_until_it_passes() {
        assert_eq!(wall_target(Some(5_000), 9_000, 1_000), Some(5_000));
        // The rotation wins even when the far moment is earlier.
        assert_eq!(wall_target(Some(9_500), 9_000, 1_000), Some(9_500));
        assert_eq!(wall_target(None, 9_000, 1_000), Some(9_000));
        assert_eq!(wall_target(None, 9_000, 9_000), None);
        assert_eq!(wall_target(None, 9_000, 12_000), None);
    }

    #[test]
    fn the_watchdog_is_due_at_start_then_every_period_after_it_was_fed() {
        let start = Instant::now();
        let every = Duration::from_secs(10);
        let mut w = Watchdog::new(Some(every), start);
        assert_eq!(w.due, Some(start));
        assert!(w.take_due(start));
        assert_eq!(w.due, Some(start + every));
        assert!(!w.take_due(start + Duration::from_secs(9)));
        // Fed late: the next one is a full period after this one.
        let late = start + Duration::from_secs(13);
        assert!(w.take_due(late));
        assert_eq!(w.due, Some(late + every));
    }

    #[test]
    fn without_a_watchdog_nothing_is_ever_due() {
        let start = Instant::now();
        let mut w = Watchdog::new(None, start);
        assert_eq!(w.due, None);
        assert!(!w.take_due(start + Duration::from_secs(3600)));
    }

    #[test]
    fn the_longest_turn_keeps_the_maxima_of_wall_and_cpu_time_apart() {
        let ms = Duration::from_millis;
        let mut l = LongestTurn::default();
        assert!(l.record(ms(5), ms(1)));
        assert!(!l.record(ms(3), ms(4)), "not longer in wall time");
        assert!(!l.record(ms(5), ms(2)), "as long is not longer");
        assert!(l.record(ms(8), ms(2)));
        assert_eq!(
            l,
            LongestTurn {
                wall: ms(8),
                cpu: ms(4)
            }
        );
    }
}
