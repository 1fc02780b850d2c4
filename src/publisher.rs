//! The publisher of the JSON self-report: its own MQTT connection
//! (`log-performance-stream`), a publish-only [`Session`] (no filters, so no
//! SUBSCRIBE) wrapped in a [`Connection`] with its own socket and poll token.
//!
//! Owns: that connection. Must not: disturb the
//! streams. Its failures (broker down, refusal) are handled by the
//! session's backoff like any stream's; reports produced while it is not
//! connected are dropped, never queued. Reports go out at QoS 0 whatever
//! the configured `qos` (logged once at start-up).

use crate::config::PerformanceConfig;
use crate::connection::{Connection, Read};
use crate::mqtt::session::{Event, Session, SessionConfig};
use mio::{Registry, Token};
use std::time::Instant;

/// Nothing is subscribed, so no PUBLISH is expected; a small bound keeps a
/// misbehaving broker from making us buffer much.
const MAX_INCOMING_PAYLOAD: usize = 64 * 1024;

/// Reads per loop turn, as for a stream: a broker that floods this
/// connection cannot starve the streams.
const MAX_READS_PER_TURN: usize = 16;

/// The report's connection.
#[derive(Debug)]
pub struct Publisher {
    topic: String,
    /// The publish-only session and its socket.
    conn: Connection,
    /// Scratch for the connection's events, reused.
    events: Vec<Event>,
    /// Reports published and dropped (not connected), for the debug log.
    dropped: u64,
    /// The read limit was reached with bytes possibly left in the socket.
    unread: bool,
}

impl Publisher {
    /// A publisher that connects at `now` on its first timer.
    pub fn new(cfg: &PerformanceConfig, token: Token, now: Instant) -> Self {
        if cfg.qos > 0 {
            log::info!(
                "the performance report is published at QoS 0 (log-performance-stream.qos {} is not used)",
                cfg.qos
            );
        }
        let session = Session::new(
            SessionConfig {
                name: "performance".into(),
                client_id: cfg.broker.client_id.clone(),
                user: cfg.broker.user.clone(),
                password: cfg.broker.password.clone(),
                keep_alive: cfg.broker.keep_alive,
                clean_session: true,
                filters: Vec::new(),
                qos: 0,
                max_payload: MAX_INCOMING_PAYLOAD,
                mqtt5: cfg.broker.mqtt5,
            },
            // Backoff jitter: differs between processes started together.
            crate::clock::now_us().unsigned_abs() ^ (u64::from(std::process::id()) << 32),
            now,
        );
        Publisher {
            topic: cfg.topic.clone(),
            conn: Connection::to_broker(session, &cfg.broker, token),
            events: Vec::new(),
            dropped: 0,
            unread: false,
        }
    }

    /// The earliest moment [`Publisher::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conn.next_deadline()
    }

    /// Whether the broker accepted the connection.
    pub fn is_connected(&self) -> bool {
        self.conn.is_connected()
    }

    /// Publishes one report at QoS 0; dropped while not connected.
    pub fn publish(&mut self, registry: &Registry, payload: &str, now: Instant) {
        if self.conn.publish(&self.topic, payload.as_bytes(), now) {
            self.conn.flush(registry, now);
        } else {
            self.dropped += 1;
            log::debug!(
                "[performance] not connected; report dropped ({} so far)",
                self.dropped
            );
        }
    }

    /// Session timers: connect, keep-alive, silence.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        self.conn.on_timer(registry, now);
        self.handle_events();
        self.conn.flush(registry, now);
    }

    /// The socket is ready: finish a connect, read until `WouldBlock`,
    /// write what is pending.
    pub fn on_ready(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if self.conn.on_ready(registry, now) {
            self.read_some(registry, buf, now);
        }
        self.handle_events();
    }

    /// The read limit stopped the last turn early: the loop must come back
    /// at once (edge-triggered: no new event would come for those bytes).
    pub fn has_unread(&self) -> bool {
        self.unread && self.conn.is_open()
    }

    /// Continues reading where the last turn stopped.
    pub fn continue_reading(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if self.has_unread() {
            self.read_some(registry, buf, now);
            self.handle_events();
        }
    }

    /// Reads until `WouldBlock`, end of file or the per-turn limit. Nothing
    /// is subscribed, so nothing is stored: a QoS 1/2 message a broker
    /// sends anyway is acknowledged at once, so that its in-flight window
    /// never fills and no ack queue grows.
    fn read_some(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.unread = false;
        for reads in 0.. {
            if reads == MAX_READS_PER_TURN {
                self.unread = true;
                break;
            }
            if !matches!(self.conn.read(registry, buf, now), Read::Data(_)) {
                break;
            }
        }
        self.conn.release_acks(now);
        self.conn.flush(registry, now);
    }

    /// Host names of the report's broker are resolved through `resolver`.
    pub fn set_resolver(&mut self, resolver: crate::resolve::ResolverHandle) {
        self.conn.set_resolver(resolver);
    }

    /// The broker's host name was looked up: connect (or back off).
    pub fn on_resolved(
        &mut self,
        registry: &Registry,
        answer: crate::resolve::Answer,
        now: Instant,
    ) {
        self.conn.on_resolved(registry, answer, now);
        self.handle_events();
        self.conn.flush(registry, now);
    }

    /// Stop: queue DISCONNECT and try once to write it, then close.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant) {
        self.conn.shutdown();
        self.conn.flush(registry, now);
        self.conn.close(registry);
    }

    /// Logs the notices; the connection has carried out the commands.
    fn handle_events(&mut self) {
        self.conn.take_events(&mut self.events);
        for ev in self.events.drain(..) {
            match ev {
                Event::Connected => log::info!(
                    "[performance] connected; publishing reports on {:?}",
                    self.topic
                ),
                // Nothing is subscribed; a broker that sends anyway is ignored.
                Event::OpenTransport
                | Event::CloseTransport
                | Event::Message(_)
                | Event::Oversize { .. } => {}
            }
        }
    }
}
