//! Framing: the only user of `mqttbytes`.
//!
//! Turns the byte stream from a broker into [`Incoming`] packets, and encodes
//! the few packets a subscriber sends. It owns the read buffer and the rule
//! that nothing is allocated because a header *claims* a size: bytes are
//! buffered only as they arrive, non-PUBLISH packets are capped at
//! [`MAX_CONTROL_PACKET`], and a PUBLISH whose payload exceeds the stream's
//! `max-payload-bytes` is skipped as its bytes arrive (never buffered).
//! It knows nothing about sessions, sockets or clocks.
//!
//! ```text
//!   fixed header          variable header             payload
//!   +------+---------+    +-----------+-------------+ +-----------------+
//!   | type | rem.len |    | topic len | topic | pkid| | bytes ...       |
//!   | flags| 1-4 B   |    |   2 B     |  n B  | 2 B*| | rem.len - 2-n-2*|
//!   +------+---------+    +-----------+-------------+ +-----------------+
//!                                               * only when QoS > 0
//! ```
//!
//! Traps of mqttbytes 0.6 handled here: CONNECT is encoded into an empty
//! buffer (it patches its flags at an absolute index); string lengths are
//! checked before encoding (it silently truncates lengths >= 65,536); a
//! failed encode is truncated back; its errors print as `Error = ..`, so
//! every error gets context.

use bytes::{Buf, Bytes, BytesMut};
use mqttbytes::v4::SubscribeReasonCode;
use mqttbytes::v4::{self, Packet};
use std::fmt;

pub mod v5;

/// Largest packet other than PUBLISH that a broker may send us. CONNACK,
/// SUBACK, acks and PINGRESP are tiny; a SUBACK for 1,000 filters is 1 KiB.
pub const MAX_CONTROL_PACKET: usize = 64 * 1024;

/// Largest remaining length the protocol can express (268,435,455).
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A packet received from the broker, reduced to what a subscriber needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// CONNACK: `code` 0 is accepted, 1-5 are the refusals of MQTT 3.1.1.
    ConnAck {
        /// The broker kept a session for our client id.
        session_present: bool,
        /// Return code.
        code: u8,
    },
    /// A PUBLISH that fits within `max-payload-bytes`.
    Publish {
        /// Topic as received (valid UTF-8, checked).
        topic: String,
        /// Payload bytes (zero-copy slice of the read buffer).
        payload: Bytes,
        /// 0, 1 or 2.
        qos: u8,
        /// Retain flag.
        retain: bool,
        /// DUP flag.
        dup: bool,
        /// Packet id (0 for QoS 0).
        pkid: u16,
    },
    /// A PUBLISH whose payload exceeds `max-payload-bytes`. Its payload is
    /// being discarded as it arrives; it still needs its acknowledgement.
    Oversize {
        /// Topic as received.
        topic: String,
        /// 0, 1 or 2.
        qos: u8,
        /// Packet id (0 for QoS 0).
        pkid: u16,
        /// Payload size the header announced.
        payload_len: usize,
    },
    /// PUBACK.
    PubAck(u16),
    /// PUBREC.
    PubRec(u16),
    /// PUBREL.
    PubRel(u16),
    /// PUBCOMP.
    PubComp(u16),
    /// SUBACK: one entry per filter, `None` for a refused filter.
    SubAck {
        /// Packet id of the SUBSCRIBE it answers.
        pkid: u16,
        /// Granted QoS per filter, `None` = refused (0x80).
        granted: Vec<Option<u8>>,
    },
    /// UNSUBACK.
    UnsubAck(u16),
    /// PINGRESP.
    PingResp,
    /// A packet a broker never sends to a client (CONNECT, SUBSCRIBE, ...).
    Unexpected(&'static str),
}

