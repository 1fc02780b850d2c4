//! The two clocks.
//!
//! Monotonic deadlines (commit, keep-alive, backoff) are `Instant`s and set
//! the poll timeout. Wall-clock deadlines (file rotation) use a
//! `CLOCK_REALTIME` timerfd armed with `TFD_TIMER_ABSTIME |
//! TFD_TIMER_CANCEL_ON_SET`: it fires at the wall-clock moment even if the
//! clock is stepped meanwhile (a Raspberry Pi without a battery clock jumps
//! when NTP syncs), and a step wakes it with `ECANCELED` so the loop can
//! re-evaluate; [`StepWatch`] says by how much the clock stepped (the loop
//! keeps the timer armed even with no file open, so every step is seen).

use crate::layout;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Unix microseconds of the wall clock now.
pub fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// A `CLOCK_REALTIME` timerfd for the earliest rotation deadline.
#[derive(Debug)]
pub struct WallTimer {
    fd: OwnedFd,
    armed_at: Option<i64>,
}

impl WallTimer {
    /// Creates the timerfd (disarmed).
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned exactly once.
        let fd = unsafe {
            libc::timerfd_create(libc::CLOCK_REALTIME, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor.
        Ok(WallTimer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed_at: None,
        })
    }

    /// Registers the timer with the loop.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    /// Arms the timer for the wall-clock moment `at_us` (unix µs), or
    /// disarms it with `None`. Re-arming for the same moment is free.
    pub fn set(&mut self, at_us: Option<i64>) -> io::Result<()> {
        if self.armed_at == at_us {
            return Ok(());
        }
        let mut spec: libc::itimerspec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        if let Some(t) = at_us {
            // A zero it_value disarms; never ask for exactly the epoch.
            let t = t.max(1);
            if t > layout::latest_wall_deadline_us() {
                return Err(beyond_time_t(t));
            }
            // In range of time_t (checked above), so the cast cannot wrap.
            spec.it_value.tv_sec = t.div_euclid(1_000_000) as libc::time_t;
            spec.it_value.tv_nsec = (t.rem_euclid(1_000_000) * 1000) as libc::c_long;
        }
        let flags = libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET;
        // SAFETY: valid fd and pointer to an initialised itimerspec.
        let rc = unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), flags, &spec, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_at = at_us;
        Ok(())
    }

    /// Consumes the expiry after a readable event. Returns true if the clock
    /// was stepped (the caller re-evaluates every wall deadline either way).
    pub fn acknowledge(&mut self) -> bool {
        let mut buf = [0u8; 8];
        // SAFETY: valid fd, 8-byte buffer as timerfd requires.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        let stepped = n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECANCELED);
        // Either way the timer needs arming again.
        self.armed_at = None;
        stepped
    }
}

/// How far the wall clock has moved against the monotonic one: the size
/// of a step the [`WallTimer`] reported. Pure: both clocks are read by the
/// caller and passed in.
#[derive(Debug, Clone, Copy)]
pub struct StepWatch {
    /// The monotonic moment of the last observation.
    mono: Instant,
    /// The wall clock (unix µs) at that moment.
    wall_us: i64,
}

impl StepWatch {
    /// Starts watching from the pair of readings `wall_us` and `mono`.
    pub fn new(wall_us: i64, mono: Instant) -> Self {
        StepWatch { mono, wall_us }
    }

    /// After a step: how far (µs, positive = forward) the wall clock moved
    /// beyond the monotonic time that passed since the last observation;
    /// the new readings become the reference.
    pub fn step_us(&mut self, wall_us: i64, mono: Instant) -> i64 {
        let elapsed = mono.saturating_duration_since(self.mono).as_micros();
        let elapsed = i64::try_from(elapsed).unwrap_or(i64::MAX);
        let step = wall_us.saturating_sub(self.wall_us).saturating_sub(elapsed);
        *self = StepWatch::new(wall_us, mono);
        step
    }
}

