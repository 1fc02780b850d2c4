//! The stream's sans-IO core: one stream's MQTT [`Session`], its filter
//! [`Chain`] and its ack [`Gate`], and every rule that ties them together.
//! Its inputs are what happened (bytes received, a timer, the transport up
//! or down, a read turn begun or ended) with `now` passed in ([`Now`]: the
//! monotonic instant and the wall clock in unix µs); storage goes through
//! the [`Storage`] trait, whose results are the storage outcomes. Its
//! output is a queue of [`Action`]s (open or close the transport, save the
//! QoS 2 ids, write the outbox, park or resume reading, read on) that the
//! shell (`Stream`) carries out against the socket and the registry.
//!
//! Owns: the socket's read state (read, yield after 16 reads, coalesce
//! under light traffic at QoS 0, pause while storage fails), commit at once
//! after a read turn when acks wait, releasing the session's acks after a
//! successful commit, the counters of the received messages, the commit
//! timing and the summary's [`Tally`]. Must not: read a clock, touch a
//! socket, mio or a file (the store is a trait), or parse packets.
//!
//! ```text
//!   shell --bytes/timer/up/down + Now--> Core --> Session --Message--> Chain --> Gate --> Storage
//!     ^                                   |  ^                                   |
//!     +--------- Action queue ------------+  +--- release_acks <-- committed ----+
//! ```

use crate::counters::Counters;
use crate::filter::{Chain, Verdict};
use crate::message::Message;
use crate::mqtt::session::{Delivery, Event, Session};
use crate::store::StoreError;
use crate::store::gate::{self, Gate, Store};
use crate::store::writer::BrokerSession;
use crate::summary::Tally;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Reads per loop turn before other work gets a chance (x 64 KiB).
pub const MAX_READS_PER_TURN: usize = 16;

/// A read turn smaller than this means light traffic: worth coalescing.
pub const COALESCE_BELOW: usize = 16 * 1024;

/// How often the filter chain is ticked, when some filter wants ticks.
pub const FILTER_TICK: Duration = Duration::from_secs(1);

/// The moment of an input, read by the shell: the core reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: deadlines.
    pub at: Instant,
    /// Wall clock, unix µs: reception timestamps, the sessions table.
    pub wall_us: i64,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the transport to the broker; then report
    /// [`Core::on_transport_up`] or [`Core::on_transport_down`].
    OpenTransport,
    /// Close the transport (a reconnect is already scheduled).
    CloseTransport,
    /// Save these QoS 2 ids awaiting PUBREL before the next write.
    SaveQos2Ids(Vec<u16>),
    /// Write the outbox ([`Core::outbox`]); a failure is
    /// [`Core::on_transport_down`].
    Flush,
    /// Take the socket out of the poll set until `until` (coalescing);
    /// report success with [`Core::parked`].
    Park {
        /// When reading resumes.
        until: Instant,
    },
    /// Put the parked socket back into the poll set and run a read turn (a
    /// failure to do so is [`Core::on_transport_down`]).
    Resume,
    /// Run a read turn: bytes wait in the socket (storage works again).
    ReadOn,
}

/// What the gate's store needs beyond [`Store`]: the open file (for the
/// tally at a failed stop), the `sessions` table, and the duration of the
/// last commit, which only the shell can measure.
pub trait Storage: Store {
    /// The file being written, if any.
    fn current_file(&self) -> Option<&Path>;
    /// A broker connection is up: a row of the `sessions` table.
    fn session_started(&mut self, s: BrokerSession);
    /// The connection ended at `at_us`, for the reason `why`.
    fn session_ended(&mut self, at_us: i64, why: &str);
    /// How long the last successful commit took, in µs, once.
    fn take_commit_us(&mut self) -> Option<u64>;
}

