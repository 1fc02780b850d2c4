//! Encoding: the few packets a subscriber (and the report publisher) sends,
//! with the mqttbytes 0.6 traps handled (CONNECT into an empty buffer,
//! string lengths checked first, a failed encode truncated back).
//!
//! Owns: [`encode_connect`] and the other `encode_*`. Must not: decode or
//! keep state.

use super::Incoming;
use bytes::BytesMut;
use mqttbytes::v4::{self, SubscribeReasonCode};
use std::fmt;

/// An encoding failed: a string too long for MQTT or a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

pub(super) fn check_str(what: &str, s: &str) -> Result<(), EncodeError> {
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
    write_whole(out, "SUBSCRIBE", |o| s.write(o))
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
    write_whole(out, "PUBLISH", |o| p.write(o))
}

/// Appends PUBLISH with the DUP flag set: a QoS 1/2 publish sent again
/// after a reconnect.
pub fn encode_publish_dup(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    pkid: u16,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    encode_publish(topic, payload, qos, retain, pkid, out)?;
    // DUP is bit 3 of the fixed header's first byte.
    if let Some(first) = out.get_mut(start) {
        *first |= 0x08;
    }
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
            write_whole(out, "PUBLISH", |o| pb.write(o)).ok()?;
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
/// Runs one mqttbytes `write` into `out`. mqttbytes 0.6 leaves the bytes
/// of a failed write behind, so they are cut off again here, the one place
/// that knows; the error names `packet`.
pub(in crate::mqtt::framing) fn write_whole<E: std::fmt::Debug>(
    out: &mut BytesMut,
    packet: &str,
    write: impl FnOnce(&mut BytesMut) -> Result<usize, E>,
) -> Result<(), EncodeError> {
    let start = out.len();
    write(out).map(drop).map_err(|e| {
        out.truncate(start);
        EncodeError(format!("{packet}: {e:?}"))
    })
}
