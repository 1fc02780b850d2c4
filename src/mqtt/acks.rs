//! The acknowledgements a session owes the broker: the queue of PUBACK and
//! PUBREC waiting for a commit, in arrival order, and the QoS 2 packet-id
//! sets that keep a redelivered QoS 2 message from being stored twice.
//!
//! The QoS 2 ids belong to the broker's session, not to one connection
//! (MQTT 3.1.1 / MQTT 5 section 4.3.3): with a persistent session they
//! survive a lost connection, so a PUBLISH the broker resends with an id we
//! answered with PUBREC (or stored and had not yet answered) gets its
//! PUBREC and is not delivered again. They are forgotten when the broker
//! says it has no session, and ids of messages storage rolled back are
//! forgotten at once (those must be stored when they come again).
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
    /// `rec_sent` changed since [`Acks::take_changed`] last said so.
    changed: bool,
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
            changed: false,
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
                    // Delivered already; its PUBREC follows the commit. On
                    // a later connection that PUBREC was dropped with the
                    // old one: queue it again (it also waits for a commit).
                    if !self.queue.contains(&(Ack::PubRec, pkid)) {
                        self.queue.push_back((Ack::PubRec, pkid));
                    }
                    false
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

    /// Everything delivered so far is committed: writes every queued ack
    /// to `outbox`, in arrival order, and every QoS 2 id delivered (on this
    /// connection or an earlier one of the session) now waits for PUBREL.
    /// `false` if there was no ack to write.
    pub(super) fn release(&mut self, outbox: &mut BytesMut) -> bool {
        if self.rec_queued.is_tracking() {
            for (word, sent) in self.rec_queued.0.iter_mut().zip(&mut self.rec_sent.0) {
                if *word & !*sent != 0 {
                    self.changed = true;
                }
                *sent |= *word;
                *word = 0;
            }
        }
        if self.queue.is_empty() {
            return false;
        }
        for (kind, pkid) in self.queue.drain(..) {
            framing::encode_ack(kind, pkid, outbox);
        }
        true
    }

    /// PUBREL for `pkid`: the QoS 2 exchange is over.
    pub(super) fn released(&mut self, pkid: u16) {
        if self.rec_sent.is_tracking() && self.rec_sent.remove(pkid) {
            self.changed = true;
        }
    }

    /// The QoS 2 ids waiting for PUBREL (PUBREC sent), in id order.
    pub(super) fn awaiting_pubrel(&self) -> Vec<u16> {
        if !self.rec_sent.is_tracking() {
            return Vec::new();
        }
        (0..=u16::MAX)
            .filter(|id| self.rec_sent.contains(*id))
            .collect()
    }

    /// Ids saved by an earlier run of the same session: they wait for
    /// PUBREL again.
    pub(super) fn restore_awaiting_pubrel(&mut self, ids: &[u16]) {
        if self.rec_sent.is_tracking() {
            ids.iter().for_each(|id| self.rec_sent.insert(*id));
        }
    }

    /// True once after the ids waiting for PUBREL changed.
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Storage rolled back what was delivered and not yet committed: those
    /// QoS 2 ids must be delivered (and stored) when the broker resends them.
    pub(super) fn rolled_back(&mut self) {
        self.queue.clear();
        if self.rec_queued.is_tracking() {
            self.rec_queued.clear();
        }
    }

    /// The broker has no session for us (CONNACK session present 0): no
    /// QoS 2 exchange of an earlier connection will be resumed.
    pub(super) fn session_lost(&mut self) {
        if self.rec_sent.is_tracking() {
            if self.rec_sent.0.iter().any(|w| *w != 0) {
                self.changed = true;
            }
            self.rec_queued.clear();
            self.rec_sent.clear();
        }
    }

    /// Drops the queued acks (shutdown: the broker redelivers those).
    pub(super) fn drop_queued(&mut self) {
        self.queue.clear();
    }

    /// The connection failed: unsent acks die with it; the QoS 2 ids too,
    /// unless the session is `persistent` (the broker keeps it and resends
    /// what it has no PUBREC for).
    pub(super) fn reset(&mut self, persistent: bool) {
        self.queue.clear();
        if !persistent {
            self.session_lost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(outbox: &mut BytesMut) -> Vec<u8> {
        outbox.split().to_vec()
    }

    #[test]
    fn a_persistent_session_answers_a_resent_qos_2_publish_with_pubrec_and_does_not_deliver_it() {
        let mut a = Acks::new(true);
        let mut out = BytesMut::new();
        assert!(a.accept(2, 7, &mut out));
        a.release(&mut out);
        sent(&mut out);
        a.reset(true);
        assert!(!a.accept(2, 7, &mut out), "stored already");
        let mut rec = BytesMut::new();
        framing::encode_ack(Ack::PubRec, 7, &mut rec);
        assert_eq!(sent(&mut out), rec.to_vec(), "PUBREC at once");
        a.released(7);
        assert!(a.accept(2, 7, &mut out), "a new message after PUBREL");
    }

    #[test]
    fn a_message_delivered_before_the_cut_and_committed_after_it_is_not_delivered_again() {
        let mut a = Acks::new(true);
        let mut out = BytesMut::new();
        assert!(a.accept(2, 3, &mut out));
        a.reset(true); // its PUBREC never went out
        assert!(!a.accept(2, 3, &mut out), "the resend is the same message");
        assert!(out.is_empty(), "its PUBREC waits for the commit");
        assert_eq!(a.pending(), 1);
        a.release(&mut out);
        let mut rec = BytesMut::new();
        framing::encode_ack(Ack::PubRec, 3, &mut rec);
        assert_eq!(sent(&mut out), rec.to_vec());
        assert_eq!(a.awaiting_pubrel(), vec![3]);
    }

    #[test]
    fn ids_of_rolled_back_messages_are_delivered_again() {
        let mut a = Acks::new(true);
        let mut out = BytesMut::new();
        assert!(a.accept(2, 3, &mut out));
        a.rolled_back();
        a.reset(true);
        assert!(a.accept(2, 3, &mut out), "not stored: store it now");
    }

    #[test]
    fn a_clean_session_or_a_lost_one_forgets_every_qos_2_id() {
        for persistent_but_lost in [false, true] {
            let mut a = Acks::new(true);
            let mut out = BytesMut::new();
            a.accept(2, 9, &mut out);
            a.release(&mut out);
            a.reset(persistent_but_lost);
            if persistent_but_lost {
                a.session_lost();
            }
            assert!(a.accept(2, 9, &mut out));
            assert!(a.awaiting_pubrel().is_empty());
        }
    }

    #[test]
    fn changes_of_the_ids_awaiting_pubrel_are_reported_once() {
        let mut a = Acks::new(true);
        let mut out = BytesMut::new();
        assert!(!a.take_changed());
        a.accept(2, 1, &mut out);
        assert!(!a.take_changed(), "not before the commit");
        a.release(&mut out);
        assert!(a.take_changed());
        assert!(!a.take_changed());
        a.released(1);
        assert!(a.take_changed());
        a.restore_awaiting_pubrel(&[4, 5]);
        assert_eq!(a.awaiting_pubrel(), vec![4, 5]);
        a.session_lost();
        assert!(a.take_changed());
        assert!(a.awaiting_pubrel().is_empty());
    }

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