/// A broker sent bytes that are not MQTT 3.1.1. The connection must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The packet could not be decoded.
    Malformed {
        /// Packet type, if the first byte said.
        packet: &'static str,
        /// What mqttbytes (or our own check) reported.
        detail: String,
    },
    /// A non-PUBLISH packet announced more than [`MAX_CONTROL_PACKET`].
    TooLarge {
        /// Packet type.
        packet: &'static str,
        /// The announced remaining length.
        len: usize,
    },
    /// A packet valid in itself but not allowed now (second CONNACK, an ack
    /// for a packet id we never used, a server-bound packet type).
    Unexpected(String),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Malformed { packet, detail } => {
                write!(f, "malformed {packet} packet: {detail}")
            }
            ProtocolError::TooLarge { packet, len } => write!(
                f,
                "{packet} packet announces {len} bytes (limit {MAX_CONTROL_PACKET})"
            ),
            ProtocolError::Unexpected(what) => write!(f, "unexpected {what}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

fn packet_name(byte1: u8) -> &'static str {
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

fn malformed(byte1: u8, e: mqttbytes::Error) -> ProtocolError {
    ProtocolError::Malformed {
        packet: packet_name(byte1),
        detail: format!("{e:?}"),
    }
}

/// Fixed header: first byte, header length (2-5), remaining length.
/// `Ok(None)` = need more bytes.
fn fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, ProtocolError> {
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

fn convert(packet: Packet) -> Incoming {
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

/// An encoding failed: a string too long for MQTT or a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

fn check_str(what: &str, s: &str) -> Result<(), EncodeError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(EncodeError(format!(
            "{what} is {} bytes (MQTT allows 65,535)",
            s.len()
        )));
    }
    Ok(())
}

/// What CONNECT carries.
#[derive(Debug, Clone)]
pub struct ConnectParams<'a> {
    /// Client identifier.
    pub client_id: &'a str,
    /// Keep-alive in seconds (0 = off).
    pub keep_alive_s: u16,
    /// Ask the broker to drop any previous session.
    pub clean_session: bool,
    /// User name; `None` = anonymous.
    pub user: Option<&'a str>,
    /// Password; only sent with a user.
    pub password: Option<&'a str>,
}

/// Appends CONNECT to `out`.
pub fn encode_connect(p: &ConnectParams<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    check_str("client id", p.client_id)?;
    let mut c = v4::Connect::new(p.client_id);
    c.keep_alive = p.keep_alive_s;
    c.clean_session = p.clean_session;
    if let Some(user) = p.user {
        let password = p.password.unwrap_or("");
        check_str("user", user)?;
        check_str("password", password)?;
        c.set_login(user, password);
    }
    // mqttbytes patches the CONNECT flags at an absolute index: encode into
    // an empty buffer, then append.
    let mut tmp = BytesMut::new();
    c.write(&mut tmp)
        .map_err(|e| EncodeError(format!("CONNECT: {e:?}")))?;
    out.extend_from_slice(&tmp);
    Ok(())
}

/// Appends SUBSCRIBE for `filters` at `qos` with packet id `pkid`.
pub fn encode_subscribe(
    pkid: u16,
    filters: &[String],
    qos: u8,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let q = mqttbytes::qos(qos).map_err(|e| EncodeError(format!("QoS: {e:?}")))?;
    let mut s = v4::Subscribe::empty_subscribe();
    s.pkid = pkid;
    for f in filters {
        check_str("topic filter", f)?;
        s.add(f.clone(), q);
    }
    let start = out.len();
    s.write(out).map_err(|e| {
        out.truncate(start);
        EncodeError(format!("SUBSCRIBE: {e:?}"))
    })?;
    Ok(())
}

/// Appends PUBLISH (used for the self-report).
pub fn encode_publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    pkid: u16,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_str("topic", topic)?;
    let q = mqttbytes::qos(qos).map_err(|e| EncodeError(format!("QoS: {e:?}")))?;
    let mut p = v4::Publish::new(topic, q, payload);
    p.retain = retain;
    p.pkid = pkid;
    let start = out.len();
    p.write(out).map_err(|e| {
        // A failed write leaves a partial packet behind.
        out.truncate(start);
        EncodeError(format!("PUBLISH: {e:?}"))
    })?;
    Ok(())
}

/// A two-byte acknowledgement packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// PUBACK (QoS 1 received).
    PubAck,
    /// PUBREC (QoS 2 received, step 1).
    PubRec,
    /// PUBREL (QoS 2 sender, step 2).
    PubRel,
    /// PUBCOMP (QoS 2 receiver, step 3).
    PubComp,
}

/// Appends an acknowledgement. These four packets are fixed-size (4 bytes),
/// so they are written directly rather than through a codec round trip.
pub fn encode_ack(kind: Ack, pkid: u16, out: &mut BytesMut) {
    let byte1 = match kind {
        Ack::PubAck => 0x40,
        Ack::PubRec => 0x50,
        Ack::PubRel => 0x62,
        Ack::PubComp => 0x70,
    };
    let [hi, lo] = pkid.to_be_bytes();
    out.extend_from_slice(&[byte1, 0x02, hi, lo]);
}

/// Appends PINGREQ.
pub fn encode_pingreq(out: &mut BytesMut) {
    out.extend_from_slice(&[0xC0, 0x00]);
}

/// Appends DISCONNECT.
pub fn encode_disconnect(out: &mut BytesMut) {
    out.extend_from_slice(&[0xE0, 0x00]);
}

