//! MQTT 5 decoding: splits the byte stream of a v5 connection into
//! [`Packet5`]s, with the same allocation rules as the 3.1.1 decoder (bytes
//! are buffered only as they arrive, control packets are capped at
//! [`MAX_CONTROL_PACKET`], an oversize PUBLISH payload is skipped as it
//! streams in).
//!
//! mqttbytes' v5 codecs decode the values, but only after this module has
//! checked the frame, because of what they get wrong in 0.6:
//!
//! - a DISCONNECT of remaining length 0 (normal disconnection) is refused
//!   as `PayloadRequired` by `v5::read`;
//! - a DISCONNECT of remaining length 1 (reason code, no property length,
//!   which the spec allows and mosquitto sends for "session taken over") is
//!   refused as `InsufficientBytes`, which reads like "need more bytes";
//! - property blocks are not bounded by their declared length (see
//!   [`properties`](super::properties)), duplicates and zero values pass;
//! - a PUBLISH's subscription identifiers are miscounted (one byte too
//!   many each), so with several of them the property block ends early and
//!   its last bytes become payload (or the payload's first bytes are read
//!   as properties): a PUBLISH is therefore decoded entirely here, its
//!   property block read by this module's own walker;
//! - the 3.1.1 CONNACK that a broker without MQTT 5 answers with is an
//!   `InsufficientBytes` / `InvalidConnectReturnCode` error instead of the
//!   refusal it is;
//! - reserved CONNACK flag bits and bytes after a property block pass.
//!
//! So PUBLISH, DISCONNECT, PINGRESP and the short CONNACK are decoded here,
//! and every other frame is handed to mqttbytes only once it is complete
//! and its property block has passed [`check_block`] (their properties hold
//! no variable byte integer, which is what mqttbytes miscounts); a SUBACK's
//! reason codes are checked against the block's end as counted here. It knows nothing about
//! sessions, sockets or clocks.

use super::properties::{Block, PublishProps, check_block, read_publish_block};
use super::reason;
use crate::mqtt::framing::framer::{self, Frame, Framer, Version};
use crate::mqtt::framing::{Incoming, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use mqttbytes::v5::{self, Packet};

/// Largest remaining length the protocol can express (268,435,455).
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A packet received on an MQTT 5 connection, reduced to what a subscriber
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet5 {
    /// CONNACK.
    ConnAck(ConnAck5),
    /// A PUBLISH that fits within `max-payload-bytes`.
    Publish(Publish5),
    /// A PUBLISH whose payload exceeds `max-payload-bytes`: its payload is
    /// being discarded as it arrives; it still needs its acknowledgement
    /// and its topic alias still counts.
    Oversize {
        /// Topic as received (empty when only an alias was sent).
        topic: String,
        /// Topic Alias property.
        topic_alias: Option<u16>,
        /// 0, 1 or 2.
        qos: u8,
        /// Packet id (0 for QoS 0).
        pkid: u16,
        /// Payload size the header announced.
        payload_len: usize,
    },
    /// SUBACK.
    SubAck {
        /// Packet id of the SUBSCRIBE it answers.
        pkid: u16,
        /// One reason code per filter: 0-2 granted QoS, >= 0x80 refused.
        reasons: Vec<u8>,
        /// The broker's explanation, if it gave one.
        reason_string: Option<String>,
    },
    /// DISCONNECT from the broker.
    Disconnect(Disconnect5),
    /// A packet whose v5 form means to the session what its 3.1.1 form
    /// does (acks, UNSUBACK, PINGRESP, server-bound packets).
    Common(Incoming),
}

/// A CONNACK: the reason code and the properties the session honours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck5 {
    /// The broker kept a session for our client id.
    pub session_present: bool,
    /// 0 = accepted; >= 0x80 refused (see [`reason::words`]).
    pub reason: u8,
    /// The broker answered with a 3.1.1 CONNACK (it does not speak MQTT 5);
    /// `reason` is then the matching MQTT 5 code.
    pub from_v311: bool,
    /// Session Expiry Interval the broker will use instead of ours.
    pub session_expiry_interval: Option<u32>,
    /// QoS 1/2 publications the broker accepts in flight from us.
    pub receive_maximum: Option<u16>,
    /// Highest QoS the broker accepts from us.
    pub maximum_qos: Option<u8>,
    /// 0 = the broker does not support retained messages.
    pub retain_available: Option<u8>,
    /// Largest packet the broker accepts from us.
    pub maximum_packet_size: Option<u32>,
    /// The client id the broker chose for us (we sent an empty one).
    pub assigned_client_identifier: Option<String>,
    /// Topic aliases the broker accepts from us.
    pub topic_alias_maximum: Option<u16>,
    /// The broker's explanation, if it gave one.
    pub reason_string: Option<String>,
    /// 0 = wildcard subscriptions are not supported.
    pub wildcard_subscription_available: Option<u8>,
    /// 0 = shared subscriptions are not supported.
    pub shared_subscription_available: Option<u8>,
    /// Keep-alive the broker imposes instead of ours.
    pub server_keep_alive: Option<u16>,
    /// Another broker to use (with reason 0x9C or 0x9D).
    pub server_reference: Option<String>,
}

