//! Decoding: bytes from the broker -> [`Incoming`] packets, buffered only as
//! they arrive; oversize PUBLISH payloads skipped, never buffered.
//!
//! Owns: [`Decoder`], the 3.1.1 meaning of a frame (the buffer and the
//! size rules are [`Framer`]'s, shared with MQTT 5). Must not: encode, or
//! know about sessions, sockets or clocks.

use super::framer::{Frame, Framer, Version, malformed};
use super::{Incoming, MAX_REMAINING_LENGTH, ProtocolError};
use mqttbytes::v4::SubscribeReasonCode;
use mqttbytes::v4::{self, Packet};

/// Splits the byte stream from one MQTT 3.1.1 connection into packets:
/// [`Framer`] frames them (and skips oversize payloads), mqttbytes'
/// 3.1.1 codecs decode each whole frame.
#[derive(Debug)]
pub struct Decoder {
    /// The read buffer and the size rules.
    framer: Framer,
}

impl Decoder {
    /// A decoder that skips PUBLISH payloads larger than `max_payload`.
    pub fn new(max_payload: usize) -> Self {
        Decoder {
            framer: Framer::new(max_payload, Version::V311),
        }
    }

    /// Forgets everything buffered (the connection is gone).
    pub fn reset(&mut self) {
        self.framer.reset();
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// Appends bytes read from the socket. Bytes of a skipped payload are
    /// dropped and never buffered.
    pub fn push(&mut self, data: &[u8]) {
        self.framer.push(data);
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        match self.framer.next_frame()? {
            None => Ok(None),
            Some(Frame::Oversize(h)) => Ok(Some(Incoming::Oversize {
                topic: h.topic,
                qos: h.qos,
                pkid: h.pkid,
                payload_len: h.payload_len,
            })),
            Some(Frame::Whole { byte1, .. }) => {
                let packet = v4::read(self.framer.buf(), MAX_REMAINING_LENGTH)
                    .map_err(|e| malformed(byte1, Version::V311, format!("{e:?}")))?;
                Ok(Some(convert(packet)))
            }
        }
    }
}

pub(super) fn convert(packet: Packet) -> Incoming {
    match packet {
        Packet::ConnAck(c) => Incoming::ConnAck {
            session_present: c.session_present,
            code: c.code as u8,
        },
        Packet::Publish(p) => Incoming::Publish {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos as u8,
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
        },
        Packet::PubAck(a) => Incoming::PubAck(a.pkid),
        Packet::PubRec(a) => Incoming::PubRec(a.pkid),
        Packet::PubRel(a) => Incoming::PubRel(a.pkid),
        Packet::PubComp(a) => Incoming::PubComp(a.pkid),
        Packet::SubAck(s) => Incoming::SubAck {
            pkid: s.pkid,
            granted: s
                .return_codes
                .iter()
                .map(|c| match c {
                    SubscribeReasonCode::Success(q) => Some(*q as u8),
                    SubscribeReasonCode::Failure => None,
                })
                .collect(),
        },
        Packet::UnsubAck(u) => Incoming::UnsubAck(u.pkid),
        Packet::PingResp => Incoming::PingResp,
        Packet::Connect(_) => Incoming::Unexpected("CONNECT"),
        Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        Packet::PingReq => Incoming::Unexpected("PINGREQ"),
        Packet::Disconnect => Incoming::Unexpected("DISCONNECT"),
    }
}
