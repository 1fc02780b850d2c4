//! The sans-IO MQTT client session of one stream (3.1.1; MQTT 5 additions in `v5`).
//!
//! It owns the protocol rules and nothing else: no socket, no clock. The loop
//! feeds it bytes (`on_bytes`), transport changes (`on_transport_up`,
//! `on_transport_down`) and time (`on_timer`), always with `now` as an
//! argument; the session answers with [`Event`]s and with bytes to send,
//! which it appends to its [`Session::outbox`].
//!
//! ```text
//!             +--------+  Connect   +-----------+ transport up +-------------+
//!   start --> |  Idle  | ---------> | Transport | -----------> | AwaitConnAck|
//!             +--------+            +-----------+   CONNECT    +-------------+
//!                 ^  backoff             |  down                    | CONNACK 0
//!                 +----------------------+--------------------------+ (SUBSCRIBE
//!                 |     any error, silence, refusal                 v  if needed)
//!                 +-------------------------------------------- +------+
//!                                                               |  Up  |
//!                                         shutdown -> Stopped   +------+
//! ```
//!
//! Acknowledgements of QoS 1 and 2 messages are *queued*, in arrival order,
//! and written only when the loop calls [`Session::release_acks`] after the
//! transaction holding those messages has committed (ack-after-commit).

use super::acks::Acks;
use super::backoff::{Backoff, Failure, STABLE};
use super::framing::{self, Ack, Decoder, Incoming};
use super::identity::{self, TakeoverWatch};
use super::outflight::{Outflight, UnknownPacketId};

mod answer;
mod error;
mod publish;
mod resume;
use bytes::{Bytes, BytesMut};
use std::fmt;
use std::time::{Duration, Instant};
pub mod v5;
pub use error::SessionError;

/// Packet id of our one SUBSCRIBE per connection.
const SUBSCRIBE_PKID: u16 = 1;

/// What a session needs to know about its connection.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Name used in log lines (the stream's folder).
    pub name: String,
    /// MQTT client id.
    pub client_id: String,
    /// User name; `None` = anonymous.
    pub user: Option<String>,
    /// Password (sent only with a user).
    pub password: Option<String>,
    /// Keep-alive interval announced in CONNECT.
    pub keep_alive: Duration,
    /// Ask the broker to drop any previous session.
    pub clean_session: bool,
    /// Topic filters to subscribe to; empty for a publish-only connection.
    pub filters: Vec<String>,
    /// QoS requested for every filter.
    pub qos: u8,
    /// PUBLISH payloads larger than this are skipped.
    pub max_payload: usize,
    /// `mqtt-version: 5` and its settings; `None` = MQTT 3.1.1.
    pub mqtt5: Option<v5::Mqtt5Options>,
}

/// A message the broker delivered, to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic as received.
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS it was delivered with.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// MQTT 5 properties as the stored JSON; `None` = none, or MQTT 3.1.1.
    pub properties: Option<String>,
}

/// What the session asks the loop to do (commands: `OpenTransport`,
/// `CloseTransport`), or tells it (notices: `Connected`, `Message`,
/// `Oversize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Command: open a TCP connection to the broker now, then call
    /// [`Session::on_transport_up`] or [`Session::on_transport_down`].
    OpenTransport,
    /// Command: close the TCP connection now; a reconnect is already scheduled.
    CloseTransport,
    /// Notice: the broker accepted us and the subscriptions are in place (or
    /// were kept by a persistent session).
    Connected,
    /// A message to store.
    Message(Delivery),
    /// A message larger than `max-payload-bytes`, skipped (and acknowledged
    /// in order, like a stored one).
    Oversize {
        /// Its topic.
        topic: String,
        /// Its announced payload size.
        payload_len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection; the next attempt is at `retry_at`.
    Idle { retry_at: Instant },
    /// The loop is opening the TCP connection.
    Transport { since: Instant },
    /// CONNECT sent, waiting for CONNACK.
    AwaitConnAck { since: Instant },
    /// CONNACK accepted.
    Up {
        since: Instant,
        /// SUBACK still awaited.
        suback_pending: bool,
    },
    /// Shut down for good.
    Stopped,
}

/// Counters the self-report reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Connections established (CONNACK accepted) after the first.
    pub reconnects: u64,
    /// Connections accepted in all.
    pub connections: u64,
    /// Connections lost or refused.
    pub failures: u64,
    /// Times the broker kept closing the connection right after accepting
    /// it (warned as a probable client id clash), or said so (MQTT 5
    /// DISCONNECT "session taken over").
    pub suspected_takeovers: u64,
    /// Times the subscriptions were confirmed: a SUBACK, or a CONNACK that
    /// resumed a session (`--ready-file` waits for the first).
    pub subscribed: u64,
    /// QoS granted per filter by the last SUBACK, in filter order (`None` =
    /// refused); empty after a CONNACK that resumed the session.
    pub granted: Vec<Option<u8>>,
    /// The session-present flag of the last accepted CONNACK.
    pub session_present: bool,
    /// Why the last connection (or attempt) ended, in words.
    pub last_close: String,
}

