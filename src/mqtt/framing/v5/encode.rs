//! MQTT 5 encoding: the CONNECT, SUBSCRIBE and PUBLISH a subscriber sends
//! (acks, PINGREQ and a normal DISCONNECT are byte for byte the 3.1.1 ones,
//! see [`crate::mqtt::framing`]), and the broker-side packets again
//! for round-trip tests and fuzzing.
//!
//! Traps of mqttbytes 0.6's v5 encoders handled here, besides those of its
//! v4 ones (CONNECT patched at an absolute index, string lengths silently
//! truncated, a failed write leaving bytes behind): a CONNACK without
//! properties is written without the mandatory property length, and an
//! empty user name drops the password. It must not decide what to send.

use super::decode::{ConnAck5, Disconnect5, Packet5, Publish5, write_varint};
use crate::mqtt::framing::encode::write_whole;
use crate::mqtt::framing::{self, ConnectParams, EncodeError};
use bytes::BytesMut;
use mqttbytes::v5;

/// What an MQTT 5 CONNECT carries besides the 3.1.1 fields.
#[derive(Debug, Clone)]
pub struct Connect5Params<'a> {
    /// Client id, keep-alive, clean start (= clean session), credentials.
    pub base: ConnectParams<'a>,
    /// Session Expiry Interval in seconds; `None` = 0 (the session ends
    /// with the connection).
    pub session_expiry_s: Option<u32>,
    /// QoS 1/2 messages the broker may send before our acks (1-65,535).
    pub receive_maximum: u16,
    /// Topic aliases the broker may use towards us (0 = none).
    pub topic_alias_maximum: u16,
}

fn check_str(what: &str, s: &str) -> Result<(), EncodeError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(EncodeError(format!(
            "{what} is {} bytes (MQTT allows 65,535)",
            s.len()
        )));
    }
    Ok(())
}

fn qos(q: u8) -> Result<mqttbytes::QoS, EncodeError> {
    mqttbytes::qos(q).map_err(|e| EncodeError(format!("QoS: {e:?}")))
}

/// Appends an MQTT 5 CONNECT to `out`.
pub fn encode_connect5(p: &Connect5Params<'_>, out: &mut BytesMut) -> Result<(), EncodeError> {
    let b = &p.base;
    check_str("client id", b.client_id)?;
    if p.receive_maximum == 0 {
        return Err(EncodeError("receive maximum 0".into()));
    }
    let mut c = v5::Connect::new(b.client_id);
    c.keep_alive = b.keep_alive_s;
    c.clean_session = b.clean_session;
    if let Some(user) = b.user {
        let password = b.password.unwrap_or("");
        check_str("user", user)?;
        check_str("password", password)?;
        if user.is_empty() && !password.is_empty() {
            return Err(EncodeError("a password needs a user name".into()));
        }
        c.set_login(user, password);
    }
    c.properties = Some(v5::ConnectProperties {
        session_expiry_interval: p.session_expiry_s.filter(|s| *s > 0),
        receive_maximum: Some(p.receive_maximum),
        max_packet_size: None,
        topic_alias_max: (p.topic_alias_maximum > 0).then_some(p.topic_alias_maximum),
        request_response_info: None,
        request_problem_info: None,
        user_properties: Vec::new(),
        authentication_method: None,
        authentication_data: None,
    });
    // mqttbytes patches the CONNECT flags at an absolute index: encode into
    // an empty buffer, then append.
    let mut tmp = BytesMut::new();
    c.write(&mut tmp)
        .map_err(|e| EncodeError(format!("CONNECT: {e:?}")))?;
    out.extend_from_slice(&tmp);
    Ok(())
}

/// Appends an MQTT 5 SUBSCRIBE for `filters` at `qos` with packet id
/// `pkid`. Options: no-local off, retain-as-published off (the retain flag
/// means what it means in 3.1.1: set only for retained messages sent on
/// subscribing), retained messages sent on every subscribe.
pub fn encode_subscribe5(
    pkid: u16,
    filters: &[String],
    q: u8,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let q = qos(q)?;
    let mut s = v5::Subscribe::empty_subscribe();
    s.pkid = pkid;
    for f in filters {
        check_str("topic filter", f)?;
        s.add(f.clone(), q);
    }
    write_whole(out, "SUBSCRIBE", |o| s.write(o))
}

/// Appends an MQTT 5 PUBLISH without properties (the self-report).
pub fn encode_publish5(
    topic: &str,
    payload: &[u8],
    q: u8,
    retain: bool,
    pkid: u16,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_str("topic", topic)?;
    let mut p = v5::Publish::new(topic, qos(q)?, payload);
    p.retain = retain;
    p.pkid = pkid;
    write_whole(out, "PUBLISH", |o| p.write(o))
}

