//! Our own QoS 1 and 2 publishes until the broker has acknowledged them
//! (the publisher side of MQTT 3.1.1 section 4.3):
//!
//! ```text
//!   QoS 1:  PUBLISH --> PubAck --PUBACK--> done
//!   QoS 2:  PUBLISH --> PubRec --PUBREC--> (send PUBREL) PubComp --PUBCOMP--> done
//! ```
//!
//! At most `window` publishes are in flight (brokers allow few: mosquitto's
//! default is 20); packet ids are never 0 and never reused while in flight.
//! After a reconnect, publishes still awaiting their first ack are sent
//! again with DUP set; a QoS 2 publish awaiting PUBCOMP is already with the
//! broker and only its PUBREL is sent again. Pure state: no socket, no clock.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};

use super::framing::{self, Ack, EncodeError};

/// An ack for a packet id that is not in flight at that stage: a protocol
/// error that ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownPacketId {
    /// The ack's packet type (`PUBACK`, `PUBREC`, `PUBCOMP`, `UNSUBACK`).
    pub packet: &'static str,
    /// Its packet id.
    pub pkid: u16,
}

impl fmt::Display for UnknownPacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for unknown packet id {}", self.packet, self.pkid)
    }
}

impl std::error::Error for UnknownPacketId {}

/// Where one publish is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// QoS 1, PUBLISH sent: awaiting PUBACK.
    Ack,
    /// QoS 2, PUBLISH sent: awaiting PUBREC.
    Rec,
    /// QoS 2, PUBREL sent: awaiting PUBCOMP.
    Comp,
}

/// One publish in flight, kept whole so it can be sent again.
#[derive(Debug, Clone)]
struct Entry {
    pkid: u16,
    stage: Awaiting,
    topic: String,
    payload: Bytes,
    qos: u8,
    retain: bool,
}

/// The publishes in flight, oldest first.
#[derive(Debug)]
pub struct Outflight {
    /// Most publishes in flight at once.
    window: usize,
    /// The last packet id handed out.
    last_pkid: u16,
    /// In sending order (a window of a few dozen: linear search is fine).
    entries: VecDeque<Entry>,
}

impl Outflight {
    /// An empty table allowing `window` (at least 1) publishes in flight.
    pub fn new(window: usize) -> Outflight {
        Outflight {
            window: window.max(1),
            last_pkid: 0,
            entries: VecDeque::new(),
        }
    }

    /// Publishes in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A publish at `qos` may be sent now (QoS 0 always may).
    pub fn has_room(&self, qos: u8) -> bool {
        qos == 0 || self.entries.len() < self.window
    }