/// Re-encodes a decoded packet the way a broker would have sent it (for
/// round-trip checks in tests and fuzzing). `Oversize` and `Unexpected`
/// have no encoding.
pub fn encode_incoming(p: &Incoming, out: &mut BytesMut) -> Option<()> {
    match p {
        Incoming::ConnAck {
            session_present,
            code,
        } => out.extend_from_slice(&[0x20, 0x02, u8::from(*session_present), *code]),
        Incoming::Publish {
            topic,
            payload,
            qos,
            retain,
            dup,
            pkid,
        } => {
            let mut pb = v4::Publish::from_bytes(
                topic.as_str(),
                mqttbytes::qos(*qos).ok()?,
                payload.clone(),
            );
            pb.retain = *retain;
            pb.dup = *dup;
            pb.pkid = *pkid;
            let start = out.len();
            if pb.write(out).is_err() {
                out.truncate(start);
                return None;
            }
        }
        Incoming::PubAck(id) => encode_ack(Ack::PubAck, *id, out),
        Incoming::PubRec(id) => encode_ack(Ack::PubRec, *id, out),
        Incoming::PubRel(id) => encode_ack(Ack::PubRel, *id, out),
        Incoming::PubComp(id) => encode_ack(Ack::PubComp, *id, out),
        Incoming::SubAck { pkid, granted } => {
            let codes = granted
                .iter()
                .map(|g| match g {
                    Some(q) => mqttbytes::qos(*q).map(SubscribeReasonCode::Success),
                    None => Ok(SubscribeReasonCode::Failure),
                })
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            v4::SubAck::new(*pkid, codes).write(out).ok()?;
        }
        Incoming::UnsubAck(id) => {
            let [hi, lo] = id.to_be_bytes();
            out.extend_from_slice(&[0xB0, 0x02, hi, lo]);
        }
        Incoming::PingResp => out.extend_from_slice(&[0xD0, 0x00]),
        Incoming::Oversize { .. } | Incoming::Unexpected(_) => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_bytes(topic: &str, payload: &[u8], qos: u8, pkid: u16) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_publish(topic, payload, qos, false, pkid, &mut out).unwrap();
        out.to_vec()
    }

    fn all(d: &mut Decoder) -> Vec<Incoming> {
        let mut v = Vec::new();
        while let Some(p) = d.next_packet().unwrap() {
            v.push(p);
        }
        v
    }

    #[test]
    fn a_publish_split_across_reads_is_framed_once_complete() {
        let bytes = publish_bytes("a/b", b"hello", 1, 7);
        let mut d = Decoder::new(1024);
        for chunk in bytes.chunks(1) {
            assert!(all(&mut d).is_empty());
            d.push(chunk);
        }
        let got = all(&mut d);
        assert_eq!(
            got,
            vec![Incoming::Publish {
                topic: "a/b".into(),
                payload: Bytes::from_static(b"hello"),
                qos: 1,
                retain: false,
                dup: false,
                pkid: 7
            }]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn many_packets_in_one_read_are_all_framed() {
        let mut bytes = Vec::new();
        for i in 0..100u16 {
            bytes.extend(publish_bytes("t", &i.to_be_bytes(), 0, 0));
        }
        bytes.extend([0xD0, 0x00]);
        let mut d = Decoder::new(1024);
        d.push(&bytes);
        let got = all(&mut d);
        assert_eq!(got.len(), 101);
        assert_eq!(got[100], Incoming::PingResp);
    }

    #[test]
    fn an_oversize_publish_is_skipped_as_it_arrives_and_the_next_packet_survives() {
        let big = vec![7u8; 10_000];
        let mut bytes = publish_bytes("big/topic", &big, 1, 9);
        bytes.extend(publish_bytes("small", b"ok", 0, 0));
        let mut d = Decoder::new(100);
        let mut got = Vec::new();
        for chunk in bytes.chunks(333) {
            d.push(chunk);
            assert!(d.buffered() < 1000, "oversize payload must not be buffered");
            got.extend(all(&mut d));
        }
        assert_eq!(
            got,
            vec![
                Incoming::Oversize {
                    topic: "big/topic".into(),
                    qos: 1,
                    pkid: 9,
                    payload_len: 10_000
                },
                Incoming::Publish {
                    topic: "small".into(),
                    payload: Bytes::from_static(b"ok"),
                    qos: 0,
                    retain: false,
                    dup: false,
                    pkid: 0
                }
            ]
        );
    }

    #[test]
    fn a_payload_exactly_at_the_limit_is_kept() {
        let bytes = publish_bytes("t", &[1u8; 100], 0, 0);
        let mut d = Decoder::new(100);
        d.push(&bytes);
        assert!(matches!(all(&mut d)[..], [Incoming::Publish { .. }]));
    }

    #[test]
    fn a_huge_claimed_length_allocates_nothing_and_is_skipped() {
        // A PUBLISH claiming ~200 MB: reported as oversize from its header
        // alone; nothing of the claimed size is ever buffered.
        let mut d = Decoder::new(16 << 20);
        d.push(&[0x30, 0xff, 0xff, 0xff, 0x5f, 0x00, 0x01, b'a', 1, 2, 3]);
        assert_eq!(
            d.next_packet().unwrap(),
            Some(Incoming::Oversize {
                topic: "a".into(),
                qos: 0,
                pkid: 0,
                payload_len: 201_326_591 - 3,
            })
        );
        assert_eq!(d.buffered(), 0);
        d.push(&[0u8; 4096]);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_packet().unwrap(), None);
    }

    #[test]
    fn a_control_packet_announcing_megabytes_is_an_error() {
        let mut d = Decoder::new(1024);
        d.push(&[0x90, 0xff, 0xff, 0x7f]);
        assert!(matches!(
            d.next_packet(),
            Err(ProtocolError::TooLarge {
                packet: "SUBACK",
                ..
            })
        ));
    }

    #[test]
    fn a_five_byte_remaining_length_is_malformed() {
        let mut d = Decoder::new(1024);
        d.push(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(d.next_packet().is_err());
    }

    #[test]
    fn a_topic_length_beyond_the_packet_is_malformed() {
        let mut d = Decoder::new(1024);
        // remaining length 4, topic length 200
        d.push(&[0x30, 0x04, 0x00, 0xc8, b'a', b'b']);
        assert!(matches!(
            d.next_packet(),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn an_invalid_utf8_topic_is_malformed() {
        let mut d = Decoder::new(1024);
        d.push(&[0x30, 0x05, 0x00, 0x02, 0xff, 0xfe, b'x']);
        assert!(matches!(
            d.next_packet(),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn server_bound_packets_are_reported_as_unexpected() {
        let mut d = Decoder::new(1024);
        d.push(&[0xC0, 0x00]);
        assert_eq!(
            d.next_packet().unwrap(),
            Some(Incoming::Unexpected("PINGREQ"))
        );
    }

    #[test]
    fn connect_encodes_credentials_and_flags() {
        let mut out = BytesMut::from(&b"xx"[..]);
        encode_connect(
            &ConnectParams {
                client_id: "id",
                keep_alive_s: 30,
                clean_session: false,
                user: Some("u"),
                password: Some("p"),
            },
            &mut out,
        )
        .unwrap();
        let mut frame = out.split_off(2);
        match v4::read(&mut frame, 1000).unwrap() {
            Packet::Connect(c) => {
                assert_eq!(c.client_id, "id");
                assert_eq!(c.keep_alive, 30);
                assert!(!c.clean_session);
                let login = c.login.unwrap();
                assert_eq!(
                    (login.username.as_str(), login.password.as_str()),
                    ("u", "p")
                );
            }
            other => panic!("not a CONNECT: {other:?}"),
        }
        assert_eq!(&out[..], b"xx", "bytes before CONNECT untouched");
    }

    #[test]
    fn a_topic_of_65536_bytes_is_refused_not_truncated() {
        let mut out = BytesMut::new();
        let long = "a".repeat(65_536);
        assert!(encode_publish(&long, b"", 0, false, 0, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn acks_encode_as_mqtt_says() {
        let mut out = BytesMut::new();
        encode_ack(Ack::PubAck, 0x0102, &mut out);
        encode_ack(Ack::PubRec, 1, &mut out);
        encode_ack(Ack::PubComp, 1, &mut out);
        encode_pingreq(&mut out);
        encode_disconnect(&mut out);
        assert_eq!(
            &out[..],
            &[
                0x40, 2, 1, 2, 0x50, 2, 0, 1, 0x70, 2, 0, 1, 0xC0, 0, 0xE0, 0
            ]
        );
    }

    #[test]
    fn decoded_packets_reencode_to_the_same_bytes() {
        let mut bytes = publish_bytes("x/y", b"\x00\x01", 2, 300);
        bytes.extend([0x20, 0x02, 0x01, 0x00]);
        bytes.extend([0x90, 0x04, 0x00, 0x01, 0x01, 0x80]);
        bytes.extend([0x62, 0x02, 0x00, 0x05]);
        let mut d = Decoder::new(1024);
        d.push(&bytes);
        let mut out = BytesMut::new();
        for p in all(&mut d) {
            encode_incoming(&p, &mut out).unwrap();
        }
        assert_eq!(&out[..], &bytes[..]);
    }
}
