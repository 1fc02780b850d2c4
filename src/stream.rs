//! One stream: a [`Connection`] (MQTT session + socket), a filter chain and
//! an ack [`Gate`] over its SQLite writer, and what ties them together: the
//! socket's `ReadState` (read, yield, coalesce, pause while storage fails)
//! and the counters of the self-report. The loop in `app` owns the streams
//! and calls these handlers; protocol rules live in the session,
//! ack-after-commit in the gate, file rules in the writer.
//!
//! Must not: hold a protocol or storage rule of its own, or parse packets.

use crate::clock;
use crate::config::StreamConfig;
use crate::connection::{Connection, Read};
pub use crate::counters::Counters;
use crate::filter::{self, Chain, Verdict};
use crate::message::Message;
use crate::mqtt::session::{Delivery, Event, Session};
use crate::qos2_state::Qos2State;
use crate::store::StoreError;
use crate::store::gate::{Actions, Gate, Store};
use crate::store::writer::{BrokerSession, FileMeta, Writer};
use crate::summary::Tally;
use mio::{Registry, Token};
use std::time::{Duration, Instant};

/// Reads per loop turn before other work gets a chance (x 64 KiB).
const MAX_READS_PER_TURN: usize = 16;

/// A read turn smaller than this means light traffic: worth coalescing.
const COALESCE_BELOW: usize = 16 * 1024;

/// How often the filter chain is ticked, when some filter wants ticks.
const FILTER_TICK: Duration = Duration::from_secs(1);

/// The name under which [`Stream::filter_drops`] reports the stream-level
/// `max-payload-bytes` (the wire-level limit enforced by the framing).
pub const WIRE_LIMIT_NAME: &str = "max-payload-bytes (wire)";

/// What a stream does with its socket. One state instead of separate
/// flags, so that "paused" has one meaning at a time.
///
/// ```text
///   Closed --open--> Reading --light traffic--> Coalescing{until} --until--> Reading
///                     |  ^  \--16 reads in a turn--> Yielded --next turn--^
///                     |  +------ storage works again ----+
///                     +--storage fails--> PausedByStorage
///   any --close--> Closed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// No socket (not connected yet, or closed).
    Closed,
    /// In the poll set; the next readiness edge wakes the stream.
    Reading,
    /// Stopped after `MAX_READS_PER_TURN` reads to let other work run;
    /// bytes may wait in the kernel and the loop comes back at once.
    Yielded,
    /// Light traffic: the socket is out of the poll set (parked) until
    /// `until`, then everything that arrived is read in one turn.
    Coalescing {
        /// When the socket goes back into the poll set.
        until: Instant,
    },
    /// Storage is failing and messages are held: bytes are left in the
    /// kernel (backpressure to the broker) until the gate recovers.
    PausedByStorage,
}

impl ReadState {
    /// Reading stopped early: bytes may be waiting in the socket.
    fn has_unread(self) -> bool {
        matches!(self, ReadState::Yielded | ReadState::PausedByStorage)
    }
}

