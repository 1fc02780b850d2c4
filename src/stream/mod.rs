//! One stream, live: its sans-IO [`Core`] (MQTT session, filter chain, ack
//! gate, and the rules that tie them together) and the edge it runs
//! against: the socket ([`Link`]) and its poll registration, the SQLite
//! [`Writer`], the QoS 2 state file, the clocks. The loop in `app` owns the
//! streams and calls these handlers; each one reads the clocks once, hands
//! the input to the core and carries out the core's [`Action`]s.
//!
//! Must not: hold a rule of its own (when to read, commit, coalesce, pause
//! or acknowledge is the core's), or parse packets.
//!
//! ```text
//!   app --ready/timer/now--> Stream --input + Now--> Core
//!                              |  ^                    |
//!              Link, Writer <--+  +------ actions -----+
//! ```

mod core;

use self::core::{Action, Books, Core, Now, Storage};
use crate::clock;
use crate::config::StreamConfig;
pub use crate::counters::Counters;
use crate::filter::{self, Chain};
use crate::message::Message;
use crate::mqtt::session::Session;
use crate::net::{Link, LinkError, ReadOutcome};
use crate::qos2_state::Qos2State;
use crate::store::StoreError;
use crate::store::gate::Store;
use crate::store::writer::{BrokerSession, FileMeta, Writer};
use crate::summary::Tally;
use mio::{Registry, Token};
use std::time::Instant;

/// The name under which [`Stream::filter_drops`] reports the stream-level
/// `max-payload-bytes` (the wire-level limit enforced by the framing).
pub const WIRE_LIMIT_NAME: &str = "max-payload-bytes (wire)";

/// One stream of the configuration, live.
#[derive(Debug)]
pub struct Stream {
    /// The folder name, used in log lines.
    pub name: String,
    /// The rules: session, filters, gate, read state.
    core: Core,
    /// The TCP (or TLS) connection and its poll registration.
    link: Link,
    /// The SQLite files, timed for the self-report.
    store: WriterStore,
    /// Self-report counters.
    pub counters: Counters,
    /// Reception-time span committed and files written (`--summary`).
    pub tally: Tally,
    /// Where a persistent QoS 2 session keeps its ids awaiting PUBREL
    /// across restarts; `None` for every other session.
    qos2: Option<Qos2State>,
    /// A carried-out action asked for a read turn ([`Action::Resume`],
    /// [`Action::ReadOn`]); the handler that has the read buffer runs it.
    read_requested: bool,
}

impl Stream {
    /// Builds a stream; nothing is opened until the loop runs it.
    pub fn new(
        cfg: &StreamConfig,
        data_folder: &std::path::Path,
        token: Token,
        host_name: &str,
        now: Instant,
    ) -> Self {
        let name = cfg.folder_name.clone();
        let mut session = Session::new(cfg.session_config(), seed(token), now);
        let broker = format!("{}:{}", cfg.broker.host, cfg.broker.port);
        let folder = data_folder.join(&cfg.folder_name);
        let qos2 = Qos2State::attach(&mut session, &folder, &cfg.broker.client_id, &broker);
        let mut writer = Writer::new(
            folder,
            cfg.rotation,
            cfg.durability,
            FileMeta {
                stream_folder: cfg.folder_name.clone(),
                topics: cfg.topics.clone(),
                broker,
                host: host_name.to_owned(),
                mqtt5: cfg.broker.mqtt5.is_some(),
            },
        );
        // Closed files are finished off the loop (`store::finaliser`).
        writer.defer_finalising();
        let mut chain = Chain::new();
        if !cfg.exclude.is_empty() {
            let topics = cfg.exclude.clone();
            chain.push("exclude", Box::new(filter::exclude::Exclude::new(topics)));
        }
        let registry = filter::Registry::builtin();
        for spec in &cfg.filters {
            match registry.build(spec) {
                Ok(f) => chain.push(&spec.name, f),
                // `config` built every filter once already; this cannot
                // happen short of a bug, and storing more is the safe side.
                Err(problems) => {
                    log::error!("[{name}] filter `{}` left out: {problems:?}", spec.name)
                }
            }
        }
        let core = Core::new(
            &name,
            session,
            chain,
            cfg.commit_interval,
            cfg.qos,
            cfg.coalesce,
            now,
        );
        let link =
            Link::new(&cfg.broker.host, cfg.broker.port, token).with_tls(cfg.broker.tls.clone());
        Stream {
            name,
            core,
            link,
            store: WriterStore {
                writer,
                took_us: None,
            },
            counters: Counters::default(),
            tally: Tally::default(),
            qos2,
            read_requested: false,
        }
    }

