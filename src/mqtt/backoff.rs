//! Reconnect policy: jittered exponential backoff, about 0.5 s up to 30 s
//! for a broker that answers and refuses or fails us, and up to 5 s while
//! the broker cannot be reached at all (a network outage), so that Attic is
//! back within seconds of the path returning.
//!
//! Pure: the caller says what kind of failure it was; randomness comes
//! from a small seeded generator, so tests are deterministic.

use std::time::Duration;

/// First delay before jitter.
pub const INITIAL: Duration = Duration::from_millis(500);
/// Longest delay after a broker answered (refused us, sent garbage, closed
/// a connection): such a broker is not hammered.
pub const MAX: Duration = Duration::from_secs(30);
/// Longest delay while the broker cannot be reached (the TCP connect
/// failed or timed out): an attempt costs the broker nothing, and a long
/// outage must not leave Attic asleep long after the network is back.
pub const UNREACHABLE_MAX: Duration = Duration::from_secs(5);

/// What ended the last attempt; it decides the longest delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection came about (refused, unreachable, timed out).
    Unreachable,
    /// A TCP connection existed: the broker refused, failed or dropped it.
    Broker,
}
/// A connection that lasted this long counts as healthy: the next failure
/// starts again from [`INITIAL`]. Shorter-lived connections (a broker that
/// accepts and then sends garbage) keep growing the delay, so a hostile
/// broker cannot make Attic reconnect in a tight loop.
pub const STABLE: Duration = Duration::from_secs(30);

/// Until the first connection ever succeeds, delays stay at most this
/// long for the first [`FIRST_CONNECT_TRIES`] tries: a broker started a
/// little after Attic (a new install, a boot order) is found within
/// seconds, not after up to [`MAX`].
pub const FIRST_CONNECT_MAX: Duration = Duration::from_secs(5);

/// How many short tries a never-connected stream makes (about two
/// minutes) before its delays grow to [`MAX`] as usual.
pub const FIRST_CONNECT_TRIES: u32 = 24;

/// Jittered exponential backoff state of one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Consecutive failures since the last healthy connection.
    attempts: u32,
    /// xorshift64 state for the jitter.
    rng: u64,
    /// A connection has succeeded at least once.
    ever_connected: bool,
}

impl Backoff {
    /// A fresh policy; `seed` varies the jitter between streams and processes.
    pub fn new(seed: u64) -> Self {
        Backoff {
            attempts: 0,
            rng: seed | 1,
            ever_connected: false,
        }
    }

    /// A connection succeeded: from now on delays grow to [`MAX`] (the
    /// short start-up tries are only for a broker never reached yet).
    pub fn connected(&mut self) {
        self.ever_connected = true;
    }

    /// Forget past failures (after a healthy connection).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The delay before the next attempt: uniform in `[d/2, d]` where `d`
    /// doubles from [`INITIAL`] with each failure up to [`MAX`], or up to
    /// [`UNREACHABLE_MAX`] when the broker could not be reached.
    pub fn next_delay(&mut self, failure: Failure) -> Duration {
        let shift = self.attempts.min(16);
        let starting = !self.ever_connected && self.attempts < FIRST_CONNECT_TRIES;
        self.attempts = self.attempts.saturating_add(1);
        let cap = match failure {
            Failure::Unreachable => UNREACHABLE_MAX,
            Failure::Broker => MAX,
        };
        let mut full = INITIAL.saturating_mul(1u32 << shift).min(cap);
        if starting {
            full = full.min(FIRST_CONNECT_MAX);
        }
        let half = full / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.random() % (span + 1))
    }

    /// Consecutive failures counted so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_half_a_second_up_to_thirty_seconds_with_jitter() {
        let mut b = Backoff::new(42);
        b.connected();
        let mut prev_max = Duration::ZERO;
        for i in 0..20u32 {
            let d = b.next_delay(Failure::Broker);
            let full = INITIAL.saturating_mul(1 << i.min(16)).min(MAX);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {i}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
            prev_max = prev_max.max(d);
        }
        assert!(prev_max <= MAX);
    }

    #[test]
    fn an_unreachable_broker_is_tried_at_least_every_five_seconds_however_long_the_outage() {
        let mut b = Backoff::new(11);
        b.connected();
        for i in 0..100 {
            let d = b.next_delay(Failure::Unreachable);
            assert!(d <= UNREACHABLE_MAX, "attempt {i}: {d:?}");
        }
        assert!(b.next_delay(Failure::Unreachable) >= UNREACHABLE_MAX / 2);
        // A broker that answers and fails us again is not hammered.
        assert!(b.next_delay(Failure::Broker) >= MAX / 2);
    }

    #[test]
    fn reset_starts_again_from_the_initial_delay() {
        let mut b = Backoff::new(7);
        for _ in 0..10 {
            b.next_delay(Failure::Broker);
        }
        b.reset();
        assert!(b.next_delay(Failure::Broker) <= INITIAL);
    }

    #[test]
    fn different_seeds_give_different_jitter() {
        let a: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(1);
                move |_| b.next_delay(Failure::Broker)
            })
            .collect();
        let c: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(99);
                move |_| b.next_delay(Failure::Broker)
            })
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn a_broker_never_reached_is_tried_every_few_seconds_for_the_first_two_minutes() {
        let mut b = Backoff::new(5);
        let mut waited = Duration::ZERO;
        for i in 0..FIRST_CONNECT_TRIES {
            let d = b.next_delay(Failure::Broker);
            assert!(d <= FIRST_CONNECT_MAX, "try {i}: {d:?}");
            waited += d;
        }
        assert!(waited >= Duration::from_secs(50), "{waited:?}");
        assert!(waited <= Duration::from_secs(120), "{waited:?}");
        // Then the usual growth up to 30 s.
        let later: Vec<Duration> = (0..5).map(|_| b.next_delay(Failure::Broker)).collect();
        assert!(later.iter().all(|d| *d >= MAX / 2), "{later:?}");
    }

    #[test]
    fn after_a_first_connection_the_short_start_up_tries_are_over() {
        let mut b = Backoff::new(9);
        b.next_delay(Failure::Broker);
        b.connected();
        b.reset();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay(Failure::Broker)).collect();
        assert!(delays[7] >= MAX / 2, "{delays:?}");
    }
}
