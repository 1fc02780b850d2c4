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

mod decode;
mod encode;
mod framer;
pub mod v5;

pub use decode::Decoder;
pub use encode::{
    Ack, ConnectParams, EncodeError, encode_ack, encode_connect, encode_disconnect,
    encode_incoming, encode_pingreq, encode_publish, encode_publish_dup, encode_subscribe,
};

use bytes::Bytes;
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use mqttbytes::v4::{self, Packet};

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