fn connack_code(code: u8) -> Option<v5::ConnectReturnCode> {
    use v5::ConnectReturnCode as C;
    Some(match code {
        0 => C::Success,
        128 => C::UnspecifiedError,
        129 => C::MalformedPacket,
        130 => C::ProtocolError,
        131 => C::ImplementationSpecificError,
        132 => C::UnsupportedProtocolVersion,
        133 => C::ClientIdentifierNotValid,
        134 => C::BadUserNamePassword,
        135 => C::NotAuthorized,
        136 => C::ServerUnavailable,
        137 => C::ServerBusy,
        138 => C::Banned,
        140 => C::BadAuthenticationMethod,
        144 => C::TopicNameInvalid,
        149 => C::PacketTooLarge,
        151 => C::QuotaExceeded,
        153 => C::PayloadFormatInvalid,
        154 => C::RetainNotSupported,
        155 => C::QoSNotSupported,
        156 => C::UseAnotherServer,
        157 => C::ServerMoved,
        159 => C::ConnectionRateExceeded,
        _ => return None,
    })
}

fn encode_connack(c: &ConnAck5, out: &mut BytesMut) -> Option<()> {
    if c.from_v311 {
        let code = match c.reason {
            0x84 => 1,
            0x85 => 2,
            0x88 => 3,
            0x86 => 4,
            0x87 => 5,
            _ => return None,
        };
        out.extend_from_slice(&[0x20, 0x02, 0x00, code]);
        return Some(());
    }
    let mut props = v5::ConnAckProperties::new();
    props.session_expiry_interval = c.session_expiry_interval;
    props.receive_max = c.receive_maximum;
    props.max_qos = c.maximum_qos;
    props.retain_available = c.retain_available;
    props.max_packet_size = c.maximum_packet_size;
    props.assigned_client_identifier = c.assigned_client_identifier.clone();
    props.topic_alias_max = c.topic_alias_maximum;
    props.reason_string = c.reason_string.clone();
    props.wildcard_subscription_available = c.wildcard_subscription_available;
    props.shared_subscription_available = c.shared_subscription_available;
    props.server_keep_alive = c.server_keep_alive;
    props.server_reference = c.server_reference.clone();
    let mut ack = v5::ConnAck::new(connack_code(c.reason)?, c.session_present);
    // Always `Some`: with `None` mqttbytes leaves out the property length.
    ack.properties = Some(props);
    ack.write(out).ok().map(drop)
}

fn encode_publish(p: &Publish5, out: &mut BytesMut) -> Option<()> {
    let q = &p.properties;
    let mut pb = v5::Publish::from_bytes(p.topic.as_str(), qos(p.qos).ok()?, p.payload.clone());
    pb.retain = p.retain;
    pb.dup = p.dup;
    pb.pkid = p.pkid;
    if !q.is_empty() || p.topic_alias.is_some() {
        pb.properties = Some(v5::PublishProperties {
            payload_format_indicator: q.payload_format_indicator,
            message_expiry_interval: q.message_expiry_interval,
            topic_alias: p.topic_alias,
            response_topic: q.response_topic.clone(),
            correlation_data: q.correlation_data.clone(),
            user_properties: q.user_properties.clone(),
            subscription_identifiers: q.subscription_identifiers.clone(),
            content_type: q.content_type.clone(),
        });
    }
    write_whole(out, "PUBLISH", |o| pb.write(o)).ok()
}

fn encode_disconnect(d: &Disconnect5, out: &mut BytesMut) -> Option<()> {
    let mut pkt = v5::Disconnect::new();
    pkt.reason_code = v5::DisconnectReasonCode::try_from(d.reason).ok()?;
    if d.reason_string.is_some()
        || d.server_reference.is_some()
        || d.session_expiry_interval.is_some()
    {
        let mut props = v5::DisconnectProperties::new();
        props.reason_string = d.reason_string.clone();
        props.server_reference = d.server_reference.clone();
        props.session_expiry_interval = d.session_expiry_interval;
        pkt.properties = Some(props);
    }
    pkt.write(out).ok().map(drop)
}

/// Re-encodes a decoded packet the way a broker would have sent it (for
/// round-trip checks in tests and fuzzing). `Oversize` and `Unexpected`
/// have no encoding.
pub fn encode_packet5(p: &Packet5, out: &mut BytesMut) -> Option<()> {
    match p {
        Packet5::ConnAck(c) => encode_connack(c, out),
        Packet5::Publish(p) => encode_publish(p, out),
        Packet5::SubAck {
            pkid,
            reasons,
            reason_string,
        } => {
            let codes = reasons
                .iter()
                .map(|r| v5::SubscribeReasonCode::try_from(*r))
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let mut ack = v5::SubAck::new(*pkid, codes);
            ack.properties = reason_string.as_ref().map(|r| v5::SubAckProperties {
                reason_string: Some(r.clone()),
                user_properties: Vec::new(),
            });
            ack.write(out).ok().map(drop)
        }
        Packet5::Disconnect(d) => encode_disconnect(d, out),
        Packet5::Common(framing::Incoming::UnsubAck(id)) => {
            // MQTT 5 UNSUBACK: packet id, empty properties, one reason.
            let [hi, lo] = id.to_be_bytes();
            out.extend_from_slice(&[0xB0, 0x04, hi, lo, 0x00, 0x00]);
            Some(())
        }
        Packet5::Common(other) => framing::encode_incoming(other, out),
        Packet5::Oversize { .. } => None,
    }
}

/// Appends a frame of `body` with first byte `byte1` (tests and fuzzing
/// build broker packets mqttbytes cannot write with it).
pub fn frame(byte1: u8, body: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(&[byte1]);
    write_varint(out, body.len());
    out.extend_from_slice(body);
}