    /// The earliest monotonic deadline of this stream.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    /// The wall-clock moment (unix µs) the open file must be finalised.
    /// While storage is failing the retry timer drives it instead (a past
    /// rotation deadline would otherwise wake the loop continuously).
    pub fn rotation_due_us(&self) -> Option<i64> {
        if self.core.storage_failing() {
            return None;
        }
        self.store.writer.period_end_us()
    }

    /// Bytes may be waiting in the socket that this stream stopped reading
    /// to let other work run (not while storage is failing: then the retry
    /// timer resumes reading).
    pub fn has_unread(&self) -> bool {
        self.core.has_unread() && self.link.is_open()
    }

    /// The MQTT protocol state (statistics, connection state).
    pub fn session(&self) -> &Session {
        self.core.session()
    }

    /// Continues reading where the last turn stopped.
    pub fn continue_reading(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if self.has_unread() {
            self.read_all(registry, buf, now);
        }
    }

    /// The file being written, if any.
    pub fn current_file(&self) -> Option<&std::path::Path> {
        self.store.writer.current_file()
    }

    /// Messages not stored, per reason, since start: first the stream-level
    /// `max-payload-bytes` (named [`WIRE_LIMIT_NAME`]; those payloads are
    /// skipped by the framing as they arrive), then each filter of the
    /// chain by its name (`exclude`, `changes-only`, ...; a repeated name
    /// gets `#2`, `#3`).
    pub fn filter_drops(&self) -> impl Iterator<Item = (&str, u64)> {
        std::iter::once((WIRE_LIMIT_NAME, self.counters.oversize)).chain(self.core.filter_drops())
    }

    /// Storage is failing (messages held, a retry pending): freeing disk
    /// space may help.
    pub fn storage_failing(&self) -> bool {
        self.core.storage_failing()
    }

    /// Space was freed: retry the failed write at the next timer check
    /// instead of waiting for the retry interval.
    pub fn retry_storage_soon(&mut self, now: Instant) {
        self.core.retry_storage_soon(now);
    }

    /// Rows inserted and not yet committed.
    pub fn uncommitted(&self) -> usize {
        self.store.writer.uncommitted()
    }

    /// The socket is ready: finish a connect, read until `WouldBlock`,
    /// write what is pending. `buf` is the loop's shared read buffer.
    pub fn on_ready(
        &mut self,
        registry: &Registry,
        readable: bool,
        writable: bool,
        buf: &mut [u8],
        now: Instant,
    ) {
        let usable = match self.link.finish_connect(registry) {
            Ok(true) => {
                let t = at(now);
                let (core, mut books) = self.parts();
                core.on_transport_up(t, &mut books);
                self.carry_out(registry, now);
                true
            }
            Ok(false) => !self.link.is_connecting(),
            Err(why) => {
                self.down(registry, now, &why);
                false
            }
        };
        if !usable {
            return;
        }
        if readable || self.core.stopped_early() {
            self.read_all(registry, buf, now);
        }
        if writable || self.has_output() {
            self.flush(registry, now);
        }
    }

