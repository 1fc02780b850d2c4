//! The two clocks.
//!
//! Monotonic deadlines (commit, keep-alive, backoff) are `Instant`s and set
//! the poll timeout. Wall-clock deadlines (file rotation) use a
//! `CLOCK_REALTIME` timerfd armed with `TFD_TIMER_ABSTIME |
//! TFD_TIMER_CANCEL_ON_SET`: it fires at the wall-clock moment even if the
//! clock is stepped meanwhile (a Raspberry Pi without a battery clock jumps
//! when NTP syncs), and a step wakes it with `ECANCELED` so the loop can
//! re-evaluate.

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

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
}
