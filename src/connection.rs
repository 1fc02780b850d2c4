//! One broker connection: a sans-IO [`Session`] joined to its socket
//! ([`Link`]). Every publish-side connection wraps it: the report
//! publisher (publish at QoS 0), `attic replay`, and any later one. (A
//! stream's session lives in its `stream::core`, whose actions the stream
//! carries out against its own `Link`.)
//!
//! Owns: the plumbing between the two halves. The session's commands
//! (`OpenTransport`, `CloseTransport`) are carried out here, at once, and a
//! transport failure (connect, read, write) goes back to the session as
//! `on_transport_down`. Everything the session emits, commands included
//! (already carried out), is queued for the owner, which takes it with
//! [`Connection::take_events`] and reacts to the notices (`Connected`,
//! `Message`, `Oversize`). Must not: interpret messages, touch storage, or
//! read the clock (`now` comes from the loop).
//!
//! ```text
//!   loop --ready/timer/now--> Connection --bytes--> Session
//!                              |  ^   ^                |
//!                    Link <----+  |   +-- commands ----+
//!                     (socket)    +------ notices --> owner (Publisher, replay)
//! ```

use crate::config::BrokerConfig;
use crate::mqtt::framing::EncodeError;
use crate::mqtt::session::{Event, Session};
use crate::net::{Link, LinkError, ReadOutcome};
use crate::resolve::{Answer, ResolverHandle};
use mio::{Registry, Token};
use std::time::Instant;

/// What one [`Connection::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `n` bytes were handed to the session (its events are queued).
    Data(usize),
    /// Nothing to read now.
    WouldBlock,
    /// The broker closed the connection or the read failed; the session
    /// has been told.
    Gone,
}

/// A session and its socket. See the module docs.
#[derive(Debug)]
pub struct Connection {
    /// The MQTT protocol state.
    session: Session,
    /// The TCP connection and its poll registration.
    link: Link,
    /// Events the session emitted, commands already carried out, for the
    /// owner to take (reused buffer).
    events: Vec<Event>,
    /// Scratch the session writes into before the commands are carried out.
    fresh: Vec<Event>,
}

impl Connection {
    /// Joins a session to the link it will talk over. Nothing is opened
    /// until the session asks for it (on its first timer).
    pub fn new(session: Session, link: Link) -> Self {
        Connection {
            session,
            link,
            events: Vec::with_capacity(64),
            fresh: Vec::with_capacity(64),
        }
    }

    /// Joins a session to a link to `broker`: its address, and TLS if its
    /// `tls:` says so.
    pub fn to_broker(session: Session, broker: &BrokerConfig, token: Token) -> Self {
        let link = Link::new(&broker.host, broker.port, token).with_tls(broker.tls.clone());
        Connection::new(session, link)
    }

    /// The protocol state (read-only: statistics, pending acks, deadlines).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Queues one QoS 0 PUBLISH; false while not connected. Call
    /// [`Connection::flush`] afterwards.
    pub fn publish(&mut self, topic: &str, payload: &[u8], now: Instant) -> bool {
        self.session.publish(topic, payload, now)
    }

    /// Queues one PUBLISH at `qos` within the in-flight window: true if
    /// queued, false if not connected or the window is full, an error if
    /// it cannot be encoded. Call [`Connection::flush`] afterwards.
    pub fn publish_message(
        &mut self,
        topic: &str,
        payload: bytes::Bytes,
        qos: u8,
        retain: bool,
        now: Instant,
    ) -> Result<bool, EncodeError> {
        self.session
            .publish_message(topic, payload, qos, retain, now)
    }

    /// Queues the acks of everything received so far (a publish-only
    /// connection stores nothing, so it acknowledges at once). Call
    /// [`Connection::flush`] afterwards.
    pub fn release_acks(&mut self, now: Instant) {
        self.session.release_acks(now);
    }

    /// Stops the session for good: DISCONNECT queued if connected. Call
    /// [`Connection::flush`] afterwards.
    pub fn shutdown(&mut self) {
        self.session.shutdown();
    }

    /// Bytes queued in the outbox and not yet written.
    pub fn queued_bytes(&mut self) -> usize {
        self.session.outbox().len()
    }