    /// One read turn: reads until `WouldBlock` (edge-triggered) or until
    /// the core says stop, handing the bytes to the core; then its end
    /// (commit if acks wait, write) and, under light traffic, coalescing.
    fn read_all(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.core.begin_read_turn();
        let mut total = 0;
        for reads in 0.. {
            if !self.core.may_read(reads) || !self.link.is_open() {
                break;
            }
            match self.link.read(buf) {
                Ok(ReadOutcome::Data(n)) => {
                    // Even after a short read, read on until WouldBlock or
                    // end of file: a FIN that came with the data raises no
                    // further edge, and would go unnoticed until the
                    // keep-alive ran out.
                    total += n;
                    let t = at(now);
                    let (core, mut books) = self.parts();
                    core.on_bytes(&buf[..n], t, &mut books);
                    self.carry_out(registry, now);
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => {
                    self.down(registry, now, &LinkError::Closed);
                    break;
                }
                Err(e) => {
                    self.down(registry, now, &LinkError::Read(e));
                    break;
                }
            }
        }
        let (core, mut books) = self.parts();
        core.end_read_turn(now, &mut books);
        self.carry_out(registry, now);
        self.core.coalesce_after_read_turn(total, now);
        self.carry_out(registry, now);
    }

    /// Commits what was inserted; on success, releases the held
    /// acknowledgements.
    pub fn commit(&mut self, now: Instant) {
        let (core, mut books) = self.parts();
        core.commit(now, &mut books);
    }

    /// Time-driven work: the end of a coalescing pause, session timers,
    /// commit deadline, storage retry, filter ticks.
    pub fn on_timer(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.core.end_coalescing(now);
        self.carry_out(registry, now);
        self.read_if_requested(registry, buf, now);
        let waiting = self.core.paused_by_storage() && self.link.has_unread_bytes();
        let t = at(now);
        let (core, mut books) = self.parts();
        core.on_timer(t, waiting, &mut books);
        self.carry_out(registry, now);
        self.read_if_requested(registry, buf, now);
        self.core.tick_filters(at(now));
        self.flush(registry, now);
    }

    /// Finalises the open file (rotation deadline, SIGHUP, stop).
    pub fn rotate(&mut self, now: Instant) {
        let (core, mut books) = self.parts();
        core.rotate(now, &mut books);
    }

    /// Graceful stop: commit, acknowledge, finalise the file, DISCONNECT.
    /// Returns true when the outbox is fully written.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant) -> bool {
        let t = at(now);
        let (core, mut books) = self.parts();
        core.shutdown(t, &mut books);
        self.carry_out(registry, now);
        !self.has_output() || !self.link.is_open()
    }

    /// During the stop: writes what is left of the outbox (the DISCONNECT);
    /// true when nothing is left to write.
    pub fn flush_final(&mut self, registry: &Registry, now: Instant) -> bool {
        self.flush(registry, now);
        !self.has_output() || !self.link.is_open()
    }

    /// Host names of this stream's broker are resolved through `resolver`.
    pub fn set_resolver(&mut self, resolver: crate::resolve::ResolverHandle) {
        self.link.set_resolver(resolver);
    }

    /// The broker's host name was looked up: connect (or back off).
    pub fn on_resolved(
        &mut self,
        registry: &Registry,
        answer: crate::resolve::Answer,
        now: Instant,
    ) {
        if let Err(why) = self.link.on_resolved(registry, answer) {
            self.down(registry, now, &why);
        }
    }

    /// Files this stream closed that still need finishing (checkpoint,
    /// fsync, rename), with the stream's durability.
    pub fn take_closed(&mut self) -> (Vec<std::path::PathBuf>, crate::store::Durability) {
        (
            self.store.writer.take_closed(),
            self.store.writer.durability(),
        )
    }

    /// Closes the socket at the end of the stop sequence.
    pub fn close(&mut self, registry: &Registry) {
        self.link.close(registry);
        self.core.closed();
    }

    /// The core and the books it writes, borrowed apart.
    fn parts(&mut self) -> (&mut Core, Books<'_, WriterStore>) {
        (
            &mut self.core,
            Books {
                store: &mut self.store,
                counters: &mut self.counters,
                tally: &mut self.tally,
            },
        )
    }