/// The MQTT session of one stream. See the module docs.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    decoder: Decoder,
    /// Bytes to send; the loop writes them and advances.
    outbox: BytesMut,
    /// Acks waiting for the commit of the messages they acknowledge, in
    /// the order the messages arrived, and the QoS 2 ids in flight.
    acks: Acks,
    backoff: Backoff,
    /// When we last queued bytes (keep-alive: ping after `keep_alive` of our
    /// own silence).
    last_sent: Instant,
    /// When we last received bytes (a broker silent for 1.5 x keep-alive
    /// is gone).
    last_recv: Instant,
    ping_outstanding: bool,
    stats: SessionStats,
    /// The MQTT 5 side (`mqtt-version: 5`); `None` = MQTT 3.1.1.
    v5: Option<Box<v5::V5>>,
    /// Notices a broker that keeps closing the connection right after
    /// accepting it (another client with the same id).
    takeover: TakeoverWatch,
    /// Our own QoS 1/2 publishes awaiting their acks (replay).
    outflight: Outflight,
}

impl Session {
    /// A session that will connect at `now`.
    pub fn new(cfg: SessionConfig, seed: u64, now: Instant) -> Self {
        let decoder = Decoder::new(cfg.max_payload);
        let qos2 = cfg.qos == 2;
        Session {
            v5: cfg.mqtt5.map(|o| Box::new(v5::V5::new(o, &cfg))),
            cfg,
            state: State::Idle { retry_at: now },
            decoder,
            outbox: BytesMut::with_capacity(256),
            acks: Acks::new(qos2),
            backoff: Backoff::new(seed),
            last_sent: now,
            last_recv: now,
            ping_outstanding: false,
            stats: SessionStats::default(),
            takeover: TakeoverWatch::new(),
            outflight: Outflight::new(publish::WINDOW),
        }
    }

    /// The session's name (for logs).
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Bytes waiting to be written to the socket. The loop writes from the
    /// front and advances past what the socket took.
    pub fn outbox(&mut self) -> &mut BytesMut {
        &mut self.outbox
    }

    /// True when CONNACK was accepted and the connection is up.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// True while the loop should hold a TCP connection (connecting or up).
    pub fn wants_transport(&self) -> bool {
        matches!(
            self.state,
            State::Transport { .. } | State::AwaitConnAck { .. } | State::Up { .. }
        )
    }

    /// Counters for the self-report.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Acknowledgements waiting for a commit.
    pub fn pending_acks(&self) -> usize {
        self.acks.pending()
    }

