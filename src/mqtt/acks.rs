//! The acknowledgements a session owes the broker: the queue of PUBACK and
//! PUBREC waiting for a commit, in arrival order, and the QoS 2 packet-id
//! sets that keep a redelivered QoS 2 message from being stored twice.
//!
//! Owns: [`Acks`] and its [`IdSet`]s. Must not: read a clock, own a socket,
//! or decide when a commit happened (the loop calls `release`).

use super::framing::{self, Ack};
use bytes::BytesMut;
use std::collections::VecDeque;

/// A set of packet ids: a pre-sized bitmap indexed by id (8 KiB), or an
/// empty one that tracks nothing (below QoS 2).
#[derive(Debug, Clone)]
struct IdSet(Vec<u64>);

impl IdSet {
    fn new() -> Self {
        IdSet(vec![0; 1024])
    }
    fn untracked() -> Self {
        IdSet(Vec::new())
    }
    fn is_tracking(&self) -> bool {
        !self.0.is_empty()
    }
    fn contains(&self, id: u16) -> bool {
        self.0[usize::from(id >> 6)] & (1 << (id & 63)) != 0
    }
    fn insert(&mut self, id: u16) {
        self.0[usize::from(id >> 6)] |= 1 << (id & 63);
    }
    fn remove(&mut self, id: u16) -> bool {
        let had = self.contains(id);
        self.0[usize::from(id >> 6)] &= !(1 << (id & 63));
        had
    }
    fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }
}

/// Acks waiting for a commit, and the QoS 2 ids in flight.
#[derive(Debug)]
pub(super) struct Acks {
    /// Acks waiting for the commit of the messages they acknowledge, in
    /// the order the messages arrived.
    queue: VecDeque<(Ack, u16)>,
    /// QoS 2 ids stored (or being stored) whose PUBREC is queued.
    rec_queued: IdSet,
    /// QoS 2 ids whose PUBREC was sent; waiting for PUBREL.
    rec_sent: IdSet,
}

impl Acks {
    /// Tracks QoS 2 ids only when subscribed at QoS 2.
    pub(super) fn new(qos2: bool) -> Self {
        let set = || {
            if qos2 {
                IdSet::new()
            } else {
                IdSet::untracked()
            }
        };
        Acks {
            queue: VecDeque::new(),
            rec_queued: set(),
            rec_sent: set(),
        }
    }

    /// Acks queued and not yet released.
    pub(super) fn pending(&self) -> usize {
        self.queue.len()
    }

    /// A PUBLISH arrived: queues its ack. `false` means a QoS 2 duplicate
    /// that must not be delivered again (a PUBREC for one already
    /// acknowledged is written to `outbox` at once).
    pub(super) fn accept(&mut self, qos: u8, pkid: u16, outbox: &mut BytesMut) -> bool {
        match qos {
            1 => {
                self.queue.push_back((Ack::PubAck, pkid));
                true
            }
            2 if !self.rec_queued.is_tracking() => {
                // Subscribed at QoS < 2 but the broker sent QoS 2: still
                // answer correctly, without duplicate tracking.
                self.queue.push_back((Ack::PubRec, pkid));
                true
            }
            2 => {
                if self.rec_queued.contains(pkid) {
                    false // its PUBREC follows the commit already
                } else if self.rec_sent.contains(pkid) {
                    // Stored and acknowledged; the broker missed our PUBREC.
                    framing::encode_ack(Ack::PubRec, pkid, outbox);
                    false
                } else {
                    self.rec_queued.insert(pkid);
                    self.queue.push_back((Ack::PubRec, pkid));
                    true
                }
            }
            _ => true,
        }
    }

    /// Writes every queued ack to `outbox`, in arrival order. `false` if
    /// there was none.
    pub(super) fn release(&mut self, outbox: &mut BytesMut) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        for (kind, pkid) in self.queue.drain(..) {
            framing::encode_ack(kind, pkid, outbox);
            if kind == Ack::PubRec && self.rec_queued.is_tracking() {
                self.rec_queued.remove(pkid);
                self.rec_sent.insert(pkid);
            }
        }
        true
    }

    /// PUBREL for `pkid`: the QoS 2 exchange is over.
    pub(super) fn released(&mut self, pkid: u16) {
        self.rec_sent.remove(pkid);
    }

    /// Drops the queued acks (shutdown: the broker redelivers those).
    pub(super) fn drop_queued(&mut self) {
        self.queue.clear();
    }

    /// The connection failed: unsent acks and the QoS 2 ids die with it.
    pub(super) fn reset(&mut self) {
        self.queue.clear();
        if self.rec_queued.is_tracking() {
            self.rec_queued.clear();
            self.rec_sent.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_set_holds_every_id_from_zero_to_the_maximum() {
        let mut s = IdSet::new();
        for id in [0, 1, 63, 64, 65_535] {
            assert!(!s.contains(id));
            s.insert(id);
            assert!(s.contains(id));
        }
        assert!(s.remove(64));
        assert!(!s.remove(64));
        s.clear();
        assert!(!s.contains(65_535));
    }
}
