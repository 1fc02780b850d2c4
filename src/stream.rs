//! One stream: its MQTT session, its socket and its SQLite writer, and the
//! rules that tie them together (ack after commit, commit deadlines,
//! backpressure when the disk fails). The loop in `app` owns the streams and
//! calls these handlers; protocol rules live in the session, file rules in
//! the writer.

use crate::clock;
use crate::config::StreamConfig;
use crate::filter::{self, Chain, Verdict};
use crate::mqtt::session::{Delivery, Event, Session, SessionConfig};
use crate::net::{Link, ReadOutcome};
use crate::store::Message;
use crate::store::writer::{FileMeta, Writer};
use mio::{Registry, Token};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// After a storage error, the next attempt comes this much later.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Reads per loop turn before other work gets a chance (x 64 KiB).
const MAX_READS_PER_TURN: usize = 16;

/// A read turn smaller than this means light traffic: worth coalescing.
const COALESCE_BELOW: usize = 16 * 1024;

/// How often the filter chain is ticked, when some filter wants ticks.
const FILTER_TICK: Duration = Duration::from_secs(1);

/// The name under which [`Stream::filter_drops`] reports the stream-level
/// `max-payload-bytes` (the wire-level limit enforced by the framing).
pub const WIRE_LIMIT_NAME: &str = "max-payload-bytes (wire)";

