//! Decoding: bytes from the broker -> [`Incoming`] packets, buffered only as
//! they arrive; oversize PUBLISH payloads skipped, never buffered.
//!
//! Owns: [`Decoder`] and the read buffer. Must not: encode, or know about
//! sessions, sockets or clocks.

use super::{Incoming, MAX_CONTROL_PACKET, MAX_REMAINING_LENGTH, ProtocolError};
use bytes::{Buf, BytesMut};
use mqttbytes::v4::SubscribeReasonCode;
use mqttbytes::v4::{self, Packet};

pub(super) fn packet_name(byte1: u8) -> &'static str {
    match byte1 >> 4 {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        _ => "reserved",
    }
}

pub(super) fn malformed(byte1: u8, e: mqttbytes::Error) -> ProtocolError {
    ProtocolError::Malformed {
        packet: packet_name(byte1),
        detail: format!("{e:?}"),
    }
}

/// Fixed header: first byte, header length (2-5), remaining length.
/// `Ok(None)` = need more bytes.
pub(super) fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, ProtocolError> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((byte1, 2 + i, len)));
        }
    }
    Err(ProtocolError::Malformed {
        packet: packet_name(byte1),
        detail: "remaining length longer than 4 bytes".into(),
    })
}

/// Splits the byte stream from one connection into packets.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes received and not yet framed.
    buf: BytesMut,
    /// Bytes of an oversize PUBLISH still to be discarded as they arrive.
    skip: usize,
    /// The stream's `max-payload-bytes`.
    max_payload: usize,
}

impl Decoder {
    /// A decoder that skips PUBLISH payloads larger than `max_payload`.
    pub fn new(max_payload: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            skip: 0,
            max_payload,
        }
    }

    /// Forgets everything buffered (the connection is gone).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skip = 0;
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read from the socket. Bytes of a skipped payload are
    /// dropped here and never buffered.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        if !data.is_empty() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        if self.skip > 0 {
            return Ok(None);
        }
        let Some((byte1, header_len, remaining)) = fixed_header(&self.buf)? else {
            return Ok(None);
        };
        let is_publish = byte1 >> 4 == 3;
        if !is_publish && remaining > MAX_CONTROL_PACKET {
            return Err(ProtocolError::TooLarge {
                packet: packet_name(byte1),
                len: remaining,
            });
        }
        if is_publish && remaining > self.max_payload {
            // Possibly oversize: decide from the variable header, which is
            // at most 2 + 65,535 + 2 bytes, so buffering it is bounded.
            if let Some(found) = self.oversize(byte1, header_len, remaining)? {
                return Ok(Some(found));
            }
        }
        let frame_len = header_len + remaining;
        if self.buf.len() < frame_len {
            // Reserve for the announced frame only up to what a legitimate
            // packet may be, so a lying header cannot make us allocate.
            return Ok(None);
        }
        let packet =
            v4::read(&mut self.buf, MAX_REMAINING_LENGTH).map_err(|e| malformed(byte1, e))?;
        Ok(Some(convert(packet)))
    }

    /// For a PUBLISH announcing more than `max_payload` bytes: if its payload
    /// really exceeds the limit, consume its header, arm the skip and return
    /// [`Incoming::Oversize`]. `Ok(None)` means "not oversize" or "need more
    /// bytes" (then the caller finds the frame incomplete too).
    fn oversize(
        &mut self,
        byte1: u8,
        header_len: usize,
        remaining: usize,
    ) -> Result<Option<Incoming>, ProtocolError> {
        let qos = (byte1 >> 1) & 0b11;
        if qos == 3 {
            return Err(malformed(byte1, mqttbytes::Error::InvalidQoS(3)));
        }
        let var = &self.buf[header_len.min(self.buf.len())..];
        if var.len() < 2 {
            return Ok(None);
        }
        let topic_len = usize::from(u16::from_be_bytes([var[0], var[1]]));
        let pkid_len = if qos > 0 { 2 } else { 0 };
        let var_len = 2 + topic_len + pkid_len;
        if var_len > remaining {
            return Err(malformed(
                byte1,
                mqttbytes::Error::BoundaryCrossed(topic_len),
            ));
        }
        let payload_len = remaining - var_len;
        if payload_len <= self.max_payload {
            return Ok(None);
        }
        if var.len() < var_len {
            return Ok(None);
        }
        let topic = std::str::from_utf8(&var[2..2 + topic_len])
            .map_err(|_| malformed(byte1, mqttbytes::Error::TopicNotUtf8))?
            .to_owned();
        let pkid = if qos > 0 {
            u16::from_be_bytes([var[2 + topic_len], var[3 + topic_len]])
        } else {
            0
        };
        if qos > 0 && pkid == 0 {
            return Err(malformed(byte1, mqttbytes::Error::PacketIdZero));
        }
        // Drop the header and whatever of the payload is already buffered;
        // the rest is dropped by `push` as it arrives.
        let consumed = header_len + var_len;
        let buffered_payload = (self.buf.len() - consumed).min(payload_len);
        self.buf.advance(consumed + buffered_payload);
        self.skip = payload_len - buffered_payload;
        Ok(Some(Incoming::Oversize {
            topic,
            qos,
            pkid,
            payload_len,
        }))
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