    /// Appends a PUBLISH to `out`; QoS 1 and 2 are tracked until acked. The
    /// caller checks [`Outflight::has_room`] first.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if qos == 0 {
            return framing::encode_publish(topic, &payload, 0, retain, 0, out);
        }
        let pkid = self.next_pkid();
        framing::encode_publish(topic, &payload, qos, retain, pkid, out)?;
        let stage = if qos == 2 {
            Awaiting::Rec
        } else {
            Awaiting::Ack
        };
        self.entries.push_back(Entry {
            pkid,
            stage,
            topic: topic.to_owned(),
            payload,
            qos,
            retain,
        });
        Ok(())
    }

    /// PUBACK: a QoS 1 publish is done.
    pub fn on_puback(&mut self, pkid: u16) -> Result<(), UnknownPacketId> {
        let i = self.find(pkid, Awaiting::Ack, "PUBACK")?;
        self.entries.remove(i);
        Ok(())
    }

    /// PUBREC: the broker has a QoS 2 publish; PUBREL goes out. A repeated
    /// PUBREC gets the PUBREL again.
    pub fn on_pubrec(&mut self, pkid: u16, out: &mut BytesMut) -> Result<(), UnknownPacketId> {
        let i = match self.position(pkid) {
            Some(i) if self.entries[i].stage != Awaiting::Ack => i,
            _ => {
                return Err(UnknownPacketId {
                    packet: "PUBREC",
                    pkid,
                });
            }
        };
        self.entries[i].stage = Awaiting::Comp;
        framing::encode_ack(Ack::PubRel, pkid, out);
        Ok(())
    }

    /// PUBCOMP: a QoS 2 publish is done.
    pub fn on_pubcomp(&mut self, pkid: u16) -> Result<(), UnknownPacketId> {
        let i = self.find(pkid, Awaiting::Comp, "PUBCOMP")?;
        self.entries.remove(i);
        Ok(())
    }

    /// After a reconnect: everything in flight goes out again, in order
    /// (PUBLISH with DUP, or PUBREL).
    pub fn resend(&mut self, out: &mut BytesMut) -> Result<(), EncodeError> {
        for e in &self.entries {
            match e.stage {
                Awaiting::Comp => framing::encode_ack(Ack::PubRel, e.pkid, out),
                _ => {
                    framing::encode_publish_dup(&e.topic, &e.payload, e.qos, e.retain, e.pkid, out)?
                }
            }
        }
        Ok(())
    }

    fn position(&self, pkid: u16) -> Option<usize> {
        self.entries.iter().position(|e| e.pkid == pkid)
    }

    fn find(
        &self,
        pkid: u16,
        stage: Awaiting,
        packet: &'static str,
    ) -> Result<usize, UnknownPacketId> {
        match self.position(pkid) {
            Some(i) if self.entries[i].stage == stage => Ok(i),
            _ => Err(UnknownPacketId { packet, pkid }),
        }
    }

    /// The next packet id not in flight (1..=65535, wrapping).
    fn next_pkid(&mut self) -> u16 {
        loop {
            self.last_pkid = self.last_pkid.wrapping_add(1).max(1);
            if self.position(self.last_pkid).is_none() {
                return self.last_pkid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::framing::{Decoder, Incoming};

    fn packets(out: &mut BytesMut) -> Vec<Incoming> {
        let mut d = Decoder::new(1 << 20);
        d.push(out);
        out.clear();
        let mut v = Vec::new();
        while let Some(p) = d.next_packet().unwrap() {
            v.push(p);
        }
        v
    }

    #[test]
    fn a_qos1_publish_is_done_at_its_puback() {
        let mut o = Outflight::new(2);
        let mut out = BytesMut::new();
        o.publish("t", Bytes::from_static(b"x"), 1, false, &mut out)
            .unwrap();
        assert!(matches!(
            &packets(&mut out)[..],
            [Incoming::Publish {
                qos: 1,
                pkid: 1,
                ..
            }]
        ));
        assert_eq!(o.len(), 1);
        o.on_puback(1).unwrap();
        assert!(o.is_empty());
        assert!(
            o.on_puback(1).is_err(),
            "a second PUBACK is a protocol error"
        );
    }

    #[test]
    fn a_qos2_publish_needs_pubrec_then_pubcomp_and_sends_pubrel_between() {
        let mut o = Outflight::new(2);
        let mut out = BytesMut::new();
        o.publish("t", Bytes::from_static(b"x"), 2, true, &mut out)
            .unwrap();
        packets(&mut out);
        assert!(o.on_pubcomp(1).is_err(), "PUBCOMP before PUBREC");
        assert!(o.on_puback(1).is_err(), "PUBACK for a QoS 2 publish");
        o.on_pubrec(1, &mut out).unwrap();
        assert_eq!(&out[..], &[0x62, 0x02, 0x00, 0x01]);
        out.clear();
        o.on_pubrec(1, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[0x62, 0x02, 0x00, 0x01],
            "a repeated PUBREC gets PUBREL again"
        );
        o.on_pubcomp(1).unwrap();
        assert!(o.is_empty());
    }

    #[test]
    fn the_window_limits_publishes_in_flight() {
        let mut o = Outflight::new(3);
        let mut out = BytesMut::new();
        for _ in 0..3 {
            assert!(o.has_room(1));
            o.publish("t", Bytes::new(), 1, false, &mut out).unwrap();
        }
        assert!(!o.has_room(1) && o.has_room(0), "QoS 0 is never held back");
        o.on_puback(2).unwrap();
        assert!(o.has_room(2), "acks may come in any order");
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut o = Outflight::new(5);
        let mut out = BytesMut::new();
        o.last_pkid = u16::MAX - 1;
        o.publish("t", Bytes::new(), 1, false, &mut out).unwrap(); // 65535
        o.publish("t", Bytes::new(), 1, false, &mut out).unwrap(); // 1 (0 skipped)
        o.last_pkid = u16::MAX - 1;
        o.publish("t", Bytes::new(), 1, false, &mut out).unwrap(); // 65535 in flight -> 2
        let ids: Vec<u16> = o.entries.iter().map(|e| e.pkid).collect();
        assert_eq!(ids, [u16::MAX, 1, 2]);
    }

    #[test]
    fn a_reconnect_resends_publishes_with_dup_and_pubrel_for_those_past_pubrec() {
        let mut o = Outflight::new(5);
        let mut out = BytesMut::new();
        o.publish("a", Bytes::from_static(b"1"), 1, false, &mut out)
            .unwrap();
        o.publish("b", Bytes::from_static(b"2"), 2, false, &mut out)
            .unwrap();
        o.publish("c", Bytes::from_static(b"3"), 2, false, &mut out)
            .unwrap();
        o.on_pubrec(3, &mut out).unwrap();
        out.clear();
        o.resend(&mut out).unwrap();
        let p = packets(&mut BytesMut::from(&out[..]));
        assert!(
            matches!(
                &p[0],
                Incoming::Publish {
                    dup: true,
                    pkid: 1,
                    qos: 1,
                    ..
                }
            ),
            "{p:?}"
        );
        assert!(
            matches!(
                &p[1],
                Incoming::Publish {
                    dup: true,
                    pkid: 2,
                    qos: 2,
                    ..
                }
            ),
            "{p:?}"
        );
        assert!(matches!(&p[2], Incoming::PubRel(3)), "{p:?}");
    }
}
