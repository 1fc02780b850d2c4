//! The ack gate: the rule that matters most, ack-after-commit, as a sans-IO
//! state machine. Messages go in ([`Gate::accept`]); the gate inserts them
//! into a [`Store`], commits when the commit deadline is due, and answers
//! with [`Actions`]: release the session's acks (everything accepted so far
//! is committed), a file was closed, storage works again.
//!
//! Until its commit, every inserted message is also *kept* in memory. When
//! SQLite rolls the transaction back (a full disk, a read-only file
//! system), the kept messages go back in front of the *held* ones and are
//! inserted again once storage works: the connection stays up and no
//! message depends on the broker redelivering it (under a clean session it
//! would not). While storage fails, accepted messages are held in arrival
//! order (not inserted, not acknowledged) and the owner stops reading the
//! socket (backpressure to the broker); every [`STORE_RETRY`] the gate
//! inserts the held messages again and commits. The memory is bounded: past
//! [`MAX_KEPT_BYTES`] of kept messages the gate commits at once.
//!
//! Owns: the commit deadline, the retry deadline, the kept and held
//! messages, the stored/lost/error counts. Must not: read a clock (`now` is
//! an argument), touch a socket or see MQTT packets, or decide *what* is
//! stored (the filter chain did).
//!
//! ```text
//!            accept ok                        commit ok
//!   message --------> inserted + kept ----------------> ReleaseAcks
//!      |                 |  commit fails                   (in arrival order)
//!      | insert fails    v  (rolled back: kept -> held)
//!      +----------> failing: held, retry every STORE_RETRY --ok--> Recovered
//! ```

use super::StoreError;
use super::writer::Writer;
use crate::counters::Counters;
use crate::message::Message;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// After a storage error, the next attempt comes this much later.
pub const STORE_RETRY: Duration = Duration::from_secs(1);

/// Memory (payload, topic and bookkeeping) that the copies of uncommitted
/// messages may take before the gate commits early. Keeps a QoS 0 burst at
/// full speed within the process's 8 MB: measured on a debug build with
/// three QoS 0 floods (about 60,000 msg/s of 40-byte payloads), peak RSS
/// was 18.4 MB with a 4 MiB bound, 14.9 MB with 1 MiB, 14.4 MB with
/// 512 KiB. Only bursts reach it (about 3,000 small messages); ordinary
/// rates commit at `commit-interval-ms`.
pub const MAX_KEPT_BYTES: usize = 512 << 10;

/// What one kept message costs in memory, roughly.
fn kept_cost(msg: &Message) -> usize {
    msg.payload.len() + msg.topic.len() + std::mem::size_of::<Message>()
}

/// What the gate needs of storage. [`Writer`] is the real one; the tests
/// use a fake that fails on demand.
pub trait Store {
    /// Inserts one row into the open transaction (opening a file if needed).
    fn insert(&mut self, msg: &Message) -> Result<(), StoreError>;
    /// Commits the open transaction. On [`StoreError::RolledBack`] its rows
    /// are gone; on any other error they are still pending.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Rows inserted since the last successful commit.
    fn uncommitted(&self) -> usize;
    /// True when `msg` belongs outside the open file's period (after it,
    /// or before it after the clock stepped back). The gate then
    /// rotates first, counted; a writer left to rotate inside `insert`
    /// would commit and close the file behind the gate's back.
    fn ends_period(&self, _msg: &Message) -> bool {
        false
    }
    /// Commits and finalises the open file; its final path, if one was open.
    fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError>;
    /// Drops the open file without finalising it (stop after an error).
    fn abandon(&mut self);
}

impl Store for Writer {
    fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        Writer::insert(self, msg)
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        Writer::commit(self)
    }
    fn uncommitted(&self) -> usize {
        Writer::uncommitted(self)
    }
    fn ends_period(&self, msg: &Message) -> bool {
        self.belongs_after_open_file(msg.timestamp_us)
    }
    fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError> {
        Writer::rotate(self)
    }
    fn abandon(&mut self) {
        Writer::abandon(self);
    }
}