/// One stream of the configuration, live.
#[derive(Debug)]
pub struct Stream {
    /// The folder name, used in log lines.
    pub name: String,
    /// `exclude` (as the first filter) and `filters:`, between the session
    /// and the writer.
    chain: Chain,
    /// When the chain is ticked next (only if some filter wants ticks).
    filter_tick_at: Option<Instant>,
    /// The MQTT session and its socket.
    conn: Connection,
    writer: Writer,
    /// Ack-after-commit: commit deadline, storage retry, held messages.
    gate: Gate,
    /// What the stream does with its socket now.
    read: ReadState,
    /// `coalesce-ms` (zero = off); applies to QoS 0 subscriptions only,
    /// since at QoS 1/2 a delayed read would delay the acks and throttle
    /// the broker's in-flight window.
    coalesce: Duration,
    /// Scratch for session events, reused.
    events: Vec<Event>,
    /// The QoS granted by the last SUBACK, per filter (`1`, `1,0`,
    /// `refused`): a resumed session has none of its own.
    granted: String,
    /// Self-report counters.
    pub counters: Counters,
    /// Reception-time span committed and files written (`--summary`).
    pub tally: Tally,
    /// Where a persistent QoS 2 session keeps its ids awaiting PUBREL
    /// across restarts; `None` for every other session.
    qos2: Option<Qos2State>,
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
        let filter_tick_at = chain.wants_ticks().then(|| now + FILTER_TICK);
        Stream {
            name,
            chain,
            filter_tick_at,
            conn: Connection::to_broker(session, &cfg.broker, token),
            writer,
            gate: Gate::new(&cfg.folder_name, cfg.commit_interval),
            read: ReadState::Closed,
            coalesce: if cfg.qos == 0 {
                cfg.coalesce
            } else {
                Duration::ZERO
            },
            events: Vec::with_capacity(64),
            granted: String::new(),
            counters: Counters::default(),
            tally: Tally::default(),
            qos2,
        }
    }

    /// The earliest monotonic deadline of this stream.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.conn.next_deadline(),
            self.gate.next_deadline(),
            self.filter_tick_at,
            match self.read {
                ReadState::Coalescing { until } => Some(until),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The wall-clock moment (unix µs) the open file must be finalised.
    /// While storage is failing the retry timer drives it instead (a past
    /// rotation deadline would otherwise wake the loop continuously).
    pub fn rotation_due_us(&self) -> Option<i64> {
        if self.gate.is_retrying() {
            return None;
        }
        self.writer.period_end_us()
    }

    /// Bytes may be waiting in the socket that this stream stopped reading
    /// to let other work run (not while storage is failing: then the retry
    /// timer resumes reading).
    pub fn has_unread(&self) -> bool {
        self.read.has_unread() && self.gate.held() == 0 && self.conn.is_open()
    }

    /// The MQTT protocol state (statistics, connection state).
    pub fn session(&self) -> &Session {
        self.conn.session()
    }

    /// Continues reading where the last turn stopped.
    pub fn continue_reading(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if self.has_unread() {
            self.read_all(registry, buf, now);
        }
    }

    /// The file being written, if any.
    pub fn current_file(&self) -> Option<&std::path::Path> {
        self.writer.current_file()
    }

    /// Messages not stored, per reason, since start: first the stream-level
    /// `max-payload-bytes` (named [`WIRE_LIMIT_NAME`]; those payloads are
    /// skipped by the framing as they arrive), then each filter of the
    /// chain by its name (`exclude`, `changes-only`, ...; a repeated name
    /// gets `#2`, `#3`).
    pub fn filter_drops(&self) -> impl Iterator<Item = (&str, u64)> {
        std::iter::once((WIRE_LIMIT_NAME, self.counters.oversize)).chain(self.chain.dropped())
    }

    /// Storage is failing (messages held, a retry pending): freeing disk
    /// space may help.
    pub fn storage_failing(&self) -> bool {
        self.gate.is_retrying()
    }

    /// Space was freed: retry the failed write at the next timer check
    /// instead of waiting for the retry interval.
    pub fn retry_storage_soon(&mut self, now: Instant) {
        self.gate.retry_soon(now);
    }

    /// Rows inserted and not yet committed.
    pub fn uncommitted(&self) -> usize {
        self.writer.uncommitted()
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
        let usable = self.conn.on_ready(registry, now);
        self.handle_events(now);
        if !usable {
            return;
        }
        if readable || self.read.has_unread() {
            self.read_all(registry, buf, now);
        }
        if writable || self.conn.has_output() {
            self.flush(registry, now);
        }
    }

    /// Reads until `WouldBlock` (edge-triggered), handing bytes to the
    /// session; then, if acknowledgements wait, commits at once so that the
    /// broker's in-flight window reopens.
    fn read_all(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.read = ReadState::Reading;
        let mut total = 0;
        for reads in 0.. {
            if self.gate.held() > 0 && self.conn.is_connected() {
                // Storage is failing: leave the bytes in the kernel. (A
                // connection being set up is still read, so that its
                // CONNACK is seen; what comes with it is held.)
                self.read = ReadState::PausedByStorage;
                break;
            }
            if reads == MAX_READS_PER_TURN {
                // A broker sending faster than we store would keep this
                // loop busy forever (the socket never reaches WouldBlock),
                // starving commits, timers and the other streams. Yield;
                // the loop comes back at once (`has_unread`).
                self.read = ReadState::Yielded;
                break;
            }
            match self.conn.read(registry, buf, now) {
                Read::Data(n) => {
                    // Even after a short read, read on until WouldBlock or
                    // end of file: a FIN that came with the data raises no
                    // further edge, and would go unnoticed until the
                    // keep-alive ran out.
                    total += n;
                    self.handle_events(now);
                }
                Read::WouldBlock => break,
                Read::Gone => {
                    self.handle_events(now);
                    break;
                }
            }
        }
        if self.conn.session().pending_acks() > 0 {
            self.commit(now);
        }
        self.flush(registry, now);
        if total > 0 && total < COALESCE_BELOW && self.read == ReadState::Reading {
            self.start_coalescing(registry, now);
        }
    }

    /// Light traffic: take the socket out of the poll set for `coalesce`,
    /// then read everything that arrived meanwhile in one turn. One wake-up
    /// then carries several messages instead of one, which is most of the
    /// CPU cost at low rates; reception timestamps of the later messages
    /// are up to `coalesce` late (documented with the key).
    fn start_coalescing(&mut self, registry: &Registry, now: Instant) {
        if self.coalesce.is_zero() || !self.conn.is_connected() {
            return;
        }
        if self.conn.park(registry) {
            self.read = ReadState::Coalescing {
                until: now + self.coalesce,
            };
        }
    }

    /// End of a coalescing pause: back into the poll set, and read.
    fn resume_reading(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.read = ReadState::Reading;
        if self.conn.unpark(registry, now) {
            self.read_all(registry, buf, now);
        } else {
            self.handle_events(now);
        }
    }

    /// Reacts to what the connection reports: stores messages, counts
    /// oversize ones, and forgets read state when the socket changes.
    fn handle_events(&mut self, now: Instant) {
        if !self.conn.has_events() {
            return;
        }
        // One timestamp per read: every message framed from the same bytes
        // arrived at the same moment.
        let ts = clock::now_us();
        let mut batch = std::mem::take(&mut self.events);
        // Handling an event may raise more: loop until none are left.
        self.conn.take_events(&mut batch);
        while !batch.is_empty() {
            for ev in batch.drain(..) {
                match ev {
                    // The connection opened or closed the socket.
                    Event::OpenTransport => self.read = ReadState::Reading,
                    Event::CloseTransport => {
                        self.read = ReadState::Closed;
                        let why = &self.conn.session().stats().last_close;
                        self.writer.session_ended(ts, why);
                    }
                    Event::Connected => self.connected(ts),
                    Event::Message(d) => self.on_message(d, ts, now),
                    Event::Oversize { topic, payload_len } => {
                        self.counters.received += 1;
                        // Skipped bytes were received all the same.
                        self.counters.received_bytes += payload_len as u64;
                        self.counters.oversize += 1;
                        log::warn!(
                            "[{}] skipped a message of {payload_len} bytes on {topic:?} (max-payload-bytes)",
                            self.name
                        );
                    }
                }
            }
            self.conn.take_events(&mut batch);
        }
        self.events = batch;
    }

    /// The subscriptions are in place: the connection goes into the
    /// `sessions` table of the files written while it lasts.
    fn connected(&mut self, ts: i64) {
        let stats = self.conn.session().stats();
        if !stats.granted.is_empty() {
            let words: Vec<String> = stats
                .granted
                .iter()
                .map(|g| g.map_or_else(|| "refused".to_owned(), |q| q.to_string()))
                .collect();
            self.granted = words.join(",");
        }
        self.writer.session_started(BrokerSession {
            connected_us: ts,
            disconnected_us: None,
            session_present: stats.session_present,
            granted_qos: self.granted.clone(),
            ended: None,
        });
    }

    fn on_message(&mut self, d: Delivery, ts: i64, now: Instant) {
        self.counters.received += 1;
        self.counters.received_bytes += d.payload.len() as u64;
        self.counters.last_rx_us = ts;
        let mut msg = Message {
            timestamp_us: ts,
            topic: d.topic,
            payload: d.payload,
            qos: d.qos,
            retain: d.retain,
            properties: d.properties,
        };
        // A dropped QoS 1/2 message is already in the session's ack queue:
        // it is acknowledged after the next commit like a stored one.
        if self.chain.check(&mut msg) == Verdict::Drop {
            self.counters.filtered += 1;
            return;
        }
        self.gate_call(now, |g, s, c| g.accept(s, msg, now, c));
    }

    /// Commits what was inserted; on success, releases the held
    /// acknowledgements.
    pub fn commit(&mut self, now: Instant) {
        self.gate_call(now, |g, s, c| g.commit(s, now, c));
    }

    /// Runs one gate call against the writer and carries out its actions:
    /// acks released after a commit. Records the commit time for the self-report.
    fn gate_call(
        &mut self,
        now: Instant,
        call: impl FnOnce(&mut Gate, &mut TimedWriter<'_>, &mut crate::counters::Counters) -> Actions,
    ) -> Actions {
        let mut store = TimedWriter {
            writer: &mut self.writer,
            took_us: None,
            tally: &mut self.tally,
        };
        let actions = call(&mut self.gate, &mut store, &mut self.counters);
        if let Some(took) = store.took_us {
            self.counters.commit_last_us = took;
            self.counters.commit_max_us = self.counters.commit_max_us.max(took);
        }
        if actions.release_acks {
            self.conn.session_mut().release_acks(now);
        }
        actions
    }

    /// Time-driven work: session timers, commit deadline, storage retry,
    /// filter ticks.
    pub fn on_timer(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if matches!(self.read, ReadState::Coalescing { until } if now >= until) {
            self.resume_reading(registry, buf, now);
        }
        if self.read == ReadState::PausedByStorage {
            self.conn.note_unread_bytes(now); // backpressure is not silence
        }
        self.conn.on_timer(registry, now);
        self.handle_events(now);
        let actions = self.gate_call(now, |g, s, c| g.on_timer(s, now, c));
        if actions.recovered && self.read.has_unread() {
            self.read_all(registry, buf, now);
        }
        if self.filter_tick_at.is_some_and(|t| now >= t) {
            self.chain.tick(clock::now_us());
            self.filter_tick_at = Some(now + FILTER_TICK);
        }
        self.flush(registry, now);
    }

    /// Finalises the open file (rotation deadline, SIGHUP, stop).
    pub fn rotate(&mut self, now: Instant) {
        self.gate_call(now, |g, s, c| g.rotate(s, now, c));
    }

    /// Graceful stop: commit, acknowledge, finalise the file, DISCONNECT.
    /// Returns true when the outbox is fully written.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant) -> bool {
        self.writer.session_ended(clock::now_us(), "attic stopped");
        self.gate_call(now, |g, s, c| g.shutdown(s, now, c));
        self.conn.session_mut().shutdown();
        self.flush_final(registry, now)
    }

    /// During the stop: writes what is left of the outbox (the DISCONNECT);
    /// true when nothing is left to write.
    pub fn flush_final(&mut self, registry: &Registry, now: Instant) -> bool {
        self.flush(registry, now);
        !self.conn.has_output() || !self.conn.is_open()
    }

    /// Host names of this stream's broker are resolved through `resolver`.
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
        self.handle_events(now);
    }

    /// Files this stream closed that still need finishing (checkpoint,
    /// fsync, rename), with the stream's durability.
    pub fn take_closed(&mut self) -> (Vec<std::path::PathBuf>, crate::store::Durability) {
        (self.writer.take_closed(), self.writer.durability())
    }

    /// Closes the socket at the end of the stop sequence.
    pub fn close(&mut self, registry: &Registry) {
        self.conn.close(registry);
        self.read = ReadState::Closed;
    }

    /// Writes the outbox (WRITABLE interest only while bytes remain).
    /// A persistent QoS 2 session's ids awaiting PUBREL are saved first, so
    /// that the file is never behind the PUBREC and PUBCOMP that follow.
    fn flush(&mut self, registry: &Registry, now: Instant) {
        if let Some(state) = &mut self.qos2 {
            state.save_changes(self.conn.session_mut());
        }
        self.conn.flush(registry, now);
        self.handle_events(now);
    }
}