/// A step of the wall clock in words: `forward by 3 days 2 h 0 min 12.500 s`.
pub fn step_words(step_us: i64) -> String {
    let way = if step_us < 0 { "back" } else { "forward" };
    let us = step_us.unsigned_abs();
    let (days, rest) = (us / 86_400_000_000, us % 86_400_000_000);
    let (h, rest) = (rest / 3_600_000_000, rest % 3_600_000_000);
    let (m, rest) = (rest / 60_000_000, rest % 60_000_000);
    let s = format!("{}.{:03} s", rest / 1_000_000, rest % 1_000_000 / 1_000);
    let text = match (days, h, m) {
        (0, 0, 0) => s,
        (0, 0, _) => format!("{m} min {s}"),
        (0, _, _) => format!("{h} h {m} min {s}"),
        _ => format!("{days} days {h} h {m} min {s}"),
    };
    format!("{way} by {text}")
}

/// The error for a wall deadline a 32-bit `time_t` cannot hold (it would
/// wrap to 1901 and fire at once, or be refused as `EINVAL`).
fn beyond_time_t(at_us: i64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "cannot arm the rotation timer for unix time {} s: this system's time_t \
             ends at {} s (2038-01-19T03:14:07Z on a 32-bit OS)",
            at_us.div_euclid(1_000_000),
            layout::latest_wall_deadline_us() / 1_000_000
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_us_is_after_2020_and_before_2100() {
        let t = now_us();
        assert!(t > 1_577_836_800_000_000 && t < 4_102_444_800_000_000);
    }

    #[test]
    fn a_timer_in_the_past_fires_at_once() {
        let mut w = WallTimer::new().unwrap();
        w.set(Some(now_us() - 1_000_000)).unwrap();
        let mut buf = [0u8; 8];
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::read(w.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        assert_eq!(n, 8);
    }

    /// 2040-01-01T00:00:00Z: after the end of a 32-bit `time_t`.
    const AFTER_2038_US: i64 = 2_208_988_800_000_000;

    #[test]
    fn a_deadline_after_2038_is_armed_where_time_t_holds_it_and_refused_where_not() {
        let mut w = WallTimer::new().unwrap();
        let r = w.set(Some(AFTER_2038_US));
        if AFTER_2038_US <= layout::latest_wall_deadline_us() {
            r.unwrap();
            // Armed for 2040, so not expired now (a wrapped value would be).
            let mut buf = [0u8; 8];
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::read(w.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            assert_eq!(n, -1);
            assert_eq!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN)
            );
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("2038-01-19"), "{e}");
            // Refused, not half-armed: the same moment is refused again.
            assert!(w.set(Some(AFTER_2038_US)).is_err());
        }
    }

    #[test]
    fn the_last_moment_time_t_holds_can_be_armed() {
        let mut w = WallTimer::new().unwrap();
        w.set(Some(layout::latest_wall_deadline_us().min(AFTER_2038_US)))
            .unwrap();
    }

    #[test]
    fn a_step_is_the_wall_time_that_passed_beyond_the_monotonic_time() {
        let t0 = Instant::now();
        let wall0 = 1_700_000_000_000_000;
        let mut w = StepWatch::new(wall0, t0);
        // 10 s pass on both clocks, then NTP steps the wall clock 3 days on.
        let t1 = t0 + std::time::Duration::from_secs(10);
        let three_days = 3 * 86_400_000_000;
        assert_eq!(w.step_us(wall0 + 10_000_000 + three_days, t1), three_days);
        // The next step is measured from the new reference: 2 s back.
        let t2 = t1 + std::time::Duration::from_secs(1);
        assert_eq!(
            w.step_us(wall0 + 11_000_000 + three_days - 2_000_000, t2),
            -2_000_000
        );
    }

    #[test]
    fn a_step_reads_in_words_with_its_direction_and_size() {
        assert_eq!(step_words(1_500_000), "forward by 1.500 s");
        assert_eq!(step_words(-90_000_000), "back by 1 min 30.000 s");
        assert_eq!(
            step_words(3 * 86_400_000_000 + 7_212_500_000),
            "forward by 3 days 2 h 0 min 12.500 s"
        );
        assert_eq!(step_words(i64::MIN).split(' ').next(), Some("back"));
    }
}