/// What a core call writes beside its actions: storage (through the gate)
/// and the stream's books, which the shell owns and the loop reads.
#[derive(Debug)]
pub struct Books<'a, S> {
    /// The writer (or a fake).
    pub store: &'a mut S,
    /// The self-report's counters.
    pub counters: &'a mut Counters,
    /// Reception-time span committed and files written (`--summary`).
    pub tally: &'a mut Tally,
}

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
pub enum ReadState {
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

/// One stream's rules, without I/O. See the module docs.
#[derive(Debug)]
pub struct Core {
    /// The stream's folder name, for log lines.
    name: String,
    /// The MQTT protocol state.
    session: Session,
    /// `exclude` (as the first filter) and `filters:`, between the session
    /// and the gate.
    chain: Chain,
    /// When the chain is ticked next (only if some filter wants ticks).
    filter_tick_at: Option<Instant>,
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
    /// What the shell must do next, in order.
    actions: VecDeque<Action>,
}

impl Core {
    /// A core for `session` whose messages go through `chain` into a gate
    /// that commits at most `commit_interval` after a row arrives;
    /// `coalesce` applies only when the subscription's `qos` is 0.
    pub fn new(
        name: &str,
        session: Session,
        chain: Chain,
        commit_interval: Duration,
        qos: u8,
        coalesce: Duration,
        now: Instant,
    ) -> Self {
        let filter_tick_at = chain.wants_ticks().then(|| now + FILTER_TICK);
        Core {
            name: name.to_owned(),
            session,
            chain,
            filter_tick_at,
            gate: Gate::new(name, commit_interval),
            read: ReadState::Closed,
            coalesce: if qos == 0 { coalesce } else { Duration::ZERO },
            events: Vec::with_capacity(64),
            granted: String::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing the shell must do, in order.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The MQTT protocol state (statistics, connection state).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Bytes for the broker, for [`Action::Flush`]: the shell writes from
    /// the front and advances past what the socket took.
    pub fn outbox(&mut self) -> &mut BytesMut {
        self.session.outbox()
    }

    /// The socket's read state.
    #[cfg(test)]
    pub fn read_state(&self) -> ReadState {
        self.read
    }

    /// The earliest monotonic deadline: session timers, the gate's commit
    /// or retry, the filter tick, the end of a coalescing pause.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.session.next_deadline(),
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

    /// Reading stopped early (yielded, or paused by storage): bytes may be
    /// waiting in the socket.
    pub fn stopped_early(&self) -> bool {
        self.read.has_unread()
    }

    /// The loop must come back at once to read on: reading stopped early,
    /// and not because storage fails (then the retry resumes reading).
    pub fn has_unread(&self) -> bool {
        self.read.has_unread() && self.gate.held() == 0
    }

    /// Reading is paused because storage fails: bytes waiting in the
    /// socket are a sign of life (see [`Core::on_timer`]).
    pub fn paused_by_storage(&self) -> bool {
        self.read == ReadState::PausedByStorage
    }

    /// Storage is failing (messages held, a retry pending).
    pub fn storage_failing(&self) -> bool {
        self.gate.is_retrying()
    }

    /// Space was freed: the storage retry is due at `now`.
    pub fn retry_storage_soon(&mut self, now: Instant) {
        self.gate.retry_soon(now);
    }

    /// Messages dropped by each filter since start, in chain order.
    pub fn filter_drops(&self) -> impl Iterator<Item = (&str, u64)> {
        self.chain.dropped()
    }

    /// The transport is connected: the session sends CONNECT.
    pub fn on_transport_up<S: Storage>(&mut self, t: Now, books: &mut Books<'_, S>) {
        self.session.on_transport_up(t.at, &mut self.events);
        self.handle_events(t, books);
    }

    /// The transport failed or was lost (`why` is logged).
    pub fn on_transport_down<S: Storage>(&mut self, t: Now, why: &str, books: &mut Books<'_, S>) {
        self.session.on_transport_down(t.at, why, &mut self.events);
        self.handle_events(t, books);
    }

    /// A read turn begins.
    pub fn begin_read_turn(&mut self) {
        self.read = ReadState::Reading;
    }

    /// Whether the shell may read once more in this turn, `reads` reads
    /// into it. No while storage fails and the connection is up (the bytes
    /// stay in the kernel: backpressure; a connection being set up is
    /// still read, so that its CONNACK is seen), and no after
    /// [`MAX_READS_PER_TURN`] (a broker sending faster than we store would
    /// keep the loop busy forever, starving commits, timers and the other
    /// streams; the loop comes back at once, [`Core::has_unread`]).
    pub fn may_read(&mut self, reads: usize) -> bool {
        if self.gate.held() > 0 && self.session.is_connected() {
            self.read = ReadState::PausedByStorage;
            return false;
        }
        if reads >= MAX_READS_PER_TURN {
            self.read = ReadState::Yielded;
            return false;
        }
        true
    }

    /// Bytes from the broker. One wall-clock timestamp per read: every
    /// message framed from the same bytes arrived at the same moment.
    pub fn on_bytes<S: Storage>(&mut self, bytes: &[u8], t: Now, books: &mut Books<'_, S>) {
        self.session.on_bytes(bytes, t.at, &mut self.events);
        self.handle_events(t, books);
    }

    /// The read turn is over: if acks wait, commit at once (so that the
    /// broker's in-flight window reopens), then write the outbox.
    pub fn end_read_turn<S: Storage>(&mut self, now: Instant, books: &mut Books<'_, S>) {
        if self.session.pending_acks() > 0 {
            self.commit(now, books);
        }
        self.flush();
    }

    /// After the read turn's writes: a turn of fewer than
    /// [`COALESCE_BELOW`] bytes that left the socket in the poll set means
    /// light traffic. Then the socket leaves the poll set for `coalesce`
    /// and what arrives meanwhile is read in one turn: one wake-up carries
    /// several messages, which is most of the CPU cost at low rates
    /// (reception timestamps of the later ones are up to `coalesce` late).
    pub fn coalesce_after_read_turn(&mut self, total: usize, now: Instant) {
        if total > 0
            && total < COALESCE_BELOW
            && self.read == ReadState::Reading
            && !self.coalesce.is_zero()
            && self.session.is_connected()
        {
            self.actions.push_back(Action::Park {
                until: now + self.coalesce,
            });
        }
    }

    /// The socket left the poll set for [`Action::Park`].
    pub fn parked(&mut self, until: Instant) {
        self.read = ReadState::Coalescing { until };
    }

    /// The end of a coalescing pause, if due: back into the poll set, and
    /// read ([`Action::Resume`]).
    pub fn end_coalescing(&mut self, now: Instant) {
        if matches!(self.read, ReadState::Coalescing { until } if now >= until) {
            self.read = ReadState::Reading;
            self.actions.push_back(Action::Resume);
        }
    }

    /// Time-driven work: session timers (connect, keep-alive, silence),
    /// then the gate's commit deadline and storage retry. `bytes_waiting`:
    /// while reading is paused by storage, bytes wait in the socket; the
    /// broker is there, and its silence is not taken for a dead
    /// connection.
    pub fn on_timer<S: Storage>(&mut self, t: Now, bytes_waiting: bool, books: &mut Books<'_, S>) {
        if self.read == ReadState::PausedByStorage && bytes_waiting {
            // An empty read: it decodes nothing, and the session's silence
            // clock restarts.
            self.session.on_bytes(&[], t.at, &mut self.events);
        }
        self.session.on_timer(t.at, &mut self.events);
        self.handle_events(t, books);
        let now = t.at;
        let actions = self.gate_call(books, now, |g, s, c| g.on_timer(s, now, c));
        if actions.recovered && self.read.has_unread() {
            self.actions.push_back(Action::ReadOn);
        }
    }

    /// Passes the time on to the filters, once a [`FILTER_TICK`].
    pub fn tick_filters(&mut self, t: Now) {
        if self.filter_tick_at.is_some_and(|at| t.at >= at) {
            self.chain.tick(t.wall_us);
            self.filter_tick_at = Some(t.at + FILTER_TICK);
        }
    }

    /// Write the outbox: a persistent QoS 2 session's ids awaiting PUBREL
    /// are saved first, so that the file is never behind the PUBREC and
    /// PUBCOMP that follow.
    pub fn flush(&mut self) {
        if let Some(ids) = self.session.qos2_ids_to_save() {
            self.actions.push_back(Action::SaveQos2Ids(ids));
        }
        self.actions.push_back(Action::Flush);
    }

    /// Commits what was inserted; on success, releases the session's acks.
    pub fn commit<S: Storage>(&mut self, now: Instant, books: &mut Books<'_, S>) {
        self.gate_call(books, now, |g, s, c| g.commit(s, now, c));
    }

    /// Finalises the open file (rotation deadline, SIGHUP, stop).
    pub fn rotate<S: Storage>(&mut self, now: Instant, books: &mut Books<'_, S>) {
        self.gate_call(books, now, |g, s, c| g.rotate(s, now, c));
    }

    /// Graceful stop: the connection ends in the `sessions` table, commit
    /// and acknowledge, finalise the file, DISCONNECT, write the outbox.
    pub fn shutdown<S: Storage>(&mut self, t: Now, books: &mut Books<'_, S>) {
        books.store.session_ended(t.wall_us, "attic stopped");
        let now = t.at;
        self.gate_call(books, now, |g, s, c| g.shutdown(s, now, c));
        self.session.shutdown();
        self.flush();
    }

    /// The shell closed the socket (end of the stop sequence).
    pub fn closed(&mut self) {
        self.read = ReadState::Closed;
    }

    /// Reacts to what the session emitted: commands become actions,
    /// messages are stored, oversize ones counted, read state follows the
    /// transport.
    fn handle_events<S: Storage>(&mut self, t: Now, books: &mut Books<'_, S>) {
        if self.events.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.events);
        // Handling an event may raise more: loop until none are left.
        loop {
            for ev in batch.drain(..) {
                self.on_event(ev, t, books);
            }
            if self.events.is_empty() {
                break;
            }
            std::mem::swap(&mut batch, &mut self.events);
        }
        // Keep the allocation for the next read.
        self.events = batch;
    }

    fn on_event<S: Storage>(&mut self, ev: Event, t: Now, books: &mut Books<'_, S>) {
        let ts = t.wall_us;
        match ev {
            Event::OpenTransport => {
                self.read = ReadState::Reading;
                self.actions.push_back(Action::OpenTransport);
            }
            Event::CloseTransport => {
                self.read = ReadState::Closed;
                let why = &self.session.stats().last_close;
                books.store.session_ended(ts, why);
                self.actions.push_back(Action::CloseTransport);
            }
            Event::Connected => self.connected(ts, books.store),
            Event::Message(d) => self.on_message(d, t, books),
            Event::Oversize { topic, payload_len } => {
                books.counters.received += 1;
                // Skipped bytes were received all the same.
                books.counters.received_bytes += payload_len as u64;
                books.counters.oversize += 1;
                log::warn!(
                    "[{}] skipped a message of {payload_len} bytes on {topic:?} (max-payload-bytes)",
                    self.name
                );
            }
        }
    }

    /// The subscriptions are in place: the connection goes into the
    /// `sessions` table of the files written while it lasts.
    fn connected<S: Storage>(&mut self, ts: i64, store: &mut S) {
        let stats = self.session.stats();
        if !stats.granted.is_empty() {
            let words: Vec<String> = stats
                .granted
                .iter()
                .map(|g| g.map_or_else(|| "refused".to_owned(), |q| q.to_string()))
                .collect();
            self.granted = words.join(",");
        }
        store.session_started(BrokerSession {
            connected_us: ts,
            disconnected_us: None,
            session_present: stats.session_present,
            granted_qos: self.granted.clone(),
            ended: None,
        });
    }

    fn on_message<S: Storage>(&mut self, d: Delivery, t: Now, books: &mut Books<'_, S>) {
        let ts = t.wall_us;
        books.counters.received += 1;
        books.counters.received_bytes += d.payload.len() as u64;
        books.counters.last_rx_us = ts;
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
            books.counters.filtered += 1;
            return;
        }
        let now = t.at;
        self.gate_call(books, now, |g, s, c| g.accept(s, msg, now, c));
    }

