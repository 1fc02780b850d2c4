//! The session speaking MQTT 5 (`mqtt-version: 5`): what differs from
//! 3.1.1, on top of the same state machine.
//!
//! - CONNECT carries Session Expiry Interval (when `clean-session` is
//!   false), Receive Maximum and, only when `topic-alias-maximum` is set,
//!   Topic Alias Maximum (by default the broker sends every topic in full:
//!   some brokers misuse aliases they were never offered);
//! - CONNACK, SUBACK and DISCONNECT reason codes are logged in words; a
//!   DISCONNECT "session taken over" is a warning naming our client id;
//! - the broker's Assigned Client Identifier, Server Keep Alive and Maximum
//!   Packet Size are honoured (for this connection; a reconnect starts from
//!   the configured values again, except the assigned id, which is kept so
//!   that a persistent session is found);
//! - topic aliases from the broker are resolved (one table per connection);
//!   an alias we did not offer, or one used before this connection defined
//!   it, closes the connection: a row never gets a guessed topic;
//! - PUBLISH properties travel with the message as the stored JSON.
//!
//! Everything else (acks after commit, QoS 2 ids, keep-alive, backoff) is
//! the 3.1.1 code: v5 packets are mapped onto [`Incoming`] and handed to it.
//! Like the rest of the session it owns no socket and reads no clock.

use super::{Delivery, Event, SUBSCRIBE_PKID, Session, SessionConfig, SessionError, State};
use crate::mqtt::framing::v5::{ConnAck5, Connect5Params, Decoder5, Disconnect5, Packet5, reason};
use crate::mqtt::framing::{self, ConnectParams, EncodeError, Incoming};
use crate::mqtt::topic_alias::AliasTable;
use bytes::BytesMut;
use std::time::{Duration, Instant};

/// Receive Maximum we announce: QoS 1/2 messages the broker may send before
/// our acks, which wait for the commit. Large enough that the window never
/// throttles a commit per read burst (mosquitto's own default for 3.1.1
/// clients is 20), small enough to bound what is redelivered after a crash.
pub const RECEIVE_MAXIMUM: u16 = 1000;

/// Default `topic-alias-maximum`: none announced, so the broker may not
/// use aliases at all (rumqttd 0.20 sends every message after the first as
/// alias 1 with an empty topic once it is offered any).
pub const DEFAULT_TOPIC_ALIAS_MAXIMUM: u16 = 0;

/// Default `session-expiry-seconds`: the session never expires, as a 3.1.1
/// persistent session (the broker's own limits still apply).
pub const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

/// The MQTT 5 settings of a connection (`mqtt-version: 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mqtt5Options {
    /// `session-expiry-seconds`: sent when `clean-session` is false.
    pub session_expiry_s: u32,
    /// `topic-alias-maximum`: the Topic Alias Maximum announced in CONNECT
    /// (0 = none: the broker sends every topic in full). Bounds the
    /// per-connection alias table.
    pub topic_alias_maximum: u16,
}

impl Default for Mqtt5Options {
    fn default() -> Self {
        Mqtt5Options {
            session_expiry_s: SESSION_NEVER_EXPIRES,
            topic_alias_maximum: DEFAULT_TOPIC_ALIAS_MAXIMUM,
        }
    }
}

/// The v5 state of a session, per connection unless said otherwise.
#[derive(Debug)]
pub(super) struct V5 {
    /// From the configuration.
    options: Mqtt5Options,
    /// Frames v5 packets (the 3.1.1 decoder stays unused).
    decoder: Decoder5,
    /// The broker's topic aliases.
    aliases: AliasTable,
    /// `keep-alive-seconds`; the session's keep-alive may be the broker's
    /// Server Keep Alive for the current connection.
    configured_keep_alive: Duration,
    /// The broker's Maximum Packet Size, if it set one.
    max_packet_size: Option<u32>,
    /// Reason codes of the last SUBACK and its reason string, for the
    /// refusal log lines.
    suback: (Vec<u8>, Option<String>),
}

impl V5 {
    pub(super) fn new(options: Mqtt5Options, cfg: &SessionConfig) -> Self {
        V5 {
            options,
            decoder: Decoder5::new(cfg.max_payload),
            aliases: AliasTable::new(options.topic_alias_maximum),
            configured_keep_alive: cfg.keep_alive,
            max_packet_size: None,
            suback: (Vec::new(), None),
        }
    }

    /// Bytes received on this connection and not yet framed.
    pub(super) fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// A new connection: forget everything the last one negotiated.
    pub(super) fn on_transport_up(&mut self, cfg: &mut SessionConfig) {
        cfg.keep_alive = self.configured_keep_alive;
        self.decoder.reset();
        self.aliases.reset();
        self.max_packet_size = None;
        self.suback = (Vec::new(), None);
    }