    /// The earliest moment [`Session::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let ka = self.cfg.keep_alive;
        match self.state {
            State::Idle { retry_at } => Some(retry_at),
            State::Transport { since } | State::AwaitConnAck { since } => {
                Some(since + self.connect_timeout())
            }
            State::Up { .. } => {
                let silence = self.last_recv + ka.mul_f32(1.5);
                if self.ping_outstanding {
                    Some(silence)
                } else {
                    Some((self.last_sent + ka).min(silence))
                }
            }
            State::Stopped => None,
        }
    }

    fn connect_timeout(&self) -> Duration {
        self.cfg
            .keep_alive
            .clamp(Duration::from_secs(5), Duration::from_secs(30))
    }

    /// Time-driven work: start a connection, ping, or give up on a silent one.
    pub fn on_timer(&mut self, now: Instant, events: &mut Vec<Event>) {
        let ka = self.cfg.keep_alive;
        match self.state {
            State::Idle { retry_at } if now >= retry_at => {
                self.state = State::Transport { since: now };
                events.push(Event::OpenTransport);
            }
            State::Transport { since } if now >= since + self.connect_timeout() => {
                self.fail(now, &SessionError::ConnectTimeout, events);
            }
            State::AwaitConnAck { since } if now >= since + self.connect_timeout() => {
                let why = answer::no_connack(self.connect_timeout(), self.v5.is_some());
                self.fail(now, &SessionError::NoConnAck(why), events);
            }
            State::Up { .. } => {
                if now >= self.last_recv + ka.mul_f32(1.5) {
                    let secs = now.saturating_duration_since(self.last_recv).as_secs_f32();
                    let why = SessionError::Silent {
                        secs,
                        ping_outstanding: self.ping_outstanding,
                    };
                    self.fail(now, &why, events);
                } else if !self.ping_outstanding && now >= self.last_sent + ka {
                    framing::encode_pingreq(&mut self.outbox);
                    self.last_sent = now;
                    self.ping_outstanding = true;
                }
            }
            _ => {}
        }
    }

    /// The TCP connection is established: send CONNECT.
    pub fn on_transport_up(&mut self, now: Instant, events: &mut Vec<Event>) {
        if !matches!(self.state, State::Transport { .. }) {
            return;
        }
        self.outbox.clear();
        self.decoder.reset();
        if let Err(e) = self.encode_connect() {
            self.fail(now, &SessionError::Encode(e), events);
            return;
        }
        self.last_sent = now;
        self.last_recv = now;
        self.state = State::AwaitConnAck { since: now };
    }

    /// The TCP connection failed or was lost (`why` is logged).
    pub fn on_transport_down(&mut self, now: Instant, why: &str, events: &mut Vec<Event>) {
        if self.wants_transport() {
            if self.takeover.on_close(now, true) {
                self.stats.suspected_takeovers += 1;
                let why = identity::takeover_warning(&self.cfg.client_id);
                log::warn!("[{}] {why}", self.cfg.name);
            }
            self.fail(now, &why, events);
        }
    }

    /// The owner gives up on a connection whose transport is healthy
    /// (storage rolled back the messages of an open transaction): closes it
    /// like a failure, dropping the unsent acks, so that the broker
    /// redelivers every unacknowledged QoS 1/2 message, and schedules a
    /// reconnect. With no connection to abort, only the QoS 2 ids of the
    /// rolled-back messages are forgotten (so their redelivery is stored).
    pub fn abort(&mut self, now: Instant, why: &str, events: &mut Vec<Event>) {
        // Rolled back, so not stored: QoS 2 ids delivered since the last
        // commit must be stored when they come again, connected or not.
        self.acks.rolled_back();
        if self.wants_transport() {
            self.takeover.on_close(now, false);
            self.fail(now, &why, events);
        }
    }

    /// Bytes from the broker. Complete packets are handled at once;
    /// a protocol violation closes the connection.
    pub fn on_bytes(&mut self, data: &[u8], now: Instant, events: &mut Vec<Event>) {
        if !matches!(self.state, State::AwaitConnAck { .. } | State::Up { .. }) {
            return;
        }
        self.last_recv = now;
        if data.is_empty() {
            // Bytes the owner left unread (storage paused): the PINGRESP
            // may be among them, so the next ping is not held back. The
            // broker expects a packet from us every keep-alive.
            self.ping_outstanding = false;
            return;
        }
        if let Err(why) = self.check_first_bytes(data) {
            self.fail(now, &why, events);
            return;
        }
        if self.v5.is_some() {
            return self.on_bytes_v5(data, now, events);
        }
        self.decoder.push(data);
        loop {
            match self.decoder.next_packet() {
                Ok(Some(packet)) => {
                    if let Err(why) = self.on_packet(packet, now, events) {
                        self.fail(now, &why, events);
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.fail(now, &SessionError::Protocol(e), events);
                    return;
                }
            }
        }
    }

    fn on_packet(
        &mut self,
        p: Incoming,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        let up = matches!(self.state, State::Up { .. });
        match p {
            Incoming::ConnAck {
                session_present,
                code,
            } => {
                if !matches!(self.state, State::AwaitConnAck { .. }) {
                    return Err(SessionError::SecondConnAck);
                }
                if code != 0 {
                    return Err(SessionError::Refused(format!(
                        "broker refused the connection: {}",
                        answer::refusal(code)
                    )));
                }
                self.stats.connections += 1;
                self.stats.session_present = session_present;
                if self.stats.connections > 1 {
                    self.stats.reconnects += 1;
                }
                self.takeover.on_accepted(now);
                self.backoff.connected();
                if !session_present {
                    self.acks.session_lost();
                }
                self.log_session_present(session_present);
                let resubscribe = !session_present && !self.cfg.filters.is_empty();
                if resubscribe {
                    self.encode_subscribe()?;
                    self.last_sent = now;
                } else {
                    if !self.cfg.filters.is_empty() {
                        log::info!("[{}] session resumed; storing messages", self.cfg.name);
                    }
                    self.stats.subscribed += 1;
                    self.stats.granted.clear();
                    events.push(Event::Connected);
                }
                // Our publishes still in flight go out again (DUP / PUBREL).
                self.outflight.resend(&mut self.outbox)?;
                log::info!(
                    "[{}] connected to broker as {:?} (session present: {session_present})",
                    self.cfg.name,
                    self.cfg.client_id
                );
                self.state = State::Up {
                    since: now,
                    suback_pending: resubscribe,
                };
            }
            Incoming::SubAck { pkid, granted } => {
                let State::Up {
                    since,
                    suback_pending: true,
                } = self.state
                else {
                    return Err(SessionError::UnaskedSubAck { pkid });
                };
                if pkid != SUBSCRIBE_PKID || granted.len() != self.cfg.filters.len() {
                    return Err(SessionError::SubAckMismatch {
                        pkid,
                        codes: granted.len(),
                        filters: self.cfg.filters.len(),
                    });
                }
                for (i, (filter, g)) in self.cfg.filters.iter().zip(&granted).enumerate() {
                    match g {
                        None => log::error!(
                            "[{}] broker refused subscription to {filter:?}{}",
                            self.cfg.name,
                            self.refusal_reason(i)
                        ),
                        Some(q) if *q < self.cfg.qos => log::warn!(
                            "[{}] broker granted QoS {q} (asked {}) for {filter:?}",
                            self.cfg.name,
                            self.cfg.qos
                        ),
                        Some(_) => log::debug!("[{}] subscribed to {filter:?}", self.cfg.name),
                    }
                }
                self.state = State::Up {
                    since,
                    suback_pending: false,
                };
                let granted_count = granted.iter().filter(|g| g.is_some()).count();
                if granted_count == 0 {
                    log::error!(
                        "[{}] the broker refused every subscription: storing nothing (check the topic filters and the broker's access rules)",
                        self.cfg.name
                    );
                } else if granted_count < granted.len() {
                    log::warn!(
                        "[{}] subscribed to {granted_count} of {} filters; storing their messages",
                        self.cfg.name,
                        granted.len()
                    );
                } else {
                    log::info!("[{}] subscribed; storing messages", self.cfg.name);
                }
                self.stats.subscribed += 1;
                self.stats.granted = granted;
                events.push(Event::Connected);
            }
            Incoming::Publish {
                topic,
                payload,
                qos,
                retain,
                dup: _,
                pkid,
            } => {
                if !up {
                    return Err(SessionError::BeforeConnAck("PUBLISH"));
                }
                if self.accept_publish(qos, pkid) {
                    events.push(Event::Message(Delivery {
                        topic,
                        payload,
                        qos,
                        retain,
                        properties: None,
                    }));
                }
            }
            Incoming::Oversize {
                topic,
                qos,
                pkid,
                payload_len,
            } => {
                if !up {
                    return Err(SessionError::BeforeConnAck("PUBLISH"));
                }
                if self.accept_publish(qos, pkid) {
                    events.push(Event::Oversize { topic, payload_len });
                }
            }
            Incoming::PubRel(pkid) => {
                if !up {
                    return Err(SessionError::BeforeConnAck("PUBREL"));
                }
                // Unknown ids are completed too: after a reconnect the
                // broker may resend a PUBREL for an id we acknowledged on
                // the previous connection.
                if self.cfg.qos == 2 {
                    self.acks.released(pkid);
                }
                framing::encode_ack(Ack::PubComp, pkid, &mut self.outbox);
                self.last_sent = now;
            }
            Incoming::PingResp => self.ping_outstanding = false,
            // Acks of our own QoS 1/2 publishes; ids we never used are
            // protocol errors.
            Incoming::PubAck(id) => self.outflight.on_puback(id)?,
            Incoming::PubRec(id) => {
                self.outflight.on_pubrec(id, &mut self.outbox)?;
                self.last_sent = now;
            }
            Incoming::PubComp(id) => self.outflight.on_pubcomp(id)?,
            Incoming::UnsubAck(pkid) => {
                return Err(UnknownPacketId {
                    packet: "UNSUBACK",
                    pkid,
                }
                .into());
            }
            Incoming::Unexpected(kind) => return Err(SessionError::ServerBound(kind)),
        }
        Ok(())
    }

    /// Queues the acknowledgement of a PUBLISH; false if it is a QoS 2
    /// duplicate that must not be stored again.
    fn accept_publish(&mut self, qos: u8, pkid: u16) -> bool {
        self.acks.accept(qos, pkid, &mut self.outbox)
    }

    /// Everything delivered so far is committed: send the queued
    /// acknowledgements, in arrival order.
    pub fn release_acks(&mut self, now: Instant) {
        if self.acks.release(&mut self.outbox) {
            self.last_sent = now;
        }
    }

    /// Stop for good: queue DISCONNECT if connected. Acks not released
    /// by now are dropped (the broker will redeliver those messages).
    pub fn shutdown(&mut self) {
        if matches!(self.state, State::Up { .. } | State::AwaitConnAck { .. }) {
            framing::encode_disconnect(&mut self.outbox);
        }
        self.acks.drop_queued();
        self.state = State::Stopped;
    }

    /// Closes the connection after an error and schedules the next attempt.
    fn fail(&mut self, now: Instant, why: &dyn fmt::Display, events: &mut Vec<Event>) {
        if let State::Up { since, .. } = self.state
            && now.saturating_duration_since(since) >= STABLE
        {
            self.backoff.reset();
        }
        let failure = match self.state {
            State::Transport { .. } => Failure::Unreachable,
            _ => Failure::Broker,
        };
        let delay = self.backoff.next_delay(failure);
        // A connection that never opened was not "closed".
        let closed = if failure == Failure::Unreachable {
            ""
        } else {
            "connection closed: "
        };
        log::warn!(
            "[{}] {closed}{why}; retrying in {:.1} s",
            self.cfg.name,
            delay.as_secs_f32()
        );
        self.stats.failures += 1;
        self.stats.last_close = why.to_string();
        self.decoder.reset();
        self.outbox.clear();
        // Unsent acks die with the connection: the broker redelivers those
        // messages (they may then be stored twice; never lost). The QoS 2
        // ids of a persistent session live on with it (MQTT 4.3.3), so a
        // QoS 2 redelivery is not stored twice.
        self.acks.reset(!self.cfg.clean_session);
        self.ping_outstanding = false;
        self.state = State::Idle {
            retry_at: now + delay,
        };
        events.push(Event::CloseTransport);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::framing::encode_incoming;
    use mqttbytes::v4::{self, Packet};

    fn cfg(qos: u8) -> SessionConfig {
        SessionConfig {
            name: "test".into(),
            client_id: "attic-test".into(),
            user: Some("u".into()),
            password: Some("p".into()),
            keep_alive: Duration::from_secs(10),
            clean_session: true,
            filters: vec!["a/#".into(), "b".into()],
            qos,
            max_payload: 1000,
            mqtt5: None,
        }
    }

    fn wire(p: Incoming) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_incoming(&p, &mut out).unwrap();
        out.to_vec()
    }

    fn sent(s: &mut Session) -> Vec<Packet> {
        let mut buf = s.outbox().split();
        let mut v = Vec::new();
        while !buf.is_empty() {
            v.push(v4::read(&mut buf, 1 << 20).unwrap());
        }
        v
    }

    fn publish(topic: &str, payload: &'static [u8], qos: u8, pkid: u16) -> Vec<u8> {
        wire(Incoming::Publish {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            qos,
            retain: false,
            dup: false,
            pkid,
        })
    }

    /// A session brought up to the point where messages flow.
    fn connected(qos: u8) -> (Session, Instant, Vec<Event>) {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(qos), 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        assert_eq!(ev, vec![Event::OpenTransport]);
        s.on_transport_up(t0, &mut ev);
        let p = sent(&mut s);
        assert!(matches!(p[..], [Packet::Connect(_)]));
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: false,
                code: 0,
            }),
            t0,
            &mut ev,
        );
        let p = sent(&mut s);
        let Packet::Subscribe(sub) = &p[0] else {
            panic!("expected SUBSCRIBE, got {p:?}")
        };
        assert_eq!(sub.filters.len(), 2);
        s.on_bytes(
            &wire(Incoming::SubAck {
                pkid: sub.pkid,
                granted: vec![Some(qos), Some(qos)],
            }),
            t0,
            &mut ev,
        );
        assert_eq!(ev.last(), Some(&Event::Connected));
        ev.clear();
        (s, t0, ev)
    }

    /// Closes the connection at `now` (by the broker, or by Attic with
    /// `abort`), then reconnects with a CONNACK that finds the session.
    fn close_and_reconnect(s: &mut Session, now: Instant, by_broker: bool) -> Instant {
        let mut ev = Vec::new();
        if by_broker {
            s.on_transport_down(now, "the broker closed the connection", &mut ev);
        } else {
            s.abort(now, "storage rolled back", &mut ev);
        }
        let at = s.next_deadline().unwrap();
        s.on_timer(at, &mut ev);
        s.on_transport_up(at, &mut ev);
        sent(s);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: true,
                code: 0,
            }),
            at,
            &mut ev,
        );
        assert_eq!(ev.last(), Some(&Event::Connected));
        at
    }

    #[test]
    fn a_broker_that_keeps_closing_right_after_connack_is_reported_once_as_a_probable_takeover() {
        let (mut s, t0, _) = connected(0);
        let mut now = t0;
        for _ in 0..2 {
            now = close_and_reconnect(&mut s, now + Duration::from_millis(100), true);
        }
        assert_eq!(s.stats().suspected_takeovers, 0);
        now = close_and_reconnect(&mut s, now + Duration::from_millis(100), true);
        assert_eq!(s.stats().suspected_takeovers, 1);
        now = close_and_reconnect(&mut s, now + Duration::from_millis(100), true);
        assert_eq!(s.stats().suspected_takeovers, 1, "warned once per run");
        // A connection that lasts ends the run; a new run warns again.
        now = close_and_reconnect(&mut s, now + Duration::from_secs(60), true);
        for _ in 0..3 {
            now = close_and_reconnect(&mut s, now + Duration::from_millis(100), true);
        }
        assert_eq!(s.stats().suspected_takeovers, 2);
    }

    #[test]
    fn connections_attic_closes_itself_never_look_like_a_takeover() {
        let (mut s, t0, _) = connected(0);
        let mut now = t0;
        for _ in 0..5 {
            now = close_and_reconnect(&mut s, now + Duration::from_millis(100), false);
        }
        assert_eq!(s.stats().suspected_takeovers, 0);
    }

    #[test]
    fn connect_carries_client_id_credentials_keep_alive_and_clean_session() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        let Packet::Connect(c) = &sent(&mut s)[0] else {
            panic!()
        };
        assert_eq!(c.client_id, "attic-test");
        assert_eq!(c.keep_alive, 10);
        assert!(c.clean_session);
        assert_eq!(c.login.as_ref().unwrap().username, "u");
    }

    #[test]
    fn messages_at_qos_0_are_delivered_without_acks() {
        let (mut s, t0, mut ev) = connected(0);
        s.on_bytes(&publish("a/x", b"1", 0, 0), t0, &mut ev);
        assert!(
            matches!(&ev[..], [Event::Message(d)] if d.topic == "a/x" && &d.payload[..] == b"1")
        );
        s.release_acks(t0);
        assert!(sent(&mut s).is_empty());
    }

    #[test]
    fn qos_1_acks_wait_for_the_commit_and_keep_arrival_order() {
        let (mut s, t0, mut ev) = connected(1);
        let mut bytes = publish("a/x", b"1", 1, 5);
        bytes.extend(publish("a/x", b"2", 1, 3));
        s.on_bytes(&bytes, t0, &mut ev);
        assert_eq!(ev.len(), 2);
        assert!(sent(&mut s).is_empty(), "no PUBACK before the commit");
        assert_eq!(s.pending_acks(), 2);
        s.release_acks(t0);
        let acks: Vec<_> = sent(&mut s)
            .into_iter()
            .map(|p| match p {
                Packet::PubAck(a) => a.pkid,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(acks, vec![5, 3]);
    }

    #[test]
    fn qos_2_is_stored_once_per_packet_id_until_pubrel() {
        let (mut s, t0, mut ev) = connected(2);
        s.on_bytes(&publish("a/x", b"1", 2, 9), t0, &mut ev);
        // a redelivery before our PUBREC went out is not stored again
        s.on_bytes(&publish("a/x", b"1", 2, 9), t0, &mut ev);
        assert_eq!(ev.len(), 1);
        s.release_acks(t0);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(r)] if r.pkid == 9));
        // a redelivery after PUBREC gets PUBREC again, not a second row
        s.on_bytes(&publish("a/x", b"1", 2, 9), t0, &mut ev);
        assert_eq!(ev.len(), 1);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(r)] if r.pkid == 9));
        s.on_bytes(&wire(Incoming::PubRel(9)), t0, &mut ev);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubComp(c)] if c.pkid == 9));
        // after PUBCOMP the id is free: a new message with it is stored
        s.on_bytes(&publish("a/x", b"2", 2, 9), t0, &mut ev);
        assert_eq!(ev.len(), 2);
    }

    /// A persistent QoS 2 session (clean-session false) with messages flowing.
    fn connected_persistent_qos2() -> (Session, Instant, Vec<Event>) {
        let t0 = Instant::now();
        let mut c = cfg(2);
        c.clean_session = false;
        let mut s = Session::new(c, 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        sent(&mut s);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: true,
                code: 0,
            }),
            t0,
            &mut ev,
        );
        assert_eq!(ev.last(), Some(&Event::Connected));
        ev.clear();
        (s, t0, ev)
    }

    fn messages(ev: &[Event]) -> usize {
        ev.iter().filter(|e| matches!(e, Event::Message(_))).count()
    }

    #[test]
    fn a_qos_2_id_answered_with_pubrec_is_not_stored_again_after_a_reconnect() {
        let (mut s, t0, mut ev) = connected_persistent_qos2();
        s.on_bytes(&publish("a/x", b"1", 2, 9), t0, &mut ev);
        s.release_acks(t0);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(r)] if r.pkid == 9));
        assert_eq!(s.qos2_ids_to_save(), Some(vec![9]));
        let at = close_and_reconnect(&mut s, t0 + Duration::from_secs(1), true);
        ev.clear();
        s.on_bytes(&publish("a/x", b"1", 2, 9), at, &mut ev);
        assert_eq!(messages(&ev), 0, "{ev:?}");
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(r)] if r.pkid == 9));
        s.on_bytes(&wire(Incoming::PubRel(9)), at, &mut ev);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubComp(c)] if c.pkid == 9));
        assert_eq!(s.qos2_ids_to_save(), Some(vec![]));
        s.on_bytes(&publish("a/x", b"2", 2, 9), at, &mut ev);
        assert_eq!(messages(&ev), 1, "a new message with the freed id");
    }

    #[test]
    fn a_qos_2_message_delivered_before_a_cut_gets_its_pubrec_after_the_commit_and_no_second_row() {
        let (mut s, t0, mut ev) = connected_persistent_qos2();
        s.on_bytes(&publish("a/x", b"1", 2, 4), t0, &mut ev);
        let at = close_and_reconnect(&mut s, t0 + Duration::from_secs(1), true);
        ev.clear();
        s.on_bytes(&publish("a/x", b"1", 2, 4), at, &mut ev);
        assert_eq!(messages(&ev), 0);
        assert!(sent(&mut s).is_empty(), "PUBREC only after the commit");
        s.release_acks(at);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRec(r)] if r.pkid == 4));
    }

    #[test]
    fn a_rolled_back_qos_2_message_is_stored_when_the_broker_resends_it() {
        let (mut s, t0, mut ev) = connected_persistent_qos2();
        s.on_bytes(&publish("a/x", b"1", 2, 4), t0, &mut ev);
        let at = close_and_reconnect(&mut s, t0 + Duration::from_secs(1), false);
        ev.clear();
        s.on_bytes(&publish("a/x", b"1", 2, 4), at, &mut ev);
        assert_eq!(messages(&ev), 1);
    }

    #[test]
    fn ids_restored_from_an_earlier_run_hold_until_the_broker_reports_no_session() {
        for present in [true, false] {
            let t0 = Instant::now();
            let mut c = cfg(2);
            c.clean_session = false;
            let mut s = Session::new(c, 1, t0);
            assert!(s.keeps_qos2_ids());
            s.restore_qos2_ids(&[5]);
            let mut ev = Vec::new();
            s.on_timer(t0, &mut ev);
            s.on_transport_up(t0, &mut ev);
            sent(&mut s);
            s.on_bytes(
                &wire(Incoming::ConnAck {
                    session_present: present,
                    code: 0,
                }),
                t0,
                &mut ev,
            );
            if !present {
                s.on_bytes(
                    &wire(Incoming::SubAck {
                        pkid: 1,
                        granted: vec![Some(2), Some(2)],
                    }),
                    t0,
                    &mut ev,
                );
                assert_eq!(s.qos2_ids_to_save(), Some(vec![]), "the file goes");
            }
            sent(&mut s);
            ev.clear();
            s.on_bytes(&publish("a/x", b"1", 2, 5), t0, &mut ev);
            assert_eq!(messages(&ev), usize::from(!present), "present: {present}");
        }
    }

    #[test]
    fn a_clean_session_keeps_no_qos_2_ids_across_connections() {
        let (mut s, t0, mut ev) = connected(2);
        assert!(!s.keeps_qos2_ids());
        s.on_bytes(&publish("a/x", b"1", 2, 9), t0, &mut ev);
        s.release_acks(t0);
        assert_eq!(s.qos2_ids_to_save(), None);
        s.on_transport_down(t0, "cut", &mut ev);
        let at = s.next_deadline().unwrap();
        s.on_timer(at, &mut ev);
        s.on_transport_up(at, &mut ev);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: false,
                code: 0,
            }),
            at,
            &mut ev,
        );
        ev.clear();
        s.on_bytes(&publish("a/x", b"1", 2, 9), at, &mut ev);
        assert_eq!(messages(&ev), 1, "a new session: the id is a new message");
    }

    #[test]
    fn a_persistent_session_that_is_present_is_not_resubscribed() {
        let t0 = Instant::now();
        let mut c = cfg(1);
        c.clean_session = false;
        let mut s = Session::new(c, 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        sent(&mut s);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: true,
                code: 0,
            }),
            t0,
            &mut ev,
        );
        assert!(sent(&mut s).is_empty());
        assert_eq!(ev.last(), Some(&Event::Connected));
    }

    #[test]
    fn a_refused_connack_closes_and_backs_off() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: false,
                code: 5,
            }),
            t0,
            &mut ev,
        );
        assert_eq!(ev.last(), Some(&Event::CloseTransport));
        let retry = s.next_deadline().unwrap();
        assert!(retry > t0 && retry <= t0 + Duration::from_millis(500));
        ev.clear();
        s.on_timer(retry - Duration::from_millis(1), &mut ev);
        assert!(ev.is_empty());
        s.on_timer(retry, &mut ev);
        assert_eq!(ev, vec![Event::OpenTransport]);
    }

    #[test]
    fn a_non_mqtt_answer_before_connack_closes_the_connection() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        s.on_bytes(b"HTTP/1.1 400 Bad Request\r\n", t0, &mut ev);
        assert_eq!(ev.last(), Some(&Event::CloseTransport));
        assert_eq!(s.stats().failures, 1);
    }

    #[test]
    fn a_connack_split_over_two_reads_is_not_taken_for_a_non_mqtt_answer() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 1, t0);
        let mut ev = Vec::new();
        s.on_timer(t0, &mut ev);
        s.on_transport_up(t0, &mut ev);
        let ack = wire(Incoming::ConnAck {
            session_present: false,
            code: 0,
        });
        s.on_bytes(&ack[..1], t0, &mut ev);
        s.on_bytes(&ack[1..], t0, &mut ev);
        assert!(!ev.contains(&Event::CloseTransport), "{ev:?}");
        assert!(s.is_connected());
    }

    #[test]
    fn failed_tcp_connects_back_off_to_five_seconds_at_most() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 3, t0);
        s.backoff.connected();
        let mut ev = Vec::new();
        let mut now = t0;
        for _ in 0..20 {
            s.on_timer(now, &mut ev);
            s.on_transport_down(now, "network unreachable", &mut ev);
            let next = s.next_deadline().unwrap();
            assert!(next - now <= Duration::from_secs(5), "{:?}", next - now);
            now = next;
        }
    }

    #[test]
    fn repeated_failures_back_off_exponentially() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(0), 3, t0);
        let mut ev = Vec::new();
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            s.on_timer(now, &mut ev);
            s.on_transport_down(now, "refused", &mut ev);
            let next = s.next_deadline().unwrap();
            delays.push(next - now);
            now = next;
        }
        assert!(delays[7] > delays[0] * 8, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)));
    }

    #[test]
    fn a_quiet_connection_is_pinged_after_keep_alive() {
        let (mut s, t0, mut ev) = connected(0);
        let t = t0 + Duration::from_secs(10);
        assert!(s.next_deadline().unwrap() <= t);
        s.on_timer(t, &mut ev);
        assert!(matches!(&sent(&mut s)[..], [Packet::PingReq]));
        s.on_bytes(
            &wire(Incoming::PingResp),
            t + Duration::from_millis(5),
            &mut ev,
        );
        assert!(ev.is_empty());
        assert!(s.is_connected());
    }

    #[test]
    fn a_broker_silent_for_one_and_a_half_keep_alives_is_dropped() {
        let (mut s, t0, mut ev) = connected(0);
        s.on_timer(t0 + Duration::from_secs(10), &mut ev);
        sent(&mut s);
        s.on_timer(t0 + Duration::from_millis(14_900), &mut ev);
        assert!(ev.is_empty());
        s.on_timer(t0 + Duration::from_secs(15), &mut ev);
        assert_eq!(ev, vec![Event::CloseTransport]);
        assert!(!s.is_connected());
    }

    #[test]
    fn bytes_the_owner_left_unread_keep_a_broker_from_counting_as_silent() {
        let (mut s, t0, mut ev) = connected(0);
        s.on_timer(t0 + Duration::from_secs(10), &mut ev);
        sent(&mut s);
        // Storage fails: the owner stops reading, but bytes keep arriving
        // (the stream core hands over an empty read).
        s.on_bytes(&[], t0 + Duration::from_secs(14), &mut ev);
        s.on_timer(t0 + Duration::from_secs(15), &mut ev);
        assert!(ev.is_empty() && s.is_connected());
        // We keep pinging meanwhile: the broker, too, counts silence.
        s.on_timer(t0 + Duration::from_secs(24), &mut ev);
        assert!(matches!(&sent(&mut s)[..], [Packet::PingReq]));
        // Once nothing more arrives, the usual rule applies.
        s.on_timer(t0 + Duration::from_secs(29), &mut ev);
        assert_eq!(ev, vec![Event::CloseTransport]);
    }

    #[test]
    fn steady_inbound_traffic_keeps_the_connection_but_we_still_ping() {
        let (mut s, t0, mut ev) = connected(0);
        for i in 1..=40u64 {
            let t = t0 + Duration::from_millis(500 * i);
            s.on_bytes(&publish("a/x", b"v", 0, 0), t, &mut ev);
            s.on_timer(t, &mut ev);
            if !s.ping_outstanding {
                continue;
            }
            s.on_bytes(&wire(Incoming::PingResp), t, &mut ev);
        }
        assert!(s.is_connected());
        assert!(!ev.contains(&Event::CloseTransport));
    }

    #[test]
    fn acks_for_unknown_ids_and_server_packets_close_the_connection() {
        for bad in [
            wire(Incoming::PubAck(77)),
            wire(Incoming::PubComp(1)),
            vec![0x10, 0x00],
            vec![0xff, 0x00],
            wire(Incoming::ConnAck {
                session_present: false,
                code: 0,
            }),
        ] {
            let (mut s, t0, mut ev) = connected(1);
            s.on_bytes(&bad, t0, &mut ev);
            assert_eq!(ev.last(), Some(&Event::CloseTransport), "{bad:?}");
            assert!(!s.is_connected());
        }
    }

    #[test]
    fn unreleased_acks_are_dropped_when_the_connection_fails() {
        let (mut s, t0, mut ev) = connected(1);
        s.on_bytes(&publish("a/x", b"1", 1, 5), t0, &mut ev);
        s.on_transport_down(t0, "reset", &mut ev);
        assert_eq!(s.pending_acks(), 0);
        s.release_acks(t0);
        assert!(s.outbox().is_empty());
    }

    #[test]
    fn an_oversize_qos_1_message_is_acknowledged_in_order_and_not_delivered() {
        let (mut s, t0, mut ev) = connected(1);
        let big: &'static [u8] = Box::leak(vec![0u8; 5000].into_boxed_slice());
        let mut bytes = publish("a/big", big, 1, 4);
        bytes.extend(publish("a/x", b"ok", 1, 6));
        s.on_bytes(&bytes, t0, &mut ev);
        assert!(matches!(
            &ev[0],
            Event::Oversize {
                payload_len: 5000,
                ..
            }
        ));
        assert!(matches!(&ev[1], Event::Message(_)));
        s.release_acks(t0);
        let ids: Vec<_> = sent(&mut s)
            .into_iter()
            .map(|p| match p {
                Packet::PubAck(a) => a.pkid,
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(ids, vec![4, 6]);
        assert!(s.is_connected());
    }

    #[test]
    fn shutdown_sends_disconnect() {
        let (mut s, _t0, _ev) = connected(0);
        s.shutdown();
        assert!(matches!(&sent(&mut s)[..], [Packet::Disconnect]));
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_connection_that_lasted_resets_the_backoff() {
        let (mut s, t0, mut ev) = connected(0);
        for _ in 0..5 {
            s.backoff.next_delay(Failure::Broker);
        }
        let later = t0 + Duration::from_secs(31);
        s.on_bytes(&wire(Incoming::PingResp), later, &mut ev);
        s.on_transport_down(later, "reset", &mut ev);
        assert!(s.next_deadline().unwrap() <= later + Duration::from_millis(500));
    }

    #[test]
    fn abort_closes_a_healthy_connection_drops_unsent_acks_and_reconnects_later() {
        let (mut s, t0, _) = connected(1);
        let mut ev = Vec::new();
        s.on_bytes(&publish("a", b"1", 1, 7), t0, &mut ev);
        assert_eq!(s.pending_acks(), 1);
        ev.clear();
        s.abort(t0, "storage rolled back 1 row(s)", &mut ev);
        assert_eq!(ev, vec![Event::CloseTransport]);
        assert_eq!(s.pending_acks(), 0);
        assert!(!s.is_connected());
        assert!(s.next_deadline().is_some_and(|t| t > t0));
        ev.clear();
        s.abort(t0, "again", &mut ev);
        assert!(ev.is_empty(), "nothing to abort: {ev:?}");
    }

    #[test]
    fn our_qos_1_and_2_publishes_complete_with_their_acks_within_the_window() {
        let (mut s, t0, mut ev) = connected(0);
        s.outflight = Outflight::new(2);
        assert_eq!(
            s.publish_message("r/1", Bytes::from_static(b"a"), 1, false, t0),
            Ok(true)
        );
        assert_eq!(
            s.publish_message("r/2", Bytes::from_static(b"b"), 2, true, t0),
            Ok(true)
        );
        assert_eq!(
            s.publish_message("r/3", Bytes::new(), 1, false, t0),
            Ok(false),
            "the window is full"
        );
        assert_eq!(
            s.publish_message("r/0", Bytes::new(), 0, false, t0),
            Ok(true),
            "QoS 0 needs no room"
        );
        let p = sent(&mut s);
        assert!(
            matches!(&p[..], [Packet::Publish(a), Packet::Publish(b), Packet::Publish(c)]
            if a.pkid == 1 && b.pkid == 2 && b.retain && c.pkid == 0)
        );
        s.on_bytes(&wire(Incoming::PubAck(1)), t0, &mut ev);
        s.on_bytes(&wire(Incoming::PubRec(2)), t0, &mut ev);
        assert!(matches!(&sent(&mut s)[..], [Packet::PubRel(r)] if r.pkid == 2));
        assert_eq!(s.in_flight(), 1);
        s.on_bytes(&wire(Incoming::PubComp(2)), t0, &mut ev);
        assert_eq!(s.in_flight(), 0);
        assert!(s.is_connected() && ev.is_empty());
    }

    #[test]
    fn publishes_in_flight_are_sent_again_after_a_reconnect() {
        let (mut s, t0, mut ev) = connected(0);
        assert_eq!(
            s.publish_message("r/1", Bytes::from_static(b"a"), 1, false, t0),
            Ok(true)
        );
        sent(&mut s);
        s.on_transport_down(t0, "cut", &mut ev);
        assert_eq!(
            s.publish_message("r/2", Bytes::new(), 1, false, t0),
            Ok(false),
            "not connected"
        );
        let later = t0 + Duration::from_secs(60);
        s.on_timer(later, &mut ev);
        s.on_transport_up(later, &mut ev);
        sent(&mut s);
        s.on_bytes(
            &wire(Incoming::ConnAck {
                session_present: false,
                code: 0,
            }),
            later,
            &mut ev,
        );
        let p = sent(&mut s);
        assert!(
            p.iter().any(
                |p| matches!(p, Packet::Publish(x) if x.pkid == 1 && x.dup && x.topic == "r/1")
            ),
            "{p:?}"
        );
        s.on_bytes(&wire(Incoming::PubAck(1)), later, &mut ev);
        assert_eq!(s.in_flight(), 0);
    }
}