    /// Runs one gate call against the store (keeping the tally) and
    /// follows up on its answer: the commit time for the self-report, and
    /// the session's acks released after a commit.
    fn gate_call<S: Storage>(
        &mut self,
        books: &mut Books<'_, S>,
        now: Instant,
        call: impl FnOnce(&mut Gate, &mut Tallied<'_, S>, &mut Counters) -> gate::Actions,
    ) -> gate::Actions {
        let mut store = Tallied {
            store: &mut *books.store,
            tally: &mut *books.tally,
        };
        let actions = call(&mut self.gate, &mut store, books.counters);
        if let Some(took) = books.store.take_commit_us() {
            books.counters.commit_last_us = took;
            books.counters.commit_max_us = books.counters.commit_max_us.max(took);
        }
        if actions.release_acks {
            self.session.release_acks(now);
        }
        actions
    }
}

/// The stream's [`Storage`] as the gate's [`Store`], keeping the stream's
/// [`Tally`] in step (span of reception timestamps committed, files
/// written).
struct Tallied<'s, S> {
    store: &'s mut S,
    tally: &'s mut Tally,
}

impl<S> Tallied<'_, S> {
    /// Keeps the tally in step with a storage result.
    fn track<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::RolledBack { .. }) = r {
            self.tally.rolled_back();
        }
        r
    }
}

impl<S: Storage> Store for Tallied<'_, S> {
    fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        let r = self.store.insert(msg);
        if r.is_ok() {
            self.tally.inserted(msg.timestamp_us);
        }
        self.track(r)
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        let r = self.store.commit();
        self.track(r)?;
        self.tally.committed();
        Ok(())
    }
    fn uncommitted(&self) -> usize {
        self.store.uncommitted()
    }
    fn ends_period(&self, msg: &Message) -> bool {
        self.store.ends_period(msg)
    }
    fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError> {
        let r = self.store.rotate();
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
        if let Some(part) = self.store.current_file() {
            self.tally.file_written(part);
        }
        self.tally.rolled_back();
        self.store.abandon();
    }
}

#[cfg(test)]
mod tests;
