//! Fuzz target: the sans-IO MQTT session driven by arbitrary operations.
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
//! - the outbox stays under 1 MiB.
#![no_main]

use arbitrary::Arbitrary;
use attic::mqtt::framing::{Incoming, encode_incoming};
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
    ConnAck { session_present: bool, code: u8 },
    SubAck { pkid: u8, granted: Vec<Option<u8>> },
    Publish(PublishSpec),
    PubRel(u8),
    PingResp,
}

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
}

impl Packet {
    fn incoming(&self) -> Incoming {
        match self {
            Packet::ConnAck {
                session_present,
                code,
            } => Incoming::ConnAck {
                session_present: *session_present,
                code: code % 6,
            },
            Packet::SubAck { pkid, granted } => Incoming::SubAck {
                pkid: u16::from(*pkid % 3),
                granted: granted.iter().map(|g| g.map(|q| q % 3)).collect(),
            },
            Packet::Publish(p) => {
                let qos = p.qos % 3;
                Incoming::Publish {
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
                }
            }
            Packet::PubRel(id) => Incoming::PubRel(u16::from(*id % 8) + 1),
            Packet::PingResp => Incoming::PingResp,
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
        mqtt5: None,
    };
    let mut now = start();
    let mut session = Session::new(cfg, input.seed, now);
    let mut events = Vec::new();
    // Acks the session may have queued: QoS > 0 messages and oversize
    // events delivered since the last release or connection change.
    let mut ackable = 0usize;
    // QoS 2 messages delivered (or skipped as oversize) since the last
    // release: a persistent session keeps their ids across connections, and
    // a redelivery on a later one queues their PUBREC again (it waits for
    // the same commit) without a second delivery (MQTT 4.3.3).
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
                    encode_incoming(&p.incoming(), &mut wire);
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
            match e {
                Event::Message(d) if d.qos > 0 => {
                    ackable += 1;
                    if d.qos == 2 {
                        qos2_unreleased += 1;
                    }
                }
                // Its QoS is not in the event: it may be a carried QoS 2 id.
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
