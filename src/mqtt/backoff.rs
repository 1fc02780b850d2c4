//! Reconnect policy: jittered exponential backoff, about 0.5 s up to 30 s.
//!
//! Pure: the caller passes the time a connection lasted; randomness comes
//! from a small seeded generator, so tests are deterministic.

use std::time::Duration;

/// First delay before jitter.
pub const INITIAL: Duration = Duration::from_millis(500);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(30);
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
    /// doubles from [`INITIAL`] with each failure up to [`MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let shift = self.attempts.min(16);
        let starting = !self.ever_connected && self.attempts < FIRST_CONNECT_TRIES;
        self.attempts = self.attempts.saturating_add(1);
        let mut full = INITIAL.saturating_mul(1u32 << shift).min(MAX);
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
            let d = b.next_delay();
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
    fn reset_starts_again_from_the_initial_delay() {
        let mut b = Backoff::new(7);
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= INITIAL);
    }

    #[test]
    fn different_seeds_give_different_jitter() {
        let a: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(1);
                move |_| b.next_delay()
            })
            .collect();
        let c: Vec<_> = (0..5)
            .map({
                let mut b = Backoff::new(99);
                move |_| b.next_delay()
            })
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn a_broker_never_reached_is_tried_every_few_seconds_for_the_first_two_minutes() {
        let mut b = Backoff::new(5);
        let mut waited = Duration::ZERO;
        for i in 0..FIRST_CONNECT_TRIES {
            let d = b.next_delay();
            assert!(d <= FIRST_CONNECT_MAX, "try {i}: {d:?}");
            waited += d;
        }
        assert!(waited >= Duration::from_secs(50), "{waited:?}");
        assert!(waited <= Duration::from_secs(120), "{waited:?}");
        // Then the usual growth up to 30 s.
        let later: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert!(later.iter().all(|d| *d >= MAX / 2), "{later:?}");
    }

    #[test]
    fn after_a_first_connection_the_short_start_up_tries_are_over() {
        let mut b = Backoff::new(9);
        b.next_delay();
        b.connected();
        b.reset();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[7] >= MAX / 2, "{delays:?}");
    }
}
