//! `changes-only`: stores a message only when its payload differs from the
//! last one stored on the same topic; with `heartbeat-seconds`, an unchanged
//! payload is still stored once that long after the last stored one. Must
//! not: keep payloads (it keeps a 64-bit hash per topic, see
//! [`state::payload_hash`](super::state::payload_hash)) or more than
//! `max-topics` topics (see [`state`](super::state) for the policy).
//!
//! ```yaml
//! - changes-only: { topics: ["sensors/#"], heartbeat-seconds: 600, max-topics: 10000 }
//! ```
//! `topics` defaults to every topic; `changes-only: ["sensors/#"]` is short
//! for `{ topics: [...] }`.

use super::state::{DEFAULT_MAX_TOPICS, MAX_MAX_TOPICS, Scope, TopicTable, payload_hash};
use super::{Filter, Options, Verdict};
use crate::message::Message;

/// Upper limit for `heartbeat-seconds`.
const MAX_SECONDS: u64 = u32::MAX as u64;

#[derive(Debug)]
struct Last {
    /// Hash of the last stored payload.
    hash: u64,
    /// When it was stored, unix µs.
    stored_us: i64,
}

/// Drops repeats of the last stored payload, per topic.
#[derive(Debug)]
pub struct ChangesOnly {
    scope: Scope,
    /// Store an unchanged payload again after this many µs, if set.
    heartbeat_us: Option<i64>,
    last: TopicTable<Last>,
}

impl ChangesOnly {
    /// Applies to `scope`; `heartbeat_us` as above; at most `max_topics`.
    pub fn new(scope: Scope, heartbeat_us: Option<i64>, max_topics: usize) -> Self {
        ChangesOnly {
            scope,
            heartbeat_us,
            last: TopicTable::new(max_topics),
        }
    }

    /// Topics tracked now (for tests and reports).
    pub fn tracked(&self) -> usize {
        self.last.len()
    }
}

impl Filter for ChangesOnly {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        if !self.scope.applies(&msg.topic) {
            return Verdict::Keep;
        }
        let now = msg.timestamp_us;
        let hash = payload_hash(&msg.payload);
        let heartbeat = self.heartbeat_us;
        if let Some(last) = self.last.get(&msg.topic, now) {
            if last.hash == hash && !heartbeat_due(heartbeat, last.stored_us, now) {
                return Verdict::Drop;
            }
            *last = Last {
                hash,
                stored_us: now,
            };
            return Verdict::Keep;
        }
        let first = Last {
            hash,
            stored_us: now,
        };
        self.last.insert(&msg.topic, now, first);
        Verdict::Keep
    }

    fn wants_ticks(&self) -> bool {
        self.heartbeat_us.is_some()
    }

    /// With a heartbeat, a topic whose heartbeat is due will store its next
    /// message anyway: its state is forgotten to free room.
    fn tick(&mut self, now_us: i64) {
        if self.heartbeat_us.is_none() {
            return;
        }
        let hb = self.heartbeat_us;
        self.last
            .retain(|l| !heartbeat_due(hb, l.stored_us, now_us));
    }
}

/// True if `heartbeat_us` says "store again" for a payload stored at
/// `stored_us` (a clock that went back counts as due).
fn heartbeat_due(heartbeat_us: Option<i64>, stored_us: i64, now_us: i64) -> bool {
    heartbeat_us.is_some_and(|hb| now_us < stored_us || now_us - stored_us >= hb)
}

/// Options: `topics` (default all; also the shorthand), `heartbeat-seconds`
/// (1..), `max-topics` (default 10,000).
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    options.shorthand("topics");
    let scope = Scope::new(options.topics("topics"));
    let heartbeat = options.integer("heartbeat-seconds", 1, MAX_SECONDS);
    let max_topics = options
        .integer("max-topics", 1, MAX_MAX_TOPICS)
        .unwrap_or(DEFAULT_MAX_TOPICS);
    let heartbeat_us = heartbeat.and_then(|s| i64::try_from(s * 1_000_000).ok());
    Some(Box::new(ChangesOnly::new(
        scope,
        heartbeat_us,
        usize::try_from(max_topics).unwrap_or(usize::MAX),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::msg;

    const S: i64 = 1_000_000;

    fn verdicts(f: &mut ChangesOnly, msgs: &[(&str, &[u8], i64)]) -> Vec<Verdict> {
        msgs.iter()
            .map(|(t, p, ts)| f.check(&mut msg(t, p, *ts)))
            .collect()
    }

    #[test]
    fn repeats_are_dropped_and_changes_kept_per_topic() {
        use Verdict::{Drop, Keep};
        let mut f = ChangesOnly::new(Scope::default(), None, 100);
        let v = verdicts(
            &mut f,
            &[
                ("a", b"1", 0),
                ("a", b"1", S),
                ("b", b"1", S),
                ("a", b"2", 2 * S),
                ("a", b"1", 3 * S),
                ("a", b"1", 1_000_000 * S),
            ],
        );
        assert_eq!(v, vec![Keep, Drop, Keep, Keep, Keep, Drop]);
    }

    #[test]
    fn the_heartbeat_stores_an_unchanged_payload_once_per_period() {
        use Verdict::{Drop, Keep};
        let mut f = ChangesOnly::new(Scope::default(), Some(10 * S), 100);
        let v = verdicts(
            &mut f,
            &[
                ("a", b"x", 0),
                ("a", b"x", 9 * S),
                ("a", b"x", 10 * S),  // heartbeat
                ("a", b"x", 19 * S),
                ("a", b"y", 19 * S),  // change: restarts the period
                ("a", b"y", 28 * S),
                ("a", b"y", 29 * S),  // heartbeat
                ("a", b"y", 5 * S),   // clock went back: stored
            ],
        );
        assert_eq!(v, vec![Keep, Drop, Keep, Drop, Keep, Drop, Keep, Keep]);
    }

    #[test]
    fn topics_outside_the_scope_pass_untouched() {
        let mut f = ChangesOnly::new(Scope::new(vec!["s/#".into()]), None, 100);
        assert_eq!(f.check(&mut msg("x", b"1", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("x", b"1", 0)), Verdict::Keep);
        assert_eq!(f.tracked(), 0);
    }

    #[test]
    fn a_forgotten_topic_stores_its_next_message_so_the_bound_never_loses_one() {
        let mut f = ChangesOnly::new(Scope::default(), None, 10);
        for i in 0..10 {
            assert_eq!(f.check(&mut msg(&format!("t/{i}"), b"v", i)), Verdict::Keep);
        }
        // t/0 is the least recently seen; an 11th topic evicts it.
        assert_eq!(f.check(&mut msg("t/new", b"v", 20)), Verdict::Keep);
        assert_eq!(f.tracked(), 10);
        assert_eq!(f.check(&mut msg("t/0", b"v", 21)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("t/5", b"v", 22)), Verdict::Drop);
        assert_eq!(f.last.evicted(), 2);
    }

    #[test]
    fn ticks_forget_topics_whose_heartbeat_is_due() {
        let mut f = ChangesOnly::new(Scope::default(), Some(10 * S), 100);
        assert!(f.wants_ticks());
        f.check(&mut msg("a", b"1", 0));
        f.check(&mut msg("b", b"1", 5 * S));
        f.tick(10 * S);
        assert_eq!(f.tracked(), 1);
        assert!(!ChangesOnly::new(Scope::default(), None, 1).wants_ticks());
    }
}