    /// The socket exists (connecting or connected).
    pub fn is_open(&self) -> bool {
        self.link.is_open()
    }

    /// The broker accepted us (CONNACK) and the connection is up.
    pub fn is_connected(&self) -> bool {
        self.session.is_connected()
    }

    /// The session's next deadline (connect, keep-alive, silence).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.session.next_deadline()
    }

    /// Bytes queued for the broker and not yet written (in the outbox, or
    /// taken by TLS and not yet on the socket).
    pub fn has_output(&mut self) -> bool {
        !self.session.outbox().is_empty() || self.link.unsent()
    }

    /// Moves the queued events into `into` (which must be empty), leaving
    /// `into`'s old allocation behind for reuse.
    pub fn take_events(&mut self, into: &mut Vec<Event>) {
        std::mem::swap(&mut self.events, into);
    }

    /// The socket is ready: finishes a nonblocking connect. True if the
    /// socket is usable for reading and writing now.
    pub fn on_ready(&mut self, registry: &Registry, now: Instant) -> bool {
        match self.link.finish_connect(registry) {
            Ok(true) => {
                self.session.on_transport_up(now, &mut self.fresh);
                self.execute(registry, now);
                true
            }
            Ok(false) => !self.link.is_connecting(),
            Err(why) => {
                self.down(registry, now, &why);
                false
            }
        }
    }

    /// The lookup of the broker's host name finished (off the loop): the
    /// connect starts, or the attempt failed and the session backs off.
    pub fn on_resolved(&mut self, registry: &Registry, answer: Answer, now: Instant) {
        if let Err(why) = self.link.on_resolved(registry, answer) {
            self.down(registry, now, &why);
        }
    }

    /// Host names are resolved through `resolver`, off the loop.
    pub fn set_resolver(&mut self, resolver: ResolverHandle) {
        self.link.set_resolver(resolver);
    }

    /// One read from the socket into `buf`, handed to the session.
    pub fn read(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) -> Read {
        if !self.link.is_open() {
            return Read::Gone;
        }
        match self.link.read(buf) {
            Ok(ReadOutcome::Data(n)) => {
                self.session.on_bytes(&buf[..n], now, &mut self.fresh);
                self.execute(registry, now);
                Read::Data(n)
            }
            Ok(ReadOutcome::WouldBlock) => Read::WouldBlock,
            Ok(ReadOutcome::Closed) => {
                self.down(registry, now, &LinkError::Closed);
                Read::Gone
            }
            Err(e) => {
                self.down(registry, now, &LinkError::Read(e));
                Read::Gone
            }
        }
    }

    /// Session timers: connect, keep-alive, silence.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        self.session.on_timer(now, &mut self.fresh);
        self.execute(registry, now);
    }

    /// Writes the outbox (WRITABLE interest only while bytes remain); a
    /// write failure is a transport failure.
    pub fn flush(&mut self, registry: &Registry, now: Instant) {
        if let Err(why) = self.link.flush(registry, self.session.outbox()) {
            self.down(registry, now, &why);
        }
    }

    /// The transport failed: tell the session and carry out what follows.
    fn down(&mut self, registry: &Registry, now: Instant, why: &LinkError) {
        self.session
            .on_transport_down(now, &why.to_string(), &mut self.fresh);
        self.execute(registry, now);
    }

    /// Closes the socket (end of the stop sequence).
    pub fn close(&mut self, registry: &Registry) {
        self.link.close(registry);
    }

    /// Carries out the session's commands, in order, and queues every
    /// event for the owner. A failed open goes back to the session, whose
    /// answer is carried out in turn.
    fn execute(&mut self, registry: &Registry, now: Instant) {
        while !self.fresh.is_empty() {
            let mut batch = std::mem::take(&mut self.fresh);
            for ev in batch.drain(..) {
                match ev {
                    Event::OpenTransport => {
                        if let Err(why) = self.link.open(registry) {
                            self.session
                                .on_transport_down(now, &why.to_string(), &mut self.fresh);
                        }
                    }
                    Event::CloseTransport => self.link.close(registry),
                    _ => {}
                }
                self.events.push(ev);
            }
            if self.fresh.is_empty() {
                self.fresh = batch; // keep the allocation
            }
        }
    }
}
