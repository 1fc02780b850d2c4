//! Bounded per-topic state for filters, the `topics:` scope they apply to,
//! and the payload hash they compare.
//!
//! Owns: the `max-topics` bound and its policy (forget the least recently
//! seen topics, a tenth at a time), and the 64-bit payload hash. Must not:
//! decide whether a message is kept; that is each filter's job.
//!
//! Policy when the table is full: the least recently seen tenth of the
//! topics is forgotten in one pass, so the cost per new topic stays
//! constant (one O(n) pass per n/10 new topics). A forgotten topic's next
//! message is treated as the first one seen, so it is *stored*: the bound
//! can only make a filter store more, never lose a message. Passing
//! untracked topics through instead would freeze the table on the first
//! `max-topics` topics forever (topics that went silent would keep their
//! slots), which suits a changing topic set worse.

use crate::mqtt::topic;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Default for the `max-topics` option of the per-topic filters.
pub const DEFAULT_MAX_TOPICS: u64 = 10_000;
/// Upper limit for `max-topics`.
pub const MAX_MAX_TOPICS: u64 = 10_000_000;

/// Which topics a filter applies to (`topics:`); empty means all.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    filters: Vec<String>,
}

impl Scope {
    /// A scope over these topic filters; `[]` = every topic.
    pub fn new(filters: Vec<String>) -> Self {
        Scope { filters }
    }

    /// True if the filter applies to `topic`.
    pub fn applies(&self, t: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| topic::matches(t, f))
    }
}

/// A 64-bit SipHash of `payload`, with fixed keys (stable within a run).
/// Two different payloads collide with probability about 2^-64 per
/// comparison: a changed payload could be taken for unchanged once in
/// ~10^19 changes.
pub fn payload_hash(payload: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    h.finish()
}

#[derive(Debug)]
struct Entry<V> {
    /// Unix µs of the last message seen on the topic (for eviction).
    seen_us: i64,
    value: V,
}

/// Per-topic state `V` for at most `max` topics.
#[derive(Debug)]
pub struct TopicTable<V> {
    map: HashMap<Box<str>, Entry<V>>,
    max: usize,
    /// Topics forgotten because the table was full, since start.
    evicted: u64,
    /// Reused for the eviction pass.
    scratch: Vec<i64>,
}

impl<V> TopicTable<V> {
    /// An empty table for at most `max` (>= 1) topics.
    pub fn new(max: usize) -> Self {
        TopicTable {
            map: HashMap::new(),
            max: max.max(1),
            evicted: 0,
            scratch: Vec::new(),
        }
    }

    /// The state of `topic`, marking it seen at `now_us`. Never allocates.
    pub fn get(&mut self, topic: &str, now_us: i64) -> Option<&mut V> {
        let e = self.map.get_mut(topic)?;
        e.seen_us = now_us;
        Some(&mut e.value)
    }

    /// Starts tracking `topic` (first sight: the only allocation), making
    /// room first if the table is full.
    pub fn insert(&mut self, topic: &str, now_us: i64, value: V) {
        if self.map.len() >= self.max {
            self.evict();
        }
        self.map.insert(
            topic.into(),
            Entry {
                seen_us: now_us,
                value,
            },
        );
    }

    /// Forgets the least recently seen tenth (at least one) of the topics.
    fn evict(&mut self) {
        let n = (self.map.len() / 10).max(1);
        self.scratch.clear();
        self.scratch.extend(self.map.values().map(|e| e.seen_us));
        let (_, &mut cut, _) = self.scratch.select_nth_unstable(n - 1);
        // Everything strictly older than `cut` goes, then ties until n.
        let older = self.scratch.iter().filter(|&&s| s < cut).count();
        let mut ties = n - older;
        self.map.retain(|_, e| {
            if e.seen_us < cut {
                false
            } else if e.seen_us == cut && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += n as u64;
    }

    /// Keeps only the topics whose state passes `keep` (time-based expiry).
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.map.retain(|_, e| keep(&e.value));
    }

    /// Topics tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No topic tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Topics forgotten because the table was full, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_forgets_the_least_recently_seen_tenth() {
        let mut t = TopicTable::new(20);
        for i in 0..20 {
            t.insert(&format!("t/{i}"), i64::from(i), ());
        }
        // t/0 and t/1 are the oldest, but t/0 is seen again now.
        assert!(t.get("t/0", 100).is_some());
        t.insert("new", 101, ());
        assert_eq!(t.len(), 19);
        assert_eq!(t.evicted(), 2);
        assert!(t.get("t/0", 102).is_some());
        assert!(t.get("t/1", 102).is_none());
        assert!(t.get("t/2", 102).is_none());
        assert!(t.get("t/3", 102).is_some());
        assert!(t.get("new", 102).is_some());
    }

    #[test]
    fn ties_are_evicted_only_up_to_the_tenth() {
        let mut t = TopicTable::new(10);
        for i in 0..10 {
            t.insert(&format!("t/{i}"), 5, ());
        }
        t.insert("new", 6, ());
        assert_eq!(t.len(), 10);
        assert_eq!(t.evicted(), 1);
    }

    #[test]
    fn the_table_never_exceeds_its_bound() {
        let mut t = TopicTable::new(7);
        for i in 0..1000 {
            t.insert(&format!("t/{i}"), i, i);
            assert!(t.len() <= 7);
        }
        t.retain(|v| *v >= 998);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_empty_scope_applies_everywhere_including_dollar_topics() {
        assert!(Scope::new(vec![]).applies("$SYS/x"));
        let s = Scope::new(vec!["a/#".into(), "b/+".into()]);
        assert!(s.applies("a") && s.applies("b/c") && !s.applies("b/c/d"));
    }

    #[test]
    fn equal_payloads_hash_equal_and_different_ones_differ() {
        assert_eq!(payload_hash(b"21.5"), payload_hash(b"21.5"));
        assert_ne!(payload_hash(b"21.5"), payload_hash(b"21.6"));
        assert_ne!(payload_hash(b""), payload_hash(b"\0"));
    }
}