/// A per-stream, per-process seed for the backoff jitter.
fn seed(token: Token) -> u64 {
    let pid = u64::from(std::process::id());
    let t = clock::now_us().unsigned_abs();
    t ^ (pid << 32) ^ (token.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The writer as the gate's [`Store`], timing each commit for the
/// self-report (the gate itself reads no clock) and keeping the stream's
/// [`Tally`] (span of reception timestamps committed, files written).
struct TimedWriter<'w> {
    writer: &'w mut Writer,
    /// Duration of the last successful commit during this call, in µs.
    took_us: Option<u64>,
    tally: &'w mut Tally,
}

impl TimedWriter<'_> {
    /// Keeps the tally in step with a storage result.
    fn track<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::RolledBack { .. }) = r {
            self.tally.rolled_back();
        }
        r
    }
}

impl Store for TimedWriter<'_> {
    fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        let r = self.writer.insert(msg);
        if r.is_ok() {
            self.tally.inserted(msg.timestamp_us);
        }
        self.track(r)
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = self.writer.commit();
        self.track(r)?;
        self.tally.committed();
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
        let r = self.writer.rotate();
        let closed = self.track(r)?;
        if closed.is_some() {
            // The file itself is recorded from its `Closed` event
            // (`app::file_events`), as is every file the writer closes.
            self.tally.committed();
        }
        Ok(closed)
    }
    fn abandon(&mut self) {
        // Its committed rows stay in the `.part` file (recovered at the
        // next start); the uncommitted ones are gone.
        if let Some(part) = self.writer.current_file() {
            self.tally.file_written(part);
        }
        self.tally.rolled_back();
        self.writer.abandon();
    }
}