/// A received PUBLISH with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish5 {
    /// Topic as received; empty when the broker sent only a topic alias.
    pub topic: String,
    /// Payload bytes (zero-copy slice of the read buffer).
    pub payload: Bytes,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet id (0 for QoS 0).
    pub pkid: u16,
    /// Topic Alias property (non-zero).
    pub topic_alias: Option<u16>,
    /// The properties Attic stores.
    pub properties: PublishProps,
}

/// A DISCONNECT sent by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect5 {
    /// Reason code (0 = normal disconnection).
    pub reason: u8,
    /// The broker's explanation, if it gave one.
    pub reason_string: Option<String>,
    /// Another broker to use (with reason 0x9C or 0x9D).
    pub server_reference: Option<String>,
    /// Session Expiry Interval property (a broker must not send it; kept
    /// for the round trip).
    pub session_expiry_interval: Option<u32>,
}

fn malformed(byte1: u8, detail: impl Into<String>) -> ProtocolError {
    framer::malformed(byte1, Version::V5, detail)
}

fn codec_error(byte1: u8, e: mqttbytes::Error) -> ProtocolError {
    malformed(byte1, format!("{e:?}"))
}

fn packet_name(byte1: u8) -> &'static str {
    framer::packet_name(byte1, Version::V5)
}

/// Splits the byte stream of one MQTT 5 connection into packets:
/// [`Framer`] frames them (and skips oversize payloads, their header and
/// property block checked), this module decodes each whole frame.
#[derive(Debug)]
pub struct Decoder5 {
    /// The read buffer and the size rules, shared with MQTT 3.1.1.
    framer: Framer,
}

