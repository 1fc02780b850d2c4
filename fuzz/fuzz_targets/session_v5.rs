//! Fuzz target: the sans-IO MQTT session speaking MQTT 5, driven by
//! arbitrary operations (the 3.1.1 target's, with v5 packets: CONNACK
//! properties, reason codes, topic aliases, PUBLISH properties, DISCONNECT).
//!
//! The input decodes (with `arbitrary`) into a session configuration and a
//! list of operations: time passing, the transport coming up or going down,
//! raw or well-formed broker packets, ack releases, our own publishes, the
//! loop writing the outbox, shutdown.
//!
//! Checks, after every operation:
//! - nothing panics;
//! - `pending_acks()` never exceeds the QoS > 0 messages and oversize
//!   events delivered since acks were last released or the connection
//!   changed, and is 0 right after a release, a close or a shutdown;
//! - after `Event::CloseTransport` the session is not connected;
//! - `next_deadline()` is `Some` until shutdown, `None` after;
//! - the outbox stays under 1 MiB;
//! - every delivered message has a non-empty topic (aliases resolved) and
//!   properties that are NULL or a JSON object.
#![no_main]

use arbitrary::Arbitrary;
use attic::mqtt::framing::Incoming;
use attic::mqtt::framing::v5::{
    ConnAck5, Disconnect5, Packet5, Publish5, PublishProps, encode_packet5,
};
use attic::mqtt::session::v5::Mqtt5Options;
use attic::mqtt::session::{Event, Session, SessionConfig};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bound on the bytes waiting to be written.
const MAX_OUTBOX: usize = 1 << 20;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Keep-alive in seconds (the config allows 1 to 65,535).
    keep_alive_s: u16,
    clean_session: bool,
    /// Number of topic filters, 0 to 3 (0: publish-only connection).
    filters: u8,
    /// Requested QoS, reduced modulo 3.
    qos: u8,
    /// Small limit (64 bytes) or a large one.
    small_payload_limit: bool,
    seed: u64,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// `on_timer` after this many milliseconds.
    Wait(u32),
    /// `on_timer` exactly at `next_deadline()`.
    WaitForDeadline,
    TransportUp,
    TransportDown,
    /// Arbitrary bytes from the broker.
    Raw(Vec<u8>),
    /// Well-formed packets, possibly several in one read, possibly split.
    Packets(Vec<Packet>, Option<u8>),
    ReleaseAcks,
    Publish(String, Vec<u8>),
    /// The loop wrote this many bytes of the outbox.
    Write(u16),
    Shutdown,
}

#[derive(Debug, Arbitrary)]
enum Packet {
    ConnAck {
        session_present: bool,
        refused: Option<u8>,
        server_keep_alive: Option<u16>,
        max_packet_size: Option<u16>,
        assigned_id: bool,
    },
    SubAck {
        pkid: u8,
        reasons: Vec<u8>,
    },
    Publish(PublishSpec),
    PubRel(u8),
    PingResp,
    Disconnect(u8),
}

/// Reason codes a broker may send in CONNACK, SUBACK and DISCONNECT.
const CONNACK_REFUSALS: &[u8] = &[0x80, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x9C, 0x9F];
const SUBACK_CODES: &[u8] = &[0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x97, 0x9E, 0xA1, 0xA2];
const DISCONNECT_CODES: &[u8] = &[
    0, 0x80, 0x81, 0x82, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x93, 0x94, 0x9C,
];

#[derive(Debug, Arbitrary)]
struct PublishSpec {
    topic: String,
    /// Payload length (filled with a pattern; may exceed the small limit).
    len: u8,
    qos: u8,
    retain: bool,
    dup: bool,
    /// Small ids, so duplicates happen.
    pkid: u8,
    /// Topic alias (small, so known and unknown ones happen; 0 is invalid).
    alias: Option<u8>,
    content_type: Option<String>,
    user_properties: Vec<(String, String)>,
    correlation: Option<Vec<u8>>,
}