/// Counters for the self-report; totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages received from the broker (stored, excluded or skipped).
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages committed to a file.
    pub stored: u64,
    /// Payload bytes committed.
    pub stored_bytes: u64,
    /// Messages dropped by the filter chain (`exclude` and `filters:`);
    /// per filter in [`Stream::filter_drops`].
    pub excluded: u64,
    /// Messages skipped for exceeding `max-payload-bytes`.
    pub oversize: u64,
    /// Storage errors (each insert or commit that failed).
    pub store_errors: u64,
    /// Files finalised.
    pub files_closed: u64,
    /// Rows lost because SQLite rolled back a transaction (disk full or
    /// I/O error during commit); QoS 1/2 ones are redelivered.
    pub lost: u64,
    /// Unix µs of the last message received (0 = none yet).
    pub last_rx_us: i64,
    /// Duration of the last commit that wrote rows, in µs.
    pub commit_last_us: u64,
    /// Longest commit since start, in µs.
    pub commit_max_us: u64,
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
    commit_interval: Duration,
    /// The MQTT protocol state.
    pub session: Session,
    /// The TCP connection and its poll registration.
    link: Link,
    writer: Writer,
    /// When the oldest uncommitted row must be committed.
    commit_due: Option<Instant>,
    /// After a storage error: when to try again.
    store_retry_at: Option<Instant>,
    /// Messages received but not yet inserted because storage failed; while
    /// any are held the socket is not read (backpressure to the broker).
    held: VecDeque<Message>,
    /// The socket may have unread bytes (reading paused while `held`).
    unread: bool,
    /// `coalesce-ms` (zero = off); applies to QoS 0 subscriptions only,
    /// since at QoS 1/2 a delayed read would delay the acks and throttle
    /// the broker's in-flight window.
    coalesce: Duration,
    /// While coalescing: the socket is out of the poll set until then.
    resume_at: Option<Instant>,
    /// Payload bytes inserted but not yet committed.
    uncommitted_bytes: u64,
    /// Scratch for session events, reused.
    events: Vec<Event>,
    /// Self-report counters.
    pub counters: Counters,
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
        let session = Session::new(
            SessionConfig {
                name: name.clone(),
                client_id: cfg.broker.client_id.clone(),
                user: cfg.broker.user.clone(),
                password: cfg.broker.password.clone(),
                keep_alive: cfg.broker.keep_alive,
                clean_session: cfg.broker.clean_session,
                filters: cfg.topics.clone(),
                qos: cfg.qos,
                max_payload: cfg.max_payload_bytes,
            },
            seed(token),
            now,
        );
        let writer = Writer::new(
            data_folder.join(&cfg.folder_name),
            cfg.rotation,
            cfg.durability,
            FileMeta {
                stream_folder: cfg.folder_name.clone(),
                topics: cfg.topics.clone(),
                broker: format!("{}:{}", cfg.broker.host, cfg.broker.port),
                host: host_name.to_owned(),
            },
        );
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
            commit_interval: cfg.commit_interval,
            session,
            link: Link::new(&cfg.broker.host, cfg.broker.port, token)
                .with_tls(cfg.broker.tls.clone()),
            writer,
            commit_due: None,
            store_retry_at: None,
            held: VecDeque::new(),
            unread: false,
            coalesce: if cfg.qos == 0 {
                cfg.coalesce
            } else {
                Duration::ZERO
            },
            resume_at: None,
            uncommitted_bytes: 0,
            events: Vec::with_capacity(64),
            counters: Counters::default(),
        }
    }

    /// The earliest monotonic deadline of this stream.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.session.next_deadline(),
            self.commit_due,
            self.store_retry_at,
            self.filter_tick_at,
            self.resume_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The wall-clock moment (unix µs) the open file must be finalised.
    /// While storage is failing the retry timer drives it instead (a past
    /// rotation deadline would otherwise wake the loop continuously).
    pub fn rotation_due_us(&self) -> Option<i64> {
        if self.store_retry_at.is_some() {
            return None;
        }
        self.writer.period_end_us()
    }

    /// Bytes may be waiting in the socket that this stream stopped reading
    /// to let other work run (not while storage is failing: then the retry
    /// timer resumes reading).
    pub fn has_unread(&self) -> bool {
        self.unread && self.held.is_empty() && self.link.is_open()
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
        if readable || self.unread {
            self.read_all(registry, buf, now);
        }
        if writable || !self.session.outbox().is_empty() {
            self.flush(registry, now);
        }
    }

    /// Reads until `WouldBlock` (edge-triggered), handing bytes to the
    /// session; then, if acknowledgements wait, commits at once so that the
    /// broker's in-flight window reopens.
    fn read_all(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.unread = false;
        let mut total = 0;
        for reads in 0.. {
            if !self.held.is_empty() {
                // Storage is failing: leave the bytes in the kernel.
                self.unread = true;
                break;
            }
            if reads == MAX_READS_PER_TURN {
                // A broker sending faster than we store would keep this
                // loop busy forever (the socket never reaches WouldBlock),
                // starving commits, timers and the other streams. Yield;
                // the loop comes back at once (`has_unread`).
                self.unread = true;
                break;
            }
            if !self.link.is_open() {
                break;
            }
            match self.link.read(buf) {
                Ok(ReadOutcome::Data(n)) => {
                    total += n;
                    self.session.on_bytes(&buf[..n], now, &mut self.events);
                    self.handle_events(registry, now);
                    if n < buf.len() {
                        // A short read emptied the socket's receive queue;
                        // anything arriving later raises a new edge, so the
                        // WouldBlock read would only cost a system call.
                        break;
                    }
                }
                Ok(ReadOutcome::WouldBlock) => break,
                Ok(ReadOutcome::Closed) => {
                    self.session.on_transport_down(
                        now,
                        "the broker closed the connection",
                        &mut self.events,
                    );
                    self.handle_events(registry, now);
                    break;
                }
                Err(e) => {
                    let why = format!("read error: {e}");
                    self.session.on_transport_down(now, &why, &mut self.events);
                    self.handle_events(registry, now);
                    break;
                }
            }
        }
        if self.session.pending_acks() > 0 {
            self.commit(registry, now);
        }
        self.flush(registry, now);
        if total > 0 && total < COALESCE_BELOW && !self.unread {
            self.start_coalescing(registry, now);
        }
    }

    /// Light traffic: take the socket out of the poll set for `coalesce`,
    /// then read everything that arrived meanwhile in one turn. One wake-up
    /// then carries several messages instead of one, which is most of the
    /// CPU cost at low rates; reception timestamps of the later messages
    /// are up to `coalesce` late (documented with the key).
    fn start_coalescing(&mut self, registry: &Registry, now: Instant) {
        if self.coalesce.is_zero() || !self.session.is_connected() {
            return;
        }
        if self.link.park(registry) {
            self.resume_at = Some(now + self.coalesce);
        }
    }

    /// End of a coalescing pause: back into the poll set, and read.
    fn resume_reading(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.resume_at = None;
        match self.link.unpark(registry) {
            Ok(()) => self.read_all(registry, buf, now),
            Err(why) => self.down(registry, now, &why),
        }
    }

    /// Carries out what the session asked for.
    fn handle_events(&mut self, registry: &Registry, now: Instant) {
        if self.events.is_empty() {
            return;
        }
        // One timestamp per read: every message framed from the same bytes
        // arrived at the same moment.
        let ts = clock::now_us();
        let mut batch = std::mem::take(&mut self.events);
        // Handling an event may raise more (a storage failure drops the
        // connection): loop until none are left.
        while !batch.is_empty() {
            for ev in batch.drain(..) {
                match ev {
                    Event::Connect => self.open_socket(registry, now),
                    Event::Close => self.close_socket(registry),
                    Event::Ready => {}
                    Event::Message(d) => self.on_message(d, ts, now),
                    Event::Oversize { topic, payload_len } => {
                        self.counters.received += 1;
                        self.counters.oversize += 1;
                        log::warn!(
                            "[{}] skipped a message of {payload_len} bytes on {topic:?} (max-payload-bytes)",
                            self.name
                        );
                    }
                }
            }
            std::mem::swap(&mut batch, &mut self.events);
        }
        self.events = batch;
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
        };
        // A dropped QoS 1/2 message is already in the session's ack queue:
        // it is acknowledged after the next commit like a stored one.
        if self.chain.check(&mut msg) == Verdict::Drop {
            self.counters.excluded += 1;
            return;
        }
        if !self.held.is_empty() {
            self.held.push_back(msg);
            return;
        }
        self.insert(msg, now);
    }

    fn insert(&mut self, msg: Message, now: Instant) {
        match self.writer.insert(&msg) {
            Ok(()) => {
                self.uncommitted_bytes += msg.payload.len() as u64;
                if self.commit_due.is_none() {
                    self.commit_due = Some(now + self.commit_interval);
                }
            }
            Err(e) => {
                self.storage_failed(now, &e);
                self.held.push_back(msg);
            }
        }
    }

    fn storage_failed(&mut self, now: Instant, e: &crate::store::StoreError) {
        self.counters.store_errors += 1;
        if let crate::store::StoreError::RolledBack { rows, .. } = e {
            // SQLite undid the open transaction: those rows are not stored
            // and their acks must never be sent. Dropping the connection
            // makes the broker redeliver every unacknowledged QoS 1/2
            // message; QoS 0 messages of that transaction are lost.
            self.counters.lost += *rows as u64;
            self.uncommitted_bytes = 0;
            self.commit_due = None;
            let why = format!("storage rolled back {rows} row(s); reconnecting for redelivery");
            self.session.on_transport_down(now, &why, &mut self.events);
        }
        if self.store_retry_at.is_none() {
            log::error!(
                "[{}] cannot store: {e}; holding messages and not acknowledging, retrying every {} s",
                self.name,
                STORE_RETRY.as_secs()
            );
        }
        self.store_retry_at = Some(now + STORE_RETRY);
    }

    /// Commits what was inserted; on success, releases the held
    /// acknowledgements.
    pub fn commit(&mut self, registry: &Registry, now: Instant) {
        if !self.held.is_empty() {
            // Rows after a failed insert are held: acking now would ack them.
            return;
        }
        let rows = self.writer.uncommitted();
        if rows > 0 {
            let started = Instant::now();
            if let Err(e) = self.writer.commit() {
                self.storage_failed(now, &e);
                self.handle_events(registry, now);
                return;
            }
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.counters.commit_last_us = took;
            self.counters.commit_max_us = self.counters.commit_max_us.max(took);
            self.counters.stored += rows as u64;
            self.counters.stored_bytes += self.uncommitted_bytes;
            self.uncommitted_bytes = 0;
        }
        self.commit_due = None;
        self.session.release_acks(now);
    }

    /// Time-driven work: session timers, commit deadline, storage retry,
    /// filter ticks.
    pub fn on_timer(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        if self.resume_at.is_some_and(|t| now >= t) {
            self.resume_reading(registry, buf, now);
        }
        self.session.on_timer(now, &mut self.events);
        self.handle_events(registry, now);
        if self.store_retry_at.is_some_and(|t| now >= t) {
            self.retry_store(registry, buf, now);
        }
        if self.commit_due.is_some_and(|t| now >= t) {
            self.commit(registry, now);
        }
        if self.filter_tick_at.is_some_and(|t| now >= t) {
            self.chain.tick(clock::now_us());
            self.filter_tick_at = Some(now + FILTER_TICK);
        }
        self.flush(registry, now);
    }

    fn retry_store(&mut self, registry: &Registry, buf: &mut [u8], now: Instant) {
        self.store_retry_at = None;
        while let Some(msg) = self.held.pop_front() {
            match self.writer.insert(&msg) {
                Ok(()) => self.uncommitted_bytes += msg.payload.len() as u64,
                Err(e) => {
                    self.held.push_front(msg);
                    self.storage_failed(now, &e);
                    return;
                }
            }
        }
        self.commit(registry, now);
        if self.store_retry_at.is_none() {
            log::info!("[{}] storage works again", self.name);
            if self.unread {
                self.read_all(registry, buf, now);
            }
        }
    }

    /// Finalises the open file (rotation deadline, SIGHUP, stop).
    pub fn rotate(&mut self, registry: &Registry, now: Instant) {
        self.commit(registry, now);
        if !self.held.is_empty() || self.store_retry_at.is_some() {
            return; // storage is failing; the file stays open until it works
        }
        match self.writer.rotate() {
            Ok(Some(path)) => {
                self.counters.files_closed += 1;
                log::info!("[{}] closed {}", self.name, path.display());
            }
            Ok(None) => {}
            Err(e) => {
                self.storage_failed(now, &e);
                self.handle_events(registry, now);
            }
        }
    }

    /// Graceful stop: commit, acknowledge, finalise the file, DISCONNECT.
    /// Returns true when the outbox is fully written.
    pub fn shutdown(&mut self, registry: &Registry, now: Instant) -> bool {
        self.rotate(registry, now);
        if !self.held.is_empty() || self.store_retry_at.is_some() {
            log::error!(
                "[{}] stopping with {} message(s) not stored (not acknowledged; the broker keeps them for a persistent session)",
                self.name,
                self.held.len()
            );
            self.writer.abandon();
        }
        self.session.shutdown();
        self.flush_final(registry, now)
    }

    /// During the stop: writes what is left of the outbox (the DISCONNECT);
    /// true when nothing is left to write.
    pub fn flush_final(&mut self, registry: &Registry, now: Instant) -> bool {
        self.flush(registry, now);
        (self.session.outbox().is_empty() && !self.link.unsent()) || !self.link.is_open()
    }

    /// Closes the socket at the end of the stop sequence.
    pub fn close(&mut self, registry: &Registry) {
        self.close_socket(registry);
    }

    fn open_socket(&mut self, registry: &Registry, now: Instant) {
        self.close_socket(registry);
        if let Err(why) = self.link.open(registry) {
            self.session.on_transport_down(now, &why, &mut self.events);
        }
    }

    fn close_socket(&mut self, registry: &Registry) {
        self.link.close(registry);
        self.unread = false;
        self.resume_at = None;
    }

    /// The transport failed: tell the session and carry out what follows.
    fn down(&mut self, registry: &Registry, now: Instant, why: &str) {
        self.session.on_transport_down(now, why, &mut self.events);
        self.handle_events(registry, now);
    }

    /// Writes the outbox (WRITABLE interest only while bytes remain).
    fn flush(&mut self, registry: &Registry, now: Instant) {
        if let Err(why) = self.link.flush(registry, self.session.outbox()) {
            self.down(registry, now, &why);
        }
    }
}

/// A per-stream, per-process seed for the backoff jitter.
fn seed(token: Token) -> u64 {
    let pid = u64::from(std::process::id());
    let t = clock::now_us().unsigned_abs();
    t ^ (pid << 32) ^ (token.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