/// What the owner must do after a gate call. Default: nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Actions {
    /// Everything accepted so far is committed: release the session's
    /// queued acks now (they are in arrival order).
    pub release_acks: bool,
    /// Rows committed by this call.
    pub committed: usize,
    /// A file was finalised, with its final path.
    pub closed: Option<PathBuf>,
    /// Storage works again after a failure: reading may resume.
    pub recovered: bool,
}

/// The ack gate of one stream. See the module docs.
#[derive(Debug)]
pub struct Gate {
    /// The stream's name, for log lines.
    name: String,
    /// How long a row may stay uncommitted (`commit-interval-ms`).
    commit_interval: Duration,
    /// When the oldest uncommitted row must be committed.
    commit_due: Option<Instant>,
    /// While storage fails: when to try again.
    retry_at: Option<Instant>,
    /// Copies of the messages inserted since the last commit, in arrival
    /// order: if SQLite rolls the transaction back they are inserted again.
    kept: VecDeque<Message>,
    /// Memory taken by `kept` ([`kept_cost`]).
    kept_bytes: usize,
    /// Messages accepted but not inserted because storage failed (or whose
    /// insert was rolled back), in arrival order.
    held: VecDeque<Message>,
    /// The last rotation failed: its retries stay quiet until it works
    /// (a failing rotation logs once per change of state, not per retry).
    rotation_failing: bool,
    /// The current storage failure is already in the log: its retries
    /// stay quiet until storage works again.
    reported: bool,
    /// Storage problems logged (error lines), for the tests.
    logged: u64,
}

impl Gate {
    /// A gate that commits at most `commit_interval` after a row arrives.
    pub fn new(name: &str, commit_interval: Duration) -> Self {
        Gate {
            name: name.to_owned(),
            commit_interval,
            commit_due: None,
            retry_at: None,
            kept: VecDeque::new(),
            kept_bytes: 0,
            held: VecDeque::new(),
            rotation_failing: false,
            reported: false,
            logged: 0,
        }
    }

    /// Storage is failing: the owner must not read the socket (held
    /// messages wait), and rotation waits for the retry.
    pub fn is_failing(&self) -> bool {
        self.retry_at.is_some() || !self.held.is_empty()
    }

    /// A storage retry is scheduled (the retry, not the rotation deadline,
    /// drives the open file meanwhile).
    pub fn is_retrying(&self) -> bool {
        self.retry_at.is_some()
    }

    /// Space was freed (retention): the scheduled retry is due at `now`
    /// instead of after the retry interval.
    pub fn retry_soon(&mut self, now: Instant) {
        if self.retry_at.is_some() {
            self.retry_at = Some(now);
        }
    }