    /// Bytes queued for the broker and not yet written (in the outbox, or
    /// taken by TLS and not yet on the socket).
    fn has_output(&mut self) -> bool {
        !self.core.outbox().is_empty() || self.link.unsent()
    }

    /// Writes the outbox (WRITABLE interest only while bytes remain).
    fn flush(&mut self, registry: &Registry, now: Instant) {
        self.core.flush();
        self.carry_out(registry, now);
    }

    /// The transport failed: tell the core and carry out what follows.
    fn down(&mut self, registry: &Registry, now: Instant, why: &LinkError) {
        let t = at(now);
        let (core, mut books) = self.parts();
        core.on_transport_down(t, &why.to_string(), &mut books);
        self.carry_out(registry, now);
    }

    /// Runs the read turn an action asked for.
    fn read_if_requested(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if std::mem::take(&mut self.read_requested) {
            self.read_all(registry, buf, now);
        }
    }

    /// Carries out the core's actions, in order, against the socket, the
    /// registry and the QoS 2 state file. A failure goes back to the core
    /// as `on_transport_down`, whose actions are carried out in turn.
    fn carry_out(&mut self, registry: &Registry, now: Instant) {
        while let Some(action) = self.core.next_action() {
            match action {
                Action::OpenTransport => {
                    if let Err(why) = self.link.open(registry) {
                        self.down(registry, now, &why);
                    }
                }
                Action::CloseTransport => self.link.close(registry),
                Action::SaveQos2Ids(ids) => {
                    if let Some(state) = &mut self.qos2 {
                        state.save(&ids);
                    }
                }
                Action::Flush => {
                    if let Err(why) = self.link.flush(registry, self.core.outbox()) {
                        self.down(registry, now, &why);
                    }
                }
                Action::Park { until } => {
                    if self.link.park(registry) {
                        self.core.parked(until);
                    }
                }
                Action::Resume => match self.link.unpark(registry) {
                    Ok(()) => self.read_requested = true,
                    Err(why) => self.down(registry, now, &why),
                },
                Action::ReadOn => self.read_requested = true,
            }
        }
    }
}

/// `now` and the wall clock, read once for one input to the core.
fn at(now: Instant) -> Now {
    Now {
        at: now,
        wall_us: clock::now_us(),
    }
}

/// A per-stream, per-process seed for the backoff jitter.
fn seed(token: Token) -> u64 {
    let pid = u64::from(std::process::id());
    let t = clock::now_us().unsigned_abs();
    t ^ (pid << 32) ^ (token.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The writer as the core's [`Storage`], timing each commit for the
/// self-report (the core reads no clock).
#[derive(Debug)]
struct WriterStore {
    writer: Writer,
    /// Duration of the last successful commit not yet taken, in µs.
    took_us: Option<u64>,
}

impl Store for WriterStore {
    fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        self.writer.insert(msg)
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        self.writer.commit()?;
        self.took_us = Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        Ok(())
    }
    fn uncommitted(&self) -> usize {
        self.writer.uncommitted()
    }
    fn ends_period(&self, msg: &Message) -> bool {
        self.writer.belongs_after_open_file(msg.timestamp_us)
    }
    fn rotate(&mut self) -> Result<Option<std::path::PathBuf>, StoreError> {
        self.writer.rotate()
    }
    fn abandon(&mut self) {
        self.writer.abandon();
    }
}

impl Storage for WriterStore {
    fn current_file(&self) -> Option<&std::path::Path> {
        self.writer.current_file()
    }
    fn session_started(&mut self, s: BrokerSession) {
        self.writer.session_started(s);
    }
    fn session_ended(&mut self, at_us: i64, why: &str) {
        self.writer.session_ended(at_us, why);
    }
    fn take_commit_us(&mut self) -> Option<u64> {
        self.took_us.take()
    }
}
