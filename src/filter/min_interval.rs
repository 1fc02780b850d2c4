//! `min-interval`: stores at most one message per topic per `seconds`
//! (downsampling: the first message of each interval is kept). Must not:
//! track more than `max-topics` topics (see [`state`](super::state) for the
//! policy: a forgotten topic's next message is stored).
//!
//! ```yaml
//! - min-interval: { topics: ["chatty/#"], seconds: 10, max-topics: 10000 }
//! ```
//! `topics` defaults to every topic; `min-interval: 10` is short for
//! `{ seconds: 10 }`.

use super::state::{DEFAULT_MAX_TOPICS, MAX_MAX_TOPICS, Scope, TopicTable};
use super::{Filter, Options, Verdict};
use crate::message::Message;

/// Upper limit for `seconds`.
const MAX_SECONDS: u64 = u32::MAX as u64;

/// Keeps at most one message per topic per interval.
#[derive(Debug)]
pub struct MinInterval {
    scope: Scope,
    interval_us: i64,
    /// Per topic: unix µs of the last stored message.
    stored: TopicTable<i64>,
}

impl MinInterval {
    /// Applies to `scope`, one message per `interval_us`, at most
    /// `max_topics` topics tracked.
    pub fn new(scope: Scope, interval_us: i64, max_topics: usize) -> Self {
        MinInterval {
            scope,
            interval_us,
            stored: TopicTable::new(max_topics),
        }
    }

    /// Topics tracked now.
    pub fn tracked(&self) -> usize {
        self.stored.len()
    }
}

/// True if a message at `now_us` may be stored after one at `last_us` (a
/// clock that went back counts as due).
fn due(interval_us: i64, last_us: i64, now_us: i64) -> bool {
    now_us < last_us || now_us - last_us >= interval_us
}

impl Filter for MinInterval {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        if !self.scope.applies(&msg.topic) {
            return Verdict::Keep;
        }
        let now = msg.timestamp_us;
        if let Some(last) = self.stored.get(&msg.topic, now) {
            if !due(self.interval_us, *last, now) {
                return Verdict::Drop;
            }
            *last = now;
            return Verdict::Keep;
        }
        self.stored.insert(&msg.topic, now, now);
        Verdict::Keep
    }

    fn wants_ticks(&self) -> bool {
        true
    }

    /// A topic whose interval has passed will store its next message
    /// anyway: its state is forgotten to free room.
    fn tick(&mut self, now_us: i64) {
        let interval = self.interval_us;
        self.stored.retain(|last| !due(interval, *last, now_us));
    }
}

/// Options: `seconds` (required, 1..; also the shorthand), `topics`
/// (default all), `max-topics` (default 10,000).
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    options.shorthand("seconds");
    let seconds = options.required_integer("seconds", 1, MAX_SECONDS);
    let scope = Scope::new(options.topics("topics"));
    let max_topics = options
        .integer("max-topics", 1, MAX_MAX_TOPICS)
        .unwrap_or(DEFAULT_MAX_TOPICS);
    let interval_us = i64::try_from(seconds? * 1_000_000).ok()?;
    Some(Box::new(MinInterval::new(
        scope,
        interval_us,
        usize::try_from(max_topics).unwrap_or(usize::MAX),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::msg;

    const S: i64 = 1_000_000;

    #[test]
    fn one_message_per_topic_per_interval_is_kept() {
        use Verdict::{Drop, Keep};
        let mut f = MinInterval::new(Scope::default(), 10 * S, 100);
        let v: Vec<_> = [
            ("a", 0),
            ("a", S),
            ("b", S),
            ("a", 9 * S),
            ("a", 10 * S),
            ("a", 15 * S),
            ("a", 20 * S),
            ("a", 3 * S), // clock went back: stored
        ]
        .iter()
        .map(|(t, ts)| f.check(&mut msg(t, b"p", *ts)))
        .collect();
        assert_eq!(v, vec![Keep, Drop, Keep, Drop, Keep, Drop, Keep, Keep]);
    }

    #[test]
    fn a_burst_keeps_only_its_first_message() {
        let mut f = MinInterval::new(Scope::new(vec!["chatty/#".into()]), S, 100);
        let kept = (0..1000)
            .filter(|i| f.check(&mut msg("chatty/x", b"p", i * 100)) == Verdict::Keep)
            .count();
        assert_eq!(kept, 1);
        assert_eq!(f.check(&mut msg("calm", b"p", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("calm", b"p", 0)), Verdict::Keep);
    }

    #[test]
    fn the_state_bound_forgets_old_topics_and_ticks_expire_due_ones() {
        let mut f = MinInterval::new(Scope::default(), 10 * S, 5);
        for i in 0..50 {
            f.check(&mut msg(&format!("t/{i}"), b"p", i));
            assert!(f.tracked() <= 5);
        }
        f.tick(10 * S + 48);
        assert_eq!(f.tracked(), 1);
    }
}