    /// Appends our CONNECT.
    pub(super) fn encode_connect(
        &self,
        base: &ConnectParams<'_>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        framing::v5::encode_connect5(
            &Connect5Params {
                base: base.clone(),
                session_expiry_s: (!base.clean_session).then_some(self.options.session_expiry_s),
                receive_maximum: RECEIVE_MAXIMUM,
                topic_alias_maximum: self.options.topic_alias_maximum,
            },
            out,
        )
    }

    /// Refuses (and removes) what was just appended from `start` if it is
    /// larger than the broker's Maximum Packet Size.
    fn check_size(&self, out: &mut BytesMut, start: usize, what: &str) -> Result<(), EncodeError> {
        let n = out.len() - start;
        match self.max_packet_size {
            Some(max) if n > usize::try_from(max).unwrap_or(usize::MAX) => {
                out.truncate(start);
                Err(EncodeError(format!(
                    "{what} of {n} bytes exceeds the broker's maximum packet size of {max} bytes"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// `" (broker says ..); it names another broker: ..."`, or nothing.
fn broker_says(reason_string: Option<&str>, server_reference: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(r) = reason_string {
        s.push_str(&format!(" (broker says {r:?})"));
    }
    if let Some(r) = server_reference {
        s.push_str(&format!("; it names another broker to use: {r}"));
    }
    s
}

fn disconnect_why(d: &Disconnect5, client_id: &str) -> String {
    let extra = broker_says(d.reason_string.as_deref(), d.server_reference.as_deref());
    let words = reason::words(reason::Packet::Disconnect, d.reason);
    if d.reason == 0x8E {
        format!(
            "the broker disconnected us, {words}: another client connected with our client id {client_id:?}{extra}"
        )
    } else {
        format!("the broker disconnected us: {words}{extra}")
    }
}

impl Session {
    /// Appends our CONNECT in the connection's protocol version; on an MQTT
    /// 5 connection, first forgets what the last connection negotiated.
    pub(super) fn encode_connect(&mut self) -> Result<(), EncodeError> {
        if let Some(v5) = self.v5.as_deref_mut() {
            v5.on_transport_up(&mut self.cfg);
        }
        let params = ConnectParams {
            client_id: &self.cfg.client_id,
            keep_alive_s: u16::try_from(self.cfg.keep_alive.as_secs()).unwrap_or(u16::MAX),
            clean_session: self.cfg.clean_session,
            user: self.cfg.user.as_deref(),
            password: self.cfg.password.as_deref(),
        };
        match self.v5.as_deref() {
            Some(v5) => v5.encode_connect(&params, &mut self.outbox),
            None => framing::encode_connect(&params, &mut self.outbox),
        }
    }

    /// Appends our SUBSCRIBE in the connection's protocol version.
    pub(super) fn encode_subscribe(&mut self) -> Result<(), EncodeError> {
        let (filters, qos, out) = (&self.cfg.filters, self.cfg.qos, &mut self.outbox);
        let Some(v5) = self.v5.as_deref() else {
            return framing::encode_subscribe(SUBSCRIBE_PKID, filters, qos, out);
        };
        let start = out.len();
        framing::v5::encode_subscribe5(SUBSCRIBE_PKID, filters, qos, out)?;
        v5.check_size(out, start, "SUBSCRIBE")
    }

    /// Appends a QoS 0 PUBLISH (the self-report) in the connection's
    /// protocol version.
    pub(super) fn encode_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), EncodeError> {
        let out = &mut self.outbox;
        let Some(v5) = self.v5.as_deref() else {
            return framing::encode_publish(topic, payload, 0, false, 0, out);
        };
        let start = out.len();
        framing::v5::encode_publish5(topic, payload, 0, false, 0, out)?;
        v5.check_size(out, start, "PUBLISH")
    }

    /// For the log line of a refused subscription: `": <reason in words>"`
    /// on an MQTT 5 connection, nothing on 3.1.1.
    pub(super) fn refusal_reason(&self, filter_index: usize) -> String {
        let Some(v5) = self.v5.as_deref() else {
            return String::new();
        };
        let (codes, why) = &v5.suback;
        let mut s = match codes.get(filter_index) {
            Some(code) => format!(": {}", reason::words(reason::Packet::SubAck, *code)),
            None => String::new(),
        };
        if let Some(why) = why {
            s.push_str(&format!(" (broker says {why:?})"));
        }
        s
    }

    fn v5_mut(&mut self) -> Result<&mut V5, SessionError> {
        self.v5.as_deref_mut().ok_or(SessionError::NotMqtt5)
    }

    /// Bytes from the broker on an MQTT 5 connection (see `on_bytes`).
    pub(super) fn on_bytes_v5(&mut self, data: &[u8], now: Instant, events: &mut Vec<Event>) {
        let Some(v5) = self.v5.as_deref_mut() else {
            return;
        };
        v5.decoder.push(data);
        loop {
            let Some(v5) = self.v5.as_deref_mut() else {
                return;
            };
            match v5.decoder.next_packet() {
                Ok(Some(packet)) => {
                    if let Err(why) = self.on_packet_v5(packet, now, events) {
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

    fn on_packet_v5(
        &mut self,
        p: Packet5,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        let up = matches!(self.state, State::Up { .. });
        match p {
            Packet5::ConnAck(c) => self.on_connack_v5(c, now, events),
            Packet5::Publish(p) => {
                if !up {
                    return Err(SessionError::BeforeConnAck("PUBLISH"));
                }
                let topic = self.v5_mut()?.aliases.resolve(p.topic, p.topic_alias)?;
                if self.accept_publish(p.qos, p.pkid) {
                    events.push(Event::Message(Delivery {
                        topic,
                        payload: p.payload,
                        qos: p.qos,
                        retain: p.retain,
                        properties: p.properties.to_json(),
                    }));
                }
                Ok(())
            }
            Packet5::Oversize {
                topic,
                topic_alias,
                qos,
                pkid,
                payload_len,
            } => {
                if !up {
                    return Err(SessionError::BeforeConnAck("PUBLISH"));
                }
                let topic = self.v5_mut()?.aliases.resolve(topic, topic_alias)?;
                self.on_packet(
                    Incoming::Oversize {
                        topic,
                        qos,
                        pkid,
                        payload_len,
                    },
                    now,
                    events,
                )
            }
            Packet5::SubAck {
                pkid,
                reasons,
                reason_string,
            } => {
                let granted = reasons.iter().map(|r| (*r <= 2).then_some(*r)).collect();
                self.v5_mut()?.suback = (reasons, reason_string);
                self.on_packet(Incoming::SubAck { pkid, granted }, now, events)
            }
            Packet5::Disconnect(d) => {
                if d.reason == 0x8E {
                    self.stats.suspected_takeovers += 1;
                }
                Err(SessionError::Disconnected(disconnect_why(
                    &d,
                    &self.cfg.client_id,
                )))
            }
            Packet5::Common(incoming) => self.on_packet(incoming, now, events),
        }
    }

    fn on_connack_v5(
        &mut self,
        c: ConnAck5,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        if !matches!(self.state, State::AwaitConnAck { .. }) {
            return Err(SessionError::SecondConnAck);
        }
        if c.reason != 0 {
            let mut why = format!(
                "broker refused the connection: {}",
                reason::words(reason::Packet::ConnAck, c.reason)
            );
            if c.from_v311 {
                why.push_str(
                    " (it answered in MQTT 3.1.1: it does not speak MQTT 5; set `mqtt-version: 3.1.1`)",
                );
            }
            why.push_str(&broker_says(
                c.reason_string.as_deref(),
                c.server_reference.as_deref(),
            ));
            return Err(SessionError::Refused(why));
        }
        let name = self.cfg.name.clone();
        if let Some(id) = c.assigned_client_identifier {
            log::info!("[{name}] the broker assigned the client id {id:?}");
            self.cfg.client_id = id;
        }
        if let Some(k) = c.server_keep_alive.filter(|k| *k > 0) {
            let k = Duration::from_secs(u64::from(k));
            if k != self.cfg.keep_alive {
                log::info!(
                    "[{name}] the broker sets keep-alive to {} s (asked {} s)",
                    k.as_secs(),
                    self.cfg.keep_alive.as_secs()
                );
                self.cfg.keep_alive = k;
            }
        }
        let clean = self.cfg.clean_session;
        let shared = self.cfg.filters.iter().any(|f| f.starts_with("$share/"));
        let v5 = self.v5_mut()?;
        v5.max_packet_size = c.maximum_packet_size;
        let asked = v5.options.session_expiry_s;
        if let Some(kept) = c.session_expiry_interval.filter(|k| !clean && *k < asked) {
            log::warn!(
                "[{name}] the broker keeps our session only {kept} s after a disconnect (asked {asked} s)"
            );
        }
        if shared && c.shared_subscription_available == Some(0) {
            log::warn!("[{name}] the broker says it does not support shared subscriptions");
        }
        if let Some(max) = c.maximum_packet_size {
            log::debug!("[{name}] the broker accepts packets up to {max} bytes");
        }
        self.on_packet(
            Incoming::ConnAck {
                session_present: c.session_present,
                code: 0,
            },
            now,
            events,
        )
    }
}

#[cfg(test)]
mod tests;