    /// Messages held because storage failed.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The gate's next deadline: the retry while storage fails, else the
    /// commit deadline. Never a commit deadline in the past while failing
    /// (that would make the loop spin with a zero timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.retry_at.or(self.commit_due)
    }

    /// A message to store (the filter chain kept it).
    pub fn accept<S: Store>(
        &mut self,
        store: &mut S,
        msg: Message,
        now: Instant,
        counters: &mut Counters,
    ) -> Actions {
        let mut actions = Actions::default();
        if self.held.is_empty() && store.ends_period(&msg) {
            // The loop has not handled the rotation deadline yet.
            actions = self.rotate(store, now, counters);
        }
        if !self.held.is_empty() {
            self.held.push_back(msg);
            return actions;
        }
        match store.insert(&msg) {
            Ok(()) => {
                self.keep(msg);
                if self.commit_due.is_none() {
                    self.commit_due = Some(now + self.commit_interval);
                }
                if self.kept_bytes > MAX_KEPT_BYTES {
                    self.commit_into(store, now, counters, &mut actions);
                }
            }
            Err(e) => {
                self.failed(now, &e, counters);
                self.held.push_back(msg);
            }
        }
        actions
    }

    /// Commits what was inserted; on success, asks for the acks to be
    /// released. Nothing is released while messages are held (acking now
    /// would acknowledge them).
    pub fn commit<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
    ) -> Actions {
        let mut actions = Actions::default();
        self.commit_into(store, now, counters, &mut actions);
        actions
    }

    /// Time-driven work: the storage retry, then the commit deadline.
    pub fn on_timer<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
    ) -> Actions {
        let mut actions = Actions::default();
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry(store, now, counters, &mut actions);
        }
        if self.retry_at.is_none() && self.commit_due.is_some_and(|t| now >= t) {
            self.commit_into(store, now, counters, &mut actions);
        }
        actions
    }

    /// Commits and finalises the open file (rotation deadline, SIGHUP,
    /// stop). While storage fails the file stays open until it works.
    pub fn rotate<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
    ) -> Actions {
        let mut actions = Actions::default();
        self.commit_into(store, now, counters, &mut actions);
        if self.is_failing() {
            return actions;
        }
        match store.rotate() {
            Ok(closed) => {
                if std::mem::take(&mut self.rotation_failing) {
                    log::info!("[{}] closing the file works again", self.name);
                }
                if let Some(path) = closed {
                    // Logged from its `Closed` file event, with every
                    // other file the writer closes.
                    counters.files_closed += 1;
                    actions.closed = Some(path);
                }
            }
            Err(e) => {
                let quiet = self.rotation_failing;
                self.rotation_failing = true;
                self.failed_quietly(now, &e, counters, quiet);
            }
        }
        actions
    }

    /// Graceful stop: commit and finalise; if storage still fails, the
    /// held messages are given up (never acknowledged: a persistent session
    /// keeps them at the broker) and counted as lost, and the file is left
    /// for recovery.
    pub fn shutdown<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
    ) -> Actions {
        let actions = self.rotate(store, now, counters);
        if self.is_failing() {
            // What is neither committed nor held is in the open
            // transaction, which abandoning drops.
            let given_up = self.held.len() + self.kept.len();
            if given_up == 0 {
                // Every message is committed; only closing the file failed.
                log::error!(
                    "[{}] stopping with the current file not finished (storage fails): it stays .part with every committed row and is finished at the next start",
                    self.name
                );
            } else {
                log::error!(
                    "[{}] stopping with {given_up} message(s) not stored (not acknowledged; the broker keeps QoS 1/2 ones for a persistent session)",
                    self.name,
                );
            }
            counters.lost += given_up as u64;
            self.held.clear();
            self.kept.clear();
            self.kept_bytes = 0;
            store.abandon();
        }
        actions
    }

    /// Keeps a copy of an inserted message until its commit.
    fn keep(&mut self, msg: Message) {
        self.kept_bytes += kept_cost(&msg);
        self.kept.push_back(msg);
    }

    fn commit_into<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
        actions: &mut Actions,
    ) {
        if !self.held.is_empty() {
            return;
        }
        let rows = store.uncommitted();
        if rows > 0 {
            if let Err(e) = store.commit() {
                self.failed(now, &e, counters);
                return;
            }
            counters.stored += rows as u64;
            counters.stored_bytes += self
                .kept
                .iter()
                .map(|m| m.payload.len() as u64)
                .sum::<u64>();
            actions.committed += rows;
        }
        self.kept.clear();
        self.kept_bytes = 0;
        self.commit_due = None;
        actions.release_acks = true;
    }

    /// Inserts the held messages again, in order, and commits.
    fn retry<S: Store>(
        &mut self,
        store: &mut S,
        now: Instant,
        counters: &mut Counters,
        actions: &mut Actions,
    ) {
        self.retry_at = None;
        while let Some(msg) = self.held.pop_front() {
            match store.insert(&msg) {
                Ok(()) => self.keep(msg),
                Err(e) => {
                    self.held.push_front(msg);
                    self.failed(now, &e, counters);
                    return;
                }
            }
        }
        self.commit_into(store, now, counters, actions);
        if self.retry_at.is_none() {
            self.reported = false;
            // After a failed rotation, the rotation that follows says
            // whether it works again.
            if !self.rotation_failing {
                log::info!("[{}] storage works again", self.name);
            }
            actions.recovered = true;
        }
    }

    /// A storage operation failed: count it and schedule the retry.
    fn failed(&mut self, now: Instant, e: &StoreError, counters: &mut Counters) {
        self.failed_quietly(now, e, counters, false);
    }

    /// [`failed`](Self::failed), without the log line when `quiet` (a
    /// retry of a failure already reported).
    fn failed_quietly(
        &mut self,
        now: Instant,
        e: &StoreError,
        counters: &mut Counters,
        quiet: bool,
    ) {
        counters.store_errors += 1;
        if let StoreError::RolledBack { .. } = e {
            // SQLite undid the open transaction: its rows are not stored
            // and their acks must never be sent. The kept copies go back in
            // front of the held messages, to be inserted again in order.
            while let Some(msg) = self.kept.pop_back() {
                self.held.push_front(msg);
            }
            self.kept_bytes = 0;
        }
        // The retry commits; a commit deadline left in the past would only
        // make the loop spin until then.
        self.commit_due = None;
        if !self.reported && !quiet {
            self.reported = true;
            self.logged += 1;
            log::error!(
                "[{}] cannot store: {e}; keeping the messages in memory and not acknowledging them, retrying every {} s",
                self.name,
                STORE_RETRY.as_secs()
            );
        }
        self.retry_at = Some(now + STORE_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    /// What the fake store does on its next calls.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fail {
        /// Works.
        No,
        /// Fails without losing the transaction (e.g. a busy or full disk
        /// on COMMIT where SQLite keeps the transaction open).
        Keep,
        /// Fails and SQLite rolls the transaction back.
        RollBack,
    }

    /// A store in memory: rows pending and committed, failures on demand.
    #[derive(Debug)]
    struct FakeStore {
        pending: Vec<Message>,
        committed: Vec<Message>,
        insert_fails: Fail,
        commit_fails: Fail,
        commits: usize,
        rotations: usize,
        rotate_fails: bool,
        abandoned: bool,
        /// Messages at or after this timestamp end the open period.
        period_end_us: Option<i64>,
    }

    impl FakeStore {
        fn new() -> Self {
            FakeStore {
                pending: Vec::new(),
                committed: Vec::new(),
                insert_fails: Fail::No,
                commit_fails: Fail::No,
                commits: 0,
                rotations: 0,
                rotate_fails: false,
                abandoned: false,
                period_end_us: None,
            }
        }

        fn error(&mut self, how: Fail) -> StoreError {
            let source = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None);
            let path = PathBuf::from("fake.sqlite.part");
            match how {
                Fail::RollBack => {
                    let rows = self.pending.len();
                    self.pending.clear();
                    StoreError::RolledBack {
                        action: "commit",
                        path,
                        rows,
                        source,
                    }
                }
                _ => StoreError::Sqlite {
                    action: "commit",
                    path,
                    source,
                },
            }
        }

        fn topics(rows: &[Message]) -> Vec<&str> {
            rows.iter().map(|m| m.topic.as_str()).collect()
        }
    }

    impl Store for FakeStore {
        fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
            match self.insert_fails {
                Fail::No => {
                    self.pending.push(msg.clone());
                    Ok(())
                }
                how => Err(self.error(how)),
            }
        }
        fn commit(&mut self) -> Result<(), StoreError> {
            self.commits += 1;
            match self.commit_fails {
                Fail::No => {
                    self.committed.append(&mut self.pending);
                    Ok(())
                }
                how => Err(self.error(how)),
            }
        }
        fn uncommitted(&self) -> usize {
            self.pending.len()
        }
        fn ends_period(&self, msg: &Message) -> bool {
            self.period_end_us
                .is_some_and(|end| msg.timestamp_us >= end)
        }
        fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError> {
            self.commit()?;
            if self.rotate_fails {
                return Err(self.error(Fail::Keep));
            }
            self.rotations += 1;
            Ok(Some(PathBuf::from("fake.sqlite")))
        }
        fn abandon(&mut self) {
            self.abandoned = true;
            self.pending.clear();
        }
    }

    fn msg(topic: &str) -> Message {
        Message {
            timestamp_us: 0,
            topic: topic.to_owned(),
            payload: bytes::Bytes::from_static(b"12345"),
            qos: 1,
            retain: false,
            properties: None,
        }
    }

    const INTERVAL: Duration = Duration::from_millis(100);

    #[test]
    fn acks_are_released_only_after_the_commit_at_the_deadline() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        assert_eq!(
            gate.accept(&mut store, msg("a"), t0, &mut c),
            Actions::default()
        );
        assert_eq!(
            gate.accept(&mut store, msg("b"), t0, &mut c),
            Actions::default()
        );
        assert_eq!(gate.next_deadline(), Some(t0 + INTERVAL));
        // Not due yet: nothing committed, nothing released.
        assert_eq!(gate.on_timer(&mut store, t0, &mut c), Actions::default());
        assert!(store.committed.is_empty());
        let a = gate.on_timer(&mut store, t0 + INTERVAL, &mut c);
        assert!(a.release_acks && a.committed == 2, "{a:?}");
        assert_eq!(FakeStore::topics(&store.committed), ["a", "b"]);
        assert_eq!((c.stored, c.stored_bytes), (2, 10));
        assert_eq!(gate.next_deadline(), None);
    }

    #[test]
    fn a_failed_commit_without_rollback_releases_nothing_and_retries_later_not_at_once() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        store.commit_fails = Fail::Keep;
        let due = t0 + INTERVAL;
        let a = gate.on_timer(&mut store, due, &mut c);
        assert!(!a.release_acks, "{a:?}");
        assert_eq!(c.store_errors, 1);
        // The next deadline is the retry, never the past commit deadline.
        assert_eq!(gate.next_deadline(), Some(due + STORE_RETRY));
        assert!(gate.is_failing());
        // Timers before the retry do not hammer the store.
        gate.on_timer(&mut store, due + Duration::from_millis(10), &mut c);
        assert_eq!(store.commits, 1);
        store.commit_fails = Fail::No;
        let a = gate.on_timer(&mut store, due + STORE_RETRY, &mut c);
        assert!(a.release_acks && a.recovered && a.committed == 1, "{a:?}");
        assert_eq!(FakeStore::topics(&store.committed), ["a"]);
        assert!(!gate.is_failing());
    }

    #[test]
    fn freed_space_brings_the_retry_forward_and_does_nothing_when_storage_works() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.retry_soon(t0);
        assert_eq!(gate.next_deadline(), None, "nothing to retry");
        gate.accept(&mut store, msg("a"), t0, &mut c);
        store.commit_fails = Fail::Keep;
        gate.on_timer(&mut store, t0 + INTERVAL, &mut c);
        assert!(gate.is_retrying());
        store.commit_fails = Fail::No;
        let t1 = t0 + INTERVAL + Duration::from_millis(5);
        gate.retry_soon(t1);
        assert_eq!(gate.next_deadline(), Some(t1));
        let a = gate.on_timer(&mut store, t1, &mut c);
        assert!(a.release_acks && a.recovered, "{a:?}");
        assert!(!gate.is_failing());
    }

    #[test]
    fn a_rollback_keeps_the_messages_inserts_them_again_and_loses_nothing() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        gate.accept(&mut store, msg("b"), t0, &mut c);
        store.commit_fails = Fail::RollBack;
        let a = gate.commit(&mut store, t0, &mut c);
        assert_eq!(a, Actions::default(), "nothing released, nothing else");
        assert!(store.pending.is_empty(), "SQLite dropped the rows");
        assert_eq!(gate.held(), 2, "the gate still has them");
        assert!(gate.is_failing());
        assert_eq!((c.lost, c.stored, c.store_errors), (0, 0, 1));
        // Messages after the rollback wait behind the rolled-back ones.
        gate.accept(&mut store, msg("c"), t0, &mut c);
        // Still failing at the first retry: rolled back again, kept again.
        let a = gate.on_timer(&mut store, t0 + STORE_RETRY, &mut c);
        assert!(!a.release_acks && !a.recovered, "{a:?}");
        assert_eq!(gate.held(), 3);
        store.commit_fails = Fail::No;
        let a = gate.on_timer(&mut store, t0 + 2 * STORE_RETRY, &mut c);
        assert!(a.recovered && a.release_acks && a.committed == 3, "{a:?}");
        assert_eq!(FakeStore::topics(&store.committed), ["a", "b", "c"]);
        assert_eq!((c.lost, c.stored, c.stored_bytes), (0, 3, 15));
    }

    #[test]
    fn a_rollback_on_insert_puts_the_kept_rows_before_the_failed_message() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        gate.accept(&mut store, msg("b"), t0, &mut c);
        store.insert_fails = Fail::RollBack;
        gate.accept(&mut store, msg("c"), t0, &mut c);
        assert_eq!(gate.held(), 3);
        store.insert_fails = Fail::No;
        let a = gate.on_timer(&mut store, t0 + STORE_RETRY, &mut c);
        assert!(a.release_acks && a.committed == 3, "{a:?}");
        assert_eq!(FakeStore::topics(&store.committed), ["a", "b", "c"]);
        assert_eq!(c.lost, 0);
    }

    #[test]
    fn a_storage_failure_is_logged_once_however_many_retries_fail() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let mut now = Instant::now();
        store.insert_fails = Fail::RollBack;
        gate.accept(&mut store, msg("a"), now, &mut c);
        for _ in 0..5 {
            now += STORE_RETRY;
            gate.on_timer(&mut store, now, &mut c);
        }
        assert_eq!((gate.logged, c.store_errors), (1, 6));
        store.insert_fails = Fail::No;
        now += STORE_RETRY;
        assert!(gate.on_timer(&mut store, now, &mut c).recovered);
        // A later failure is a new one: logged again.
        store.insert_fails = Fail::Keep;
        gate.accept(&mut store, msg("b"), now, &mut c);
        assert_eq!(gate.logged, 2);
    }

    #[test]
    fn kept_copies_past_the_bound_are_committed_at_once() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        let mut big = msg("big");
        big.payload = bytes::Bytes::from(vec![0u8; MAX_KEPT_BYTES / 2]);
        assert_eq!(
            gate.accept(&mut store, big.clone(), t0, &mut c),
            Actions::default()
        );
        let a = gate.accept(&mut store, big, t0, &mut c);
        assert!(a.release_acks && a.committed == 2, "{a:?}");
        assert_eq!((gate.kept.len(), gate.kept_bytes), (0, 0));
        assert_eq!(gate.next_deadline(), None);
    }

    #[test]
    fn a_stop_while_storage_fails_counts_exactly_what_was_never_committed_as_lost() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        gate.commit(&mut store, t0, &mut c);
        gate.accept(&mut store, msg("b"), t0, &mut c);
        store.commit_fails = Fail::RollBack;
        gate.commit(&mut store, t0, &mut c);
        gate.accept(&mut store, msg("c"), t0, &mut c);
        gate.shutdown(&mut store, t0, &mut c);
        assert_eq!((c.stored, c.lost), (1, 2), "a stored; b and c never were");
    }

    #[test]
    fn a_full_disk_holds_messages_in_order_and_stores_them_once_it_has_space() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        store.insert_fails = Fail::Keep;
        gate.accept(&mut store, msg("b"), t0, &mut c);
        assert!(gate.is_failing());
        // Later messages are held behind the failed one, in arrival order,
        // without touching the store.
        store.insert_fails = Fail::No;
        gate.accept(&mut store, msg("c"), t0, &mut c);
        assert_eq!(gate.held(), 2);
        assert_eq!(FakeStore::topics(&store.pending), ["a"]);
        // Nothing is released while messages are held: acking "a" now
        // would also acknowledge "b" and "c".
        assert!(!gate.commit(&mut store, t0, &mut c).release_acks);
        assert!(!gate.rotate(&mut store, t0, &mut c).release_acks);
        assert_eq!(store.rotations, 0, "rotation waits while storage fails");
        // Still full at the first retry.
        store.insert_fails = Fail::Keep;
        let a = gate.on_timer(&mut store, t0 + STORE_RETRY, &mut c);
        assert!(!a.release_acks && !a.recovered, "{a:?}");
        assert_eq!(gate.next_deadline(), Some(t0 + 2 * STORE_RETRY));
        store.insert_fails = Fail::No;
        let a = gate.on_timer(&mut store, t0 + 2 * STORE_RETRY, &mut c);
        assert!(a.release_acks && a.recovered && a.committed == 3, "{a:?}");
        assert_eq!(FakeStore::topics(&store.committed), ["a", "b", "c"]);
        assert_eq!(c.store_errors, 2);
    }

    #[test]
    fn rotation_commits_releases_and_counts_the_closed_file() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        let a = gate.rotate(&mut store, t0, &mut c);
        assert!(a.release_acks && a.closed.is_some(), "{a:?}");
        assert_eq!((store.rotations, c.files_closed, c.stored), (1, 1, 1));
    }

    #[test]
    fn a_rotation_that_keeps_failing_logs_once_not_at_every_retry() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let mut now = Instant::now();
        gate.accept(&mut store, msg("a"), now, &mut c);
        store.rotate_fails = true;
        for _ in 0..10 {
            // The loop: the rotation is due whenever no retry is pending.
            if !gate.is_retrying() {
                gate.rotate(&mut store, now, &mut c);
            }
            now = gate.next_deadline().unwrap_or(now) + Duration::from_millis(1);
            gate.on_timer(&mut store, now, &mut c);
        }
        assert_eq!(gate.logged, 1, "one error line for the whole outage");
        assert!(c.store_errors >= 5, "every try is still counted");
        assert_eq!(store.rotations, 0);
        store.rotate_fails = false;
        if !gate.is_retrying() {
            gate.rotate(&mut store, now, &mut c);
        } else {
            now = gate.next_deadline().unwrap() + Duration::from_millis(1);
            gate.on_timer(&mut store, now, &mut c);
            gate.rotate(&mut store, now, &mut c);
        }
        assert_eq!(store.rotations, 1);
        assert!(!gate.rotation_failing);
        // A new failure after it worked is a new change of state: logged.
        store.rotate_fails = true;
        gate.accept(&mut store, msg("b"), now, &mut c);
        gate.rotate(&mut store, now, &mut c);
        assert_eq!(gate.logged, 2);
    }

    #[test]
    fn a_message_past_the_open_period_rotates_first_and_the_closed_file_is_counted() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        gate.accept(&mut store, msg("a"), t0, &mut c);
        gate.accept(&mut store, msg("b"), t0, &mut c);
        store.period_end_us = Some(0);
        let a = gate.accept(&mut store, msg("next"), t0, &mut c);
        assert!(a.release_acks && a.closed.is_some(), "{a:?}");
        assert_eq!((store.rotations, c.files_closed, c.stored), (1, 1, 2));
        assert_eq!(
            store.uncommitted(),
            1,
            "the new message is in the next file"
        );
    }

    #[test]
    fn a_stop_while_storage_fails_abandons_the_file_and_releases_nothing() {
        let (mut gate, mut store, mut c) = (
            Gate::new("t", INTERVAL),
            FakeStore::new(),
            Counters::default(),
        );
        let t0 = Instant::now();
        store.insert_fails = Fail::Keep;
        gate.accept(&mut store, msg("a"), t0, &mut c);
        let a = gate.shutdown(&mut store, t0, &mut c);
        assert!(!a.release_acks, "{a:?}");
        assert!(store.abandoned);
    }
}