impl Decoder5 {
    /// A decoder that skips PUBLISH payloads larger than `max_payload`.
    pub fn new(max_payload: usize) -> Self {
        Decoder5 {
            framer: Framer::new(max_payload, Version::V5),
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
    /// dropped here and never buffered.
    pub fn push(&mut self, data: &[u8]) {
        self.framer.push(data);
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet5>, ProtocolError> {
        let (byte1, header_len, remaining) = match self.framer.next_frame()? {
            None => return Ok(None),
            Some(Frame::Oversize(h)) => {
                return Ok(Some(Packet5::Oversize {
                    topic: h.topic,
                    topic_alias: h.topic_alias,
                    qos: h.qos,
                    pkid: h.pkid,
                    payload_len: h.payload_len,
                }));
            }
            Some(Frame::Whole {
                byte1,
                header_len,
                remaining,
            }) => (byte1, header_len, remaining),
        };
        let kind = byte1 >> 4;
        let frame_len = header_len + remaining;
        let buf = self.framer.buf();
        if kind == 3 {
            // Decoded here, not by mqttbytes: see [`publish`].
            let frame = buf.split_to(frame_len).freeze();
            return publish(byte1, frame.slice(header_len..)).map(|p| Some(Packet5::Publish(p)));
        }
        let var = &buf[header_len..frame_len];
        // SUBACK/UNSUBACK: the number of reason codes after the property
        // block as counted here.
        let mut reason_codes = None;
        let own = match kind {
            2 if remaining == 2 && (1..=5).contains(&var[1]) => Some(Packet5::ConnAck(ConnAck5 {
                session_present: false,
                reason: reason::from_v311_connack(var[1]),
                from_v311: true,
                ..ConnAck5::default()
            })),
            2 => {
                check_connack(byte1, var)?;
                None
            }
            4..=7 => {
                check_ack(byte1, var)?;
                None
            }
            9 | 11 => {
                reason_codes = Some(check_suback(byte1, var)?);
                None
            }
            13 if remaining == 0 => Some(Packet5::Common(Incoming::PingResp)),
            13 => return Err(malformed(byte1, "PINGRESP with a body")),
            14 => Some(Packet5::Disconnect(disconnect(byte1, var)?)),
            1 | 8 | 10 | 12 | 15 => Some(Packet5::Common(Incoming::Unexpected(packet_name(byte1)))),
            _ => return Err(malformed(byte1, "reserved packet type 0")),
        };
        if let Some(p) = own {
            buf.advance(frame_len);
            return Ok(Some(p));
        }
        let packet = v5::read(buf, MAX_REMAINING_LENGTH).map_err(|e| codec_error(byte1, e))?;
        let packet = convert(byte1, packet)?;
        if let (Packet5::SubAck { reasons, .. }, Some(n)) = (&packet, reason_codes)
            && reasons.len() != n
        {
            return Err(malformed(
                byte1,
                format!(
                    "{} reason codes read where {n} follow the properties",
                    reasons.len()
                ),
            ));
        }
        Ok(Some(packet))
    }
}

/// A property block that must end exactly where the packet ends.
fn check_last_block(byte1: u8, block: Block, buf: &[u8]) -> Result<(), ProtocolError> {
    let info = check_block(block, buf).map_err(|e| malformed(byte1, e))?;
    if info.size != buf.len() {
        return Err(malformed(
            byte1,
            format!("{} bytes after the properties", buf.len() - info.size),
        ));
    }
    Ok(())
}

fn check_connack(byte1: u8, var: &[u8]) -> Result<(), ProtocolError> {
    if var.len() < 3 {
        return Err(malformed(
            byte1,
            "no property length: the broker answered in MQTT 3.1.1",
        ));
    }
    if var[0] & 0xFE != 0 {
        return Err(malformed(byte1, "reserved acknowledge flags set"));
    }
    check_last_block(byte1, Block::ConnAck, &var[2..])
}

/// A complete PUBLISH, decoded from its variable header and payload
/// (`var`, a zero-copy slice of the read buffer). The property block is
/// read by [`read_publish_block`], which counts every length itself, so the
/// payload is exactly the bytes after the declared block. (mqttbytes 0.6
/// counts one byte too many per subscription identifier and would move
/// property bytes into the payload or payload bytes into the properties.)
fn publish(byte1: u8, var: Bytes) -> Result<Publish5, ProtocolError> {
    let qos = (byte1 >> 1) & 0b11;
    if qos == 3 {
        return Err(malformed(byte1, "QoS 3"));
    }
    if var.len() < 2 {
        return Err(malformed(byte1, "no topic"));
    }
    let topic_len = usize::from(u16::from_be_bytes([var[0], var[1]]));
    let props_at = 2 + topic_len + if qos > 0 { 2 } else { 0 };
    if props_at >= var.len() {
        return Err(malformed(byte1, "topic runs past the end of the packet"));
    }
    let topic = std::str::from_utf8(&var[2..2 + topic_len])
        .map_err(|_| malformed(byte1, "topic is not UTF-8"))?
        .to_owned();
    let pkid = if qos > 0 {
        u16::from_be_bytes([var[2 + topic_len], var[3 + topic_len]])
    } else {
        0
    };
    if qos > 0 && pkid == 0 {
        return Err(malformed(byte1, "packet id 0"));
    }
    let (info, properties) =
        read_publish_block(&var[props_at..]).map_err(|e| malformed(byte1, e))?;
    Ok(Publish5 {
        topic,
        payload: var.slice(props_at + info.size..),
        qos,
        retain: byte1 & 0b0001 != 0,
        dup: byte1 & 0b1000 != 0,
        pkid,
        topic_alias: info.topic_alias,
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: packet id, then optionally a reason
/// code, then optionally properties.
fn check_ack(byte1: u8, var: &[u8]) -> Result<(), ProtocolError> {
    if var.len() < 2 {
        return Err(malformed(byte1, "no packet id"));
    }
    if var.len() > 3 {
        check_last_block(byte1, Block::Ack, &var[3..])?;
    }
    Ok(())
}

/// SUBACK and UNSUBACK: packet id, properties, one reason code per filter.
/// Returns the number of reason codes.
fn check_suback(byte1: u8, var: &[u8]) -> Result<usize, ProtocolError> {
    if var.len() < 3 {
        return Err(malformed(byte1, "no properties"));
    }
    let info = check_block(Block::Ack, &var[2..]).map_err(|e| malformed(byte1, e))?;
    if 2 + info.size >= var.len() {
        return Err(malformed(byte1, "no reason codes"));
    }
    Ok(var.len() - 2 - info.size)
}

fn disconnect(byte1: u8, var: &[u8]) -> Result<Disconnect5, ProtocolError> {
    if byte1 & 0x0F != 0 {
        return Err(malformed(byte1, "reserved flags set"));
    }
    let Some((&code, rest)) = var.split_first() else {
        return Ok(Disconnect5::default());
    };
    if v5::DisconnectReasonCode::try_from(code).is_err() {
        return Err(malformed(byte1, format!("reason code 0x{code:02X}")));
    }
    let mut d = Disconnect5 {
        reason: code,
        ..Disconnect5::default()
    };
    if rest.is_empty() {
        return Ok(d);
    }
    check_last_block(byte1, Block::Disconnect, rest)?;
    // The block is checked: mqttbytes reads exactly it.
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[byte1]);
    write_varint(&mut frame, var.len());
    frame.extend_from_slice(var);
    match v5::read(&mut frame, MAX_REMAINING_LENGTH).map_err(|e| codec_error(byte1, e))? {
        Packet::Disconnect(p) => {
            if let Some(props) = p.properties {
                d.reason_string = props.reason_string;
                d.server_reference = props.server_reference;
                d.session_expiry_interval = props.session_expiry_interval;
            }
            Ok(d)
        }
        other => Err(malformed(byte1, format!("decoded as {other:?}"))),
    }
}

pub(super) fn write_varint(out: &mut BytesMut, mut n: usize) {
    loop {
        let mut b = u8::try_from(n & 0x7f).unwrap_or_default();
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        out.extend_from_slice(&[b]);
        if n == 0 {
            return;
        }
    }
}

fn convert(byte1: u8, packet: Packet) -> Result<Packet5, ProtocolError> {
    Ok(match packet {
        Packet::ConnAck(c) => {
            let mut out = ConnAck5 {
                session_present: c.session_present,
                reason: c.code as u8,
                ..ConnAck5::default()
            };
            if let Some(p) = c.properties {
                out.session_expiry_interval = p.session_expiry_interval;
                out.receive_maximum = p.receive_max;
                out.maximum_qos = p.max_qos;
                out.retain_available = p.retain_available;
                out.maximum_packet_size = p.max_packet_size;
                out.assigned_client_identifier = p.assigned_client_identifier;
                out.topic_alias_maximum = p.topic_alias_max;
                out.reason_string = p.reason_string;
                out.wildcard_subscription_available = p.wildcard_subscription_available;
                out.shared_subscription_available = p.shared_subscription_available;
                out.server_keep_alive = p.server_keep_alive;
                out.server_reference = p.server_reference;
            }
            Packet5::ConnAck(out)
        }
        Packet::SubAck(s) => Packet5::SubAck {
            pkid: s.pkid,
            reasons: s.return_codes.iter().map(|c| *c as u8).collect(),
            reason_string: s.properties.and_then(|p| p.reason_string),
        },
        Packet::PubAck(a) => Packet5::Common(Incoming::PubAck(a.pkid)),
        Packet::PubRec(a) => Packet5::Common(Incoming::PubRec(a.pkid)),
        Packet::PubRel(a) => Packet5::Common(Incoming::PubRel(a.pkid)),
        Packet::PubComp(a) => Packet5::Common(Incoming::PubComp(a.pkid)),
        Packet::UnsubAck(u) => Packet5::Common(Incoming::UnsubAck(u.pkid)),
        // Decoded by this module before mqttbytes is asked.
        other => return Err(malformed(byte1, format!("decoded as {other:?}"))),
    })
}
