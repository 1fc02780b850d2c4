//! The publisher of the JSON self-report: its own MQTT connection
//! (`log-performance-stream`), a publish-only [`Session`] (no filters, so no
//! SUBSCRIBE) with its own socket and poll token.
//!
//! Owns: that connection and its socket handling. Must not: disturb the
//! streams. Its failures (broker down, refusal) are handled by the
//! session's backoff like any stream's; reports produced while it is not
//! connected are dropped, never queued. Reports go out at QoS 0 whatever
//! the configured `qos` (logged once at start-up).

use crate::config::PerformanceConfig;
use crate::mqtt::session::{Event, Session, SessionConfig};
use crate::net::{Link, ReadOutcome};
use mio::{Registry, Token};
use std::time::Instant;

/// Nothing is subscribed, so no PUBLISH is expected; a small bound keeps a
/// misbehaving broker from making us buffer much.
const MAX_INCOMING_PAYLOAD: usize = 64 * 1024;

/// The report's connection.
#[derive(Debug)]
pub struct Publisher {
    topic: String,
    session: Session,
    /// The TCP connection and its poll registration.
    link: Link,
    events: Vec<Event>,
    /// Reports published and dropped (not connected), for the debug log.
    dropped: u64,
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
            },
            // Backoff jitter: differs between processes started together.
            crate::clock::now_us().unsigned_abs() ^ (u64::from(std::process::id()) << 32),
            now,
        );
        Publisher {
            topic: cfg.topic.clone(),
            session,
            link: Link::new(&cfg.broker.host, cfg.broker.port, token)
                .with_tls(cfg.broker.tls.clone()),
            events: Vec::new(),
            dropped: 0,
        }
    }

    /// The earliest moment [`Publisher::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.session.next_deadline()
    }

    /// Whether the broker accepted the connection.
    pub fn is_connected(&self) -> bool {
        self.session.is_connected()
    }

    /// Publishes one report at QoS 0; dropped while not connected.
    pub fn publish(&mut self, registry: &Registry, payload: &str, now: Instant) {
        if self.session.publish(&self.topic, payload.as_bytes(), now) {
            self.flush(registry, now);
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
        self.session.on_timer(now, &mut self.events);
        self.handle_events(registry, now);
        self.flush(registry, now);
    }

    /// The socket is ready: finish a connect, read until `WouldBlock`,
    /// write what is pending.
    pub fn on_ready(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        match self.link.finish_connect() {
            Ok(true) => {
                self.session.on_transport_up(now, &mut self.events);
                self.handle_events(registry, now);
            }
            Ok(false) if self.link.is_connecting() => return,
            Ok(false) => {}
            Err(why) => {
                self.down(registry, now, &why);
                return;
            }
        }
        while self.link.is_open() {
            match self.link.read(buf) {
                Ok(ReadOutcome::Data(n)) => {
                    self.session.on_bytes(&buf[..n], now, &mut self.events);
                    self.handle_events(registry, now);
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => {
                    self.down(registry, now, "the broker closed the connection");
                    break;
                }
                Err(e) => {
                    self.down(registry, now, &format!("read error: {e}"));
                    break;
                }
            }
        }
        self.flush(registry, now);
    }

    /// Stop: queue DISCONNECT and try once to write it, then close.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant) {
        self.session.shutdown();
        self.flush(registry, now);
        self.close_socket(registry);
    }

    fn down(&mut self, registry: &Registry, now: Instant, why: &str) {
        self.session.on_transport_down(now, why, &mut self.events);
        self.handle_events(registry, now);
    }

    fn handle_events(&mut self, registry: &Registry, now: Instant) {
        while !self.events.is_empty() {
            for ev in std::mem::take(&mut self.events) {
                match ev {
                    Event::Connect => self.open_socket(registry, now),
                    Event::Close => self.close_socket(registry),
                    Event::Ready => log::info!(
                        "[performance] connected; publishing reports on {:?}",
                        self.topic
                    ),
                    // Nothing is subscribed; a broker that sends anyway is ignored.
                    Event::Message(_) | Event::Oversize { .. } => {}
                }
            }
        }
    }

    fn open_socket(&mut self, registry: &Registry, now: Instant) {
        if let Err(why) = self.link.open(registry) {
            self.session.on_transport_down(now, &why, &mut self.events);
        }
    }

    fn close_socket(&mut self, registry: &Registry) {
        self.link.close(registry);
    }

    /// Writes the outbox (WRITABLE interest only while bytes remain).
    fn flush(&mut self, registry: &Registry, now: Instant) {
        if let Err(why) = self.link.flush(registry, self.session.outbox()) {
            self.down(registry, now, &why);
        }
    }
}