impl Packet {
    fn packet(&self) -> Packet5 {
        match self {
            Packet::ConnAck {
                session_present,
                refused,
                server_keep_alive,
                max_packet_size,
                assigned_id,
            } => Packet5::ConnAck(ConnAck5 {
                session_present: *session_present,
                reason: refused.map_or(0, |r| {
                    CONNACK_REFUSALS[usize::from(r) % CONNACK_REFUSALS.len()]
                }),
                server_keep_alive: *server_keep_alive,
                maximum_packet_size: max_packet_size.map(|m| u32::from(m.max(1))),
                assigned_client_identifier: assigned_id.then(|| "assigned".to_owned()),
                ..ConnAck5::default()
            }),
            Packet::SubAck { pkid, reasons } => Packet5::SubAck {
                pkid: u16::from(*pkid % 3),
                reasons: reasons
                    .iter()
                    .map(|r| SUBACK_CODES[usize::from(*r) % SUBACK_CODES.len()])
                    .collect(),
                reason_string: None,
            },
            Packet::Publish(p) => {
                let qos = p.qos % 3;
                Packet5::Publish(Publish5 {
                    topic: p.topic.clone(),
                    payload: Bytes::from(vec![0xa5; usize::from(p.len)]),
                    qos,
                    retain: p.retain,
                    dup: p.dup,
                    pkid: if qos == 0 {
                        0
                    } else {
                        u16::from(p.pkid % 8) + 1
                    },
                    topic_alias: p.alias.map(|a| u16::from(a % 8)),
                    properties: PublishProps {
                        content_type: p.content_type.clone(),
                        user_properties: p.user_properties.clone(),
                        correlation_data: p.correlation.clone().map(Bytes::from),
                        ..PublishProps::default()
                    },
                })
            }
            Packet::PubRel(id) => Packet5::Common(Incoming::PubRel(u16::from(*id % 8) + 1)),
            Packet::PingResp => Packet5::Common(Incoming::PingResp),
            Packet::Disconnect(r) => Packet5::Disconnect(Disconnect5 {
                reason: DISCONNECT_CODES[usize::from(*r) % DISCONNECT_CODES.len()],
                ..Disconnect5::default()
            }),
        }
    }
}

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fuzz_target!(|input: Input| {
    let filters = (0..input.filters % 4).map(|i| format!("f/{i}/#")).collect();
    let cfg = SessionConfig {
        name: "fuzz".into(),
        client_id: "attic-fuzz".into(),
        user: None,
        password: None,
        keep_alive: Duration::from_secs(u64::from(input.keep_alive_s.max(1))),
        clean_session: input.clean_session,
        filters,
        qos: input.qos % 3,
        max_payload: if input.small_payload_limit {
            64
        } else {
            16 << 20
        },
        mqtt5: Some(Mqtt5Options {
            session_expiry_s: input.seed as u32,
            topic_alias_maximum: (input.seed >> 32) as u16 % 8,
        }),
    };
    let mut now = start();
    let mut session = Session::new(cfg, input.seed, now);
    let mut events = Vec::new();
    // Acks the session may have queued: QoS > 0 messages and oversize
    // events delivered since the last release or connection change.
    let mut ackable = 0usize;
    // QoS 2 messages delivered (or skipped as oversize) since the last release: a persistent session
    // keeps their ids across connections, and a redelivery on a later one
    // queues their PUBREC again (it waits for the same commit) without a
    // second delivery (MQTT 4.3.3).
    let mut qos2_unreleased = 0usize;
    let mut stopped = false;

    for op in &input.ops {
        events.clear();
        let mut acks_cleared = false;
        match op {
            Op::Wait(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                session.on_timer(now, &mut events);
            }
            Op::WaitForDeadline => {
                if let Some(at) = session.next_deadline() {
                    now = now.max(at);
                }
                session.on_timer(now, &mut events);
            }
            // A real transport change happens only from a state that holds
            // no acks (up) or that drops them (down, which emits Close).
            Op::TransportUp => session.on_transport_up(now, &mut events),
            Op::TransportDown => session.on_transport_down(now, "fuzz", &mut events),
            Op::Raw(bytes) => session.on_bytes(bytes, now, &mut events),
            Op::Packets(packets, split) => {
                let mut wire = BytesMut::new();
                for p in packets {
                    // Strings too long for MQTT have no encoding: skipped.
                    let _ = encode_packet5(&p.packet(), &mut wire);
                }
                match split {
                    Some(at) if !wire.is_empty() => {
                        let at = usize::from(*at) % wire.len();
                        session.on_bytes(&wire[..at], now, &mut events);
                        session.on_bytes(&wire[at..], now, &mut events);
                    }
                    _ => session.on_bytes(&wire, now, &mut events),
                }
            }
            Op::ReleaseAcks => {
                session.release_acks(now);
                ackable = 0;
                qos2_unreleased = 0;
                acks_cleared = true;
            }
            Op::Publish(topic, payload) => {
                session.publish(topic, payload, now);
            }
            Op::Write(n) => {
                let outbox = session.outbox();
                let n = usize::from(*n).min(outbox.len());
                let _ = outbox.split_to(n);
            }
            Op::Shutdown => {
                session.shutdown();
                stopped = true;
                ackable = 0;
                qos2_unreleased = 0;
                acks_cleared = true;
            }
        }

        for e in &events {
            if let Event::Message(d) = e {
                assert!(!d.topic.is_empty(), "a message without its topic");
                if let Some(json) = &d.properties {
                    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
                }
            }
            match e {
                Event::Message(d) if d.qos > 0 => {
                    ackable += 1;
                    if d.qos == 2 {
                        qos2_unreleased += 1;
                    }
                }
                // A skipped message is acknowledged like a stored one; its
                // QoS is not in the event, so it may be a carried QoS 2 id.
                Event::Oversize { .. } => {
                    ackable += 1;
                    qos2_unreleased += 1;
                }
                Event::CloseTransport => ackable = 0,
                _ => {}
            }
        }
        // A close in this step may have been followed by new deliveries
        // only if the session reconnected within the step, which it cannot.
        if events.contains(&Event::CloseTransport) {
            assert!(!session.is_connected(), "connected after Close");
            assert_eq!(session.pending_acks(), 0, "acks survive a Close");
        }
        if acks_cleared {
            assert_eq!(session.pending_acks(), 0, "acks left after {op:?}");
        }
        let carried = if input.clean_session {
            0
        } else {
            qos2_unreleased
        };
        assert!(
            session.pending_acks() <= ackable + carried,
            "{} acks pending for {ackable} deliveries ({carried} QoS 2 ids carried over)",
            session.pending_acks()
        );
        assert_eq!(
            session.next_deadline().is_some(),
            !stopped,
            "next_deadline after {op:?}"
        );
        assert!(
            session.outbox().len() < MAX_OUTBOX,
            "outbox grows unbounded"
        );
    }
});
