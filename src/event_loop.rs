//! What every `mio` loop of Attic shares (the service's in `app`, and
//! `replay`'s): the earliest of the deadlines, the poll timeout it gives,
//! and one wait on the poll that takes an interrupted `epoll_wait` (a
//! signal arrived) as an empty turn instead of an error.
//!
//! Owns no state and reads no clock: `now` comes in. Imports no other
//! module of the crate.

use mio::{Events, Poll};
use std::io;
use std::time::{Duration, Instant};

/// The earliest of `deadlines`; `None` if none is set.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// How long a poll may wait at `now` for `deadline`: zero once it has
/// passed, `None` (until an event) without one.
pub fn timeout(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(now))
}

/// Waits for events or the timeout. `Ok(false)`: interrupted by a signal
/// before anything happened (the signalfd brings the signal itself).
pub fn wait(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
    match poll.poll(events, timeout) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_deadline_is_the_smallest_set_one_in_any_order() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let soon = t + Duration::from_millis(10);
        assert_eq!(earliest([Some(later), None, Some(soon), None]), Some(soon));
        assert_eq!(earliest([None, Some(soon), Some(later)]), Some(soon));
        assert_eq!(earliest([None, None]), None);
        assert_eq!(earliest(std::iter::empty()), None);
    }

    #[test]
    fn a_passed_deadline_waits_zero_and_no_deadline_waits_for_an_event() {
        let now = Instant::now();
        let d = now + Duration::from_millis(250);
        assert_eq!(timeout(Some(d), now), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout(Some(now), now + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(timeout(None, now), None);
    }
}
