//! The stream core's rules, with no socket, no file and no clock: a real
//! [`Session`] fed broker bytes, and a store in memory that fails on demand.

use super::*;
use crate::filter::exclude::Exclude;
use crate::mqtt::framing::{Incoming, encode_incoming};
use crate::mqtt::session::SessionConfig;
use crate::store::gate::STORE_RETRY;
use bytes::Bytes;
use mqttbytes::v4::{self, Packet};
use rusqlite::ffi;

const INTERVAL: Duration = Duration::from_millis(100);
const COALESCE: Duration = Duration::from_millis(20);
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// The wall clock of the tests' inputs, unix µs.
const WALL: i64 = 1_700_000_000_000_000;

/// What the fake store does on its next calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fail {
    /// Works.
    No,
    /// Fails, the transaction stays open.
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
    /// `sessions` table: (connected, ended) in order.
    sessions: Vec<String>,
    /// What each successful commit "took", as the shell would measure.
    commit_us: u64,
    took: Option<u64>,
    abandoned: bool,
}

impl FakeStore {
    fn new() -> Self {
        FakeStore {
            pending: Vec::new(),
            committed: Vec::new(),
            insert_fails: Fail::No,
            commit_fails: Fail::No,
            sessions: Vec::new(),
            commit_us: 7,
            took: None,
            abandoned: false,
        }
    }

    fn error(&mut self, how: Fail) -> StoreError {
        let source = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_FULL), None);
        let path = PathBuf::from("fake");
        if how == Fail::RollBack {
            let rows = self.pending.len();
            self.pending.clear();
            return StoreError::RolledBack {
                action: "commit",
                path,
                rows,
                source,
            };
        }
        StoreError::Sqlite {
            action: "insert",
            path,
            source,
        }
    }

    fn committed_topics(&self) -> Vec<&str> {
        self.committed.iter().map(|m| m.topic.as_str()).collect()
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
        match self.commit_fails {
            Fail::No => {
                self.committed.append(&mut self.pending);
                self.took = Some(self.commit_us);
                Ok(())
            }
            how => Err(self.error(how)),
        }
    }
    fn uncommitted(&self) -> usize {
        self.pending.len()
    }
    fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError> {
        self.commit()?;
        Ok(Some(PathBuf::from("fake.sqlite")))
    }
    fn abandon(&mut self) {
        self.abandoned = true;
        self.pending.clear();
    }
}

impl Storage for FakeStore {
    fn current_file(&self) -> Option<&Path> {
        Some(Path::new("fake.part"))
    }
    fn session_started(&mut self, s: BrokerSession) {
        self.sessions.push(format!("up granted {}", s.granted_qos));
    }
    fn session_ended(&mut self, _at_us: i64, why: &str) {
        self.sessions.push(format!("down: {why}"));
    }
    fn take_commit_us(&mut self) -> Option<u64> {
        self.took.take()
    }
}

fn session_cfg(qos: u8, clean_session: bool) -> SessionConfig {
    SessionConfig {
        name: "test".into(),
        client_id: "attic-test".into(),
        user: None,
        password: None,
        keep_alive: KEEP_ALIVE,
        clean_session,
        filters: vec!["a/#".into()],
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

fn publish(topic: &str, qos: u8, pkid: u16) -> Vec<u8> {
    wire(Incoming::Publish {
        topic: topic.into(),
        payload: Bytes::from_static(b"12345"),
        qos,
        retain: false,
        dup: false,
        pkid,
    })
}

/// A core, its store and books, and the time of the tests.
struct Rig {
    core: Core,
    store: FakeStore,
    counters: Counters,
    tally: Tally,
    t0: Instant,
}

impl Rig {
    /// A core whose session is up (CONNACK and SUBACK seen), at QoS `qos`.
    fn connected(qos: u8) -> Self {
        Rig::with(qos, true, Chain::new())
    }

    fn with(qos: u8, clean_session: bool, chain: Chain) -> Self {
        let t0 = Instant::now();
        let session = Session::new(session_cfg(qos, clean_session), 1, t0);
        let core = Core::new("test", session, chain, INTERVAL, qos, COALESCE, t0);
        let mut rig = Rig {
            core,
            store: FakeStore::new(),
            counters: Counters::default(),
            tally: Tally::default(),
            t0,
        };
        rig.timer(t0, false);
        assert_eq!(rig.actions(), [Action::OpenTransport]);
        let t = rig.now(t0);
        let (core, mut books) = rig.parts();
        core.on_transport_up(t, &mut books);
        assert!(matches!(rig.sent()[..], [Packet::Connect(_)]));
        rig.bytes(
            &wire(Incoming::ConnAck {
                session_present: false,
                code: 0,
            }),
            t0,
        );
        let Packet::Subscribe(sub) = &rig.sent()[0] else {
            panic!("no SUBSCRIBE");
        };
        let pkid = sub.pkid;
        rig.bytes(
            &wire(Incoming::SubAck {
                pkid,
                granted: vec![Some(qos)],
            }),
            t0,
        );
        assert!(rig.core.session().is_connected());
        rig.actions();
        rig
    }

    fn now(&self, at: Instant) -> Now {
        let since = at.saturating_duration_since(self.t0).as_micros();
        Now {
            at,
            wall_us: WALL + i64::try_from(since).unwrap(),
        }
    }

    fn bytes(&mut self, b: &[u8], at: Instant) {
        let t = self.now(at);
        let (core, mut books) = self.parts();
        core.on_bytes(b, t, &mut books);
    }

    fn timer(&mut self, at: Instant, bytes_waiting: bool) {
        let t = self.now(at);
        let (core, mut books) = self.parts();
        core.on_timer(t, bytes_waiting, &mut books);
    }

    /// One read turn that reads `reads` (each one read of the socket) and
    /// ends; the actions it asks for.
    fn read_turn(&mut self, reads: &[Vec<u8>], at: Instant) -> Vec<Action> {
        self.core.begin_read_turn();
        let mut total = 0;
        for (i, b) in reads.iter().enumerate() {
            if !self.core.may_read(i) {
                break;
            }
            total += b.len();
            self.bytes(b, at);
        }
        let (core, mut books) = self.parts();
        core.end_read_turn(at, &mut books);
        self.core.coalesce_after_read_turn(total, at);
        self.actions()
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.next_action()).collect()
    }

    /// The packets in the outbox, taken.
    fn sent(&mut self) -> Vec<Packet> {
        let mut buf = self.core.outbox().split();
        let mut v = Vec::new();
        while !buf.is_empty() {
            v.push(v4::read(&mut buf, 1 << 20).unwrap());
        }
        v
    }

    /// The packet ids of the PUBACKs in the outbox, in order (taken).
    fn pubacks(&mut self) -> Vec<u16> {
        self.sent()
            .into_iter()
            .filter_map(|p| match p {
                Packet::PubAck(a) => Some(a.pkid),
                _ => None,
            })
            .collect()
    }
}

impl Rig {
    /// The core and the books it writes, borrowed apart.
    fn parts(&mut self) -> (&mut Core, Books<'_, FakeStore>) {
        (
            &mut self.core,
            Books {
                store: &mut self.store,
                counters: &mut self.counters,
                tally: &mut self.tally,
            },
        )
    }
}

#[test]
fn after_a_read_turn_with_acks_waiting_it_commits_at_once_and_releases_them_in_arrival_order() {
    let mut rig = Rig::connected(1);
    let t = rig.t0 + Duration::from_millis(1);
    // Before the turn ends, the rows are inserted and nothing is acked.
    rig.core.begin_read_turn();
    let mut both = publish("a/3", 1, 3);
    both.extend(publish("a/1", 1, 1));
    rig.bytes(&both, t);
    rig.bytes(&publish("a/2", 1, 2), t);
    assert_eq!(rig.store.pending.len(), 3);
    assert!(rig.pubacks().is_empty(), "no ack before the commit");
    // The end of the turn commits without waiting for commit-interval-ms.
    let (core, mut books) = rig.parts();
    core.end_read_turn(t, &mut books);
    assert_eq!(rig.store.committed_topics(), ["a/3", "a/1", "a/2"]);
    assert_eq!(rig.pubacks(), [3, 1, 2]);
    assert_eq!(rig.actions(), [Action::Flush]);
    assert_eq!(rig.counters.stored, 3);
    assert_eq!(rig.counters.stored_bytes, 15);
}

#[test]
fn at_qos_0_a_read_turn_leaves_the_commit_to_its_deadline() {
    let mut rig = Rig::connected(0);
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/x", 0, 0)], t);
    assert!(rig.store.committed.is_empty());
    assert!(rig.core.next_deadline().unwrap() <= t + INTERVAL);
    rig.timer(t + INTERVAL - Duration::from_millis(1), false);
    assert!(rig.store.committed.is_empty(), "not before its deadline");
    rig.timer(t + INTERVAL, false);
    assert_eq!(rig.store.committed_topics(), ["a/x"]);
}

#[test]
fn acks_are_released_only_by_a_successful_commit() {
    let mut rig = Rig::connected(1);
    rig.store.commit_fails = Fail::Keep;
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/1", 1, 1), publish("a/2", 1, 2)], t);
    assert!(rig.store.committed.is_empty());
    assert!(rig.pubacks().is_empty(), "a failed commit releases nothing");
    // The retry commits, and only then the acks go out, in order.
    rig.store.commit_fails = Fail::No;
    rig.timer(t + STORE_RETRY, false);
    assert_eq!(rig.store.committed_topics(), ["a/1", "a/2"]);
    assert_eq!(rig.pubacks(), [1, 2]);
}

#[test]
fn a_light_qos_0_read_turn_parks_the_socket_until_the_coalescing_pause_ends() {
    let mut rig = Rig::connected(0);
    let t = rig.t0 + Duration::from_millis(1);
    let until = t + COALESCE;
    assert_eq!(
        rig.read_turn(&[publish("a/x", 0, 0)], t),
        [Action::Flush, Action::Park { until }]
    );
    rig.core.parked(until);
    assert_eq!(rig.core.read_state(), ReadState::Coalescing { until });
    assert_eq!(rig.core.next_deadline(), Some(until));
    assert!(!rig.core.has_unread(), "the loop waits for the pause");
    rig.core.end_coalescing(until - Duration::from_millis(1));
    assert_eq!(rig.actions(), []);
    rig.core.end_coalescing(until);
    assert_eq!(rig.actions(), [Action::Resume]);
    assert_eq!(rig.core.read_state(), ReadState::Reading);
}

#[test]
fn a_socket_that_did_not_park_stays_reading() {
    let mut rig = Rig::connected(0);
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/x", 0, 0)], t);
    // The shell could not park (no socket): no `parked`, no pause.
    assert_eq!(rig.core.read_state(), ReadState::Reading);
    rig.core.end_coalescing(t + COALESCE);
    assert_eq!(rig.actions(), []);
}

#[test]
fn heavy_traffic_empty_turns_and_yielded_turns_do_not_coalesce() {
    let mut rig = Rig::connected(0);
    let t = rig.t0 + Duration::from_millis(1);
    let mut big = Vec::new();
    while big.len() < COALESCE_BELOW {
        big.extend(publish("a/x", 0, 0));
    }
    assert_eq!(rig.read_turn(&[big], t), [Action::Flush]);
    assert_eq!(rig.read_turn(&[], t), [Action::Flush]);
    let reads = vec![publish("a/x", 0, 0); MAX_READS_PER_TURN + 1];
    assert_eq!(rig.read_turn(&reads, t), [Action::Flush]);
    assert_eq!(rig.core.read_state(), ReadState::Yielded);
}

#[test]
fn acks_waiting_mean_no_coalescing_at_qos_1() {
    let mut rig = Rig::connected(1);
    let t = rig.t0 + Duration::from_millis(1);
    assert_eq!(rig.read_turn(&[publish("a/x", 1, 1)], t), [Action::Flush]);
    assert_eq!(rig.pubacks(), [1]);
}

#[test]
fn a_read_turn_yields_after_16_reads_and_the_loop_comes_back_at_once() {
    let mut rig = Rig::connected(0);
    rig.core.begin_read_turn();
    for reads in 0..MAX_READS_PER_TURN {
        assert!(rig.core.may_read(reads));
    }
    assert!(!rig.core.may_read(MAX_READS_PER_TURN));
    assert_eq!(rig.core.read_state(), ReadState::Yielded);
    assert!(rig.core.stopped_early());
    assert!(rig.core.has_unread());
}

#[test]
fn storage_failing_pauses_reading_and_storage_working_again_reads_on() {
    let mut rig = Rig::connected(1);
    rig.store.insert_fails = Fail::Keep;
    let t = rig.t0 + Duration::from_millis(1);
    // The first message is held; the next read is refused: backpressure.
    rig.read_turn(&[publish("a/1", 1, 1), publish("a/2", 1, 2)], t);
    assert_eq!(rig.core.read_state(), ReadState::PausedByStorage);
    assert!(rig.core.paused_by_storage());
    assert!(rig.core.stopped_early());
    assert!(!rig.core.has_unread(), "the retry, not the loop, resumes");
    assert!(rig.core.storage_failing());
    assert!(rig.pubacks().is_empty());
    assert_eq!(rig.counters.store_errors, 1);
    // Still failing at the retry: still paused, nothing to read on.
    rig.timer(t + STORE_RETRY, false);
    assert_eq!(rig.actions(), []);
    assert!(rig.core.paused_by_storage());
    // Storage works again: the held message is stored, acked, and the
    // stream reads on.
    rig.store.insert_fails = Fail::No;
    rig.timer(t + STORE_RETRY * 2, false);
    assert_eq!(rig.actions(), [Action::ReadOn]);
    assert_eq!(rig.store.committed_topics(), ["a/1"]);
    assert_eq!(rig.pubacks(), [1]);
    assert!(!rig.core.storage_failing());
    rig.read_turn(&[publish("a/2", 1, 2)], t + STORE_RETRY * 2);
    assert_eq!(rig.pubacks(), [2]);
}

#[test]
fn a_connection_being_set_up_is_read_while_storage_fails() {
    let mut rig = Rig::connected(1);
    rig.store.insert_fails = Fail::Keep;
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/1", 1, 1)], t);
    assert!(!rig.core.may_read(0));
    let tn = rig.now(t);
    let (core, mut books) = rig.parts();
    core.on_transport_down(tn, "the broker closed the connection", &mut books);
    assert_eq!(rig.actions(), [Action::CloseTransport]);
    assert_eq!(rig.core.read_state(), ReadState::Closed);
    // Not connected: its CONNACK must be read although messages are held.
    rig.core.begin_read_turn();
    assert!(rig.core.may_read(0));
}

#[test]
fn bytes_waiting_while_paused_by_storage_are_a_sign_of_life() {
    let mut rig = Rig::connected(1);
    rig.store.insert_fails = Fail::Keep;
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/1", 1, 1), publish("a/2", 1, 2)], t);
    assert!(rig.core.paused_by_storage());
    // Each second (the retry) the broker's bytes wait unread: no silence.
    let mut at = t;
    while at < t + KEEP_ALIVE * 3 {
        at += STORE_RETRY;
        rig.timer(at, true);
        assert!(
            !rig.actions().contains(&Action::CloseTransport),
            "closed at {:?}",
            at - t
        );
    }
    // Without bytes waiting, 1.5 keep-alives of silence close it.
    rig.timer(at + KEEP_ALIVE * 2, false);
    assert!(rig.actions().contains(&Action::CloseTransport));
}

#[test]
fn a_rolled_back_commit_inserts_the_kept_copies_again_and_holds_their_acks() {
    let mut rig = Rig::connected(1);
    rig.store.commit_fails = Fail::RollBack;
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/1", 1, 1), publish("a/2", 1, 2)], t);
    assert!(rig.store.pending.is_empty(), "SQLite undid the transaction");
    assert!(rig.store.committed.is_empty());
    assert!(rig.pubacks().is_empty(), "rolled-back rows are never acked");
    assert_eq!(rig.tally.span(), None);
    assert!(rig.core.session().is_connected(), "the connection stays up");
    // A message that comes meanwhile waits behind the copies.
    rig.core.begin_read_turn();
    rig.bytes(&publish("a/3", 1, 3), t);
    rig.store.commit_fails = Fail::No;
    rig.timer(t + STORE_RETRY, false);
    assert_eq!(rig.store.committed_topics(), ["a/1", "a/2", "a/3"]);
    assert_eq!(rig.pubacks(), [1, 2, 3]);
    assert_eq!(rig.counters.stored, 3);
}

#[test]
fn the_tally_follows_commits_and_rollbacks_and_commit_times_are_recorded() {
    let mut rig = Rig::connected(0);
    let t1 = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/x", 0, 0)], t1);
    assert_eq!(rig.tally.span(), None, "inserted, not committed");
    rig.timer(t1 + INTERVAL, false);
    let w1 = rig.now(t1).wall_us;
    assert_eq!(rig.tally.span(), Some((w1, w1)));
    assert_eq!(rig.counters.commit_last_us, 7);
    // A rolled-back transaction leaves the span as it was.
    let t2 = t1 + INTERVAL * 2;
    rig.read_turn(&[publish("a/x", 0, 0)], t2);
    rig.store.commit_fails = Fail::RollBack;
    rig.timer(t2 + INTERVAL, false);
    assert_eq!(rig.tally.span(), Some((w1, w1)));
    // Its copy is committed at the retry; the longest commit is kept.
    rig.store.commit_fails = Fail::No;
    rig.store.commit_us = 3;
    rig.timer(t2 + INTERVAL + STORE_RETRY, false);
    let w2 = rig.now(t2).wall_us;
    assert_eq!(rig.tally.span(), Some((w1, w2)));
    assert_eq!(rig.counters.commit_last_us, 3);
    assert_eq!(rig.counters.commit_max_us, 7);
}

#[test]
fn a_filtered_message_is_counted_not_stored_and_acked_after_the_next_commit() {
    let mut chain = Chain::new();
    chain.push("exclude", Box::new(Exclude::new(vec!["a/noise".into()])));
    let mut rig = Rig::with(1, true, chain);
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/noise", 1, 1), publish("a/x", 1, 2)], t);
    assert_eq!(rig.store.committed_topics(), ["a/x"]);
    assert_eq!(rig.pubacks(), [1, 2]);
    assert_eq!(rig.counters.received, 2);
    assert_eq!(rig.counters.filtered, 1);
    assert_eq!(
        rig.core.filter_drops().collect::<Vec<_>>(),
        [("exclude", 1)]
    );
}

#[test]
fn received_messages_are_counted_and_stamped_with_the_reads_wall_clock() {
    let mut rig = Rig::connected(0);
    let t = rig.t0 + Duration::from_millis(5);
    rig.read_turn(&[publish("a/x", 0, 0)], t);
    assert_eq!(rig.counters.received, 1);
    assert_eq!(rig.counters.received_bytes, 5);
    assert_eq!(rig.counters.last_rx_us, rig.now(t).wall_us);
    assert_eq!(rig.store.pending[0].timestamp_us, rig.now(t).wall_us);
}

#[test]
fn the_transport_going_down_closes_it_and_ends_the_sessions_row() {
    let mut rig = Rig::connected(1);
    assert_eq!(rig.store.sessions, ["up granted 1"]);
    let t = rig.now(rig.t0 + Duration::from_secs(1));
    let (core, mut books) = rig.parts();
    core.on_transport_down(t, "reset by peer", &mut books);
    assert_eq!(rig.actions(), [Action::CloseTransport]);
    assert_eq!(rig.core.read_state(), ReadState::Closed);
    assert_eq!(rig.store.sessions.len(), 2);
    assert!(rig.store.sessions[1].starts_with("down: "));
    // The reconnect opens the transport again, and reading follows it.
    let at = rig.core.next_deadline().unwrap();
    rig.timer(at, false);
    assert_eq!(rig.actions(), [Action::OpenTransport]);
    assert_eq!(rig.core.read_state(), ReadState::Reading);
}

/// A filter that keeps everything and records its ticks.
struct Ticks(std::rc::Rc<std::cell::RefCell<Vec<i64>>>);

impl crate::filter::Filter for Ticks {
    fn check(&mut self, _msg: &mut Message) -> Verdict {
        Verdict::Keep
    }
    fn wants_ticks(&self) -> bool {
        true
    }
    fn tick(&mut self, now_us: i64) {
        self.0.borrow_mut().push(now_us);
    }
}

#[test]
fn filters_are_ticked_once_a_second_with_the_wall_clock() {
    let ticks = std::rc::Rc::default();
    let mut chain = Chain::new();
    chain.push("ticks", Box::new(Ticks(std::rc::Rc::clone(&ticks))));
    let mut rig = Rig::with(0, true, chain);
    let t0 = rig.t0;
    assert!(rig.core.next_deadline().unwrap() <= t0 + FILTER_TICK);
    rig.core.tick_filters(rig.now(t0 + FILTER_TICK / 2));
    assert!(ticks.borrow().is_empty(), "not due yet");
    let t1 = t0 + FILTER_TICK;
    rig.core.tick_filters(rig.now(t1));
    rig.core.tick_filters(rig.now(t1 + FILTER_TICK / 2));
    assert_eq!(*ticks.borrow(), [rig.now(t1).wall_us]);
    rig.core.tick_filters(rig.now(t1 + FILTER_TICK));
    assert_eq!(ticks.borrow().len(), 2);
}

#[test]
fn a_persistent_qos_2_session_saves_its_ids_before_the_bytes_that_follow() {
    let mut rig = Rig::with(2, false, Chain::new());
    let t = rig.t0 + Duration::from_millis(1);
    let actions = rig.read_turn(&[publish("a/x", 2, 5)], t);
    assert_eq!(actions, [Action::SaveQos2Ids(vec![5]), Action::Flush]);
    assert!(matches!(rig.sent()[..], [Packet::PubRec(ref r)] if r.pkid == 5));
}

#[test]
fn shutdown_ends_the_sessions_row_commits_acks_and_disconnects() {
    let mut rig = Rig::connected(1);
    let t = rig.t0 + Duration::from_millis(1);
    rig.core.begin_read_turn();
    rig.bytes(&publish("a/1", 1, 1), t);
    let tn = rig.now(t);
    let (core, mut books) = rig.parts();
    core.shutdown(tn, &mut books);
    assert_eq!(rig.store.sessions.last().unwrap(), "down: attic stopped");
    assert_eq!(rig.store.committed_topics(), ["a/1"]);
    let sent = rig.sent();
    assert!(matches!(sent[..], [Packet::PubAck(ref a), Packet::Disconnect] if a.pkid == 1));
    assert_eq!(rig.actions(), [Action::Flush]);
}

#[test]
fn a_stop_while_storage_fails_gives_up_the_held_messages_unacked() {
    let mut rig = Rig::connected(1);
    rig.tally.record_files();
    rig.store.insert_fails = Fail::Keep;
    let t = rig.t0 + Duration::from_millis(1);
    rig.read_turn(&[publish("a/1", 1, 1)], t);
    let tn = rig.now(t);
    let (core, mut books) = rig.parts();
    core.shutdown(tn, &mut books);
    assert!(rig.store.abandoned);
    assert_eq!(rig.counters.lost, 1);
    assert_eq!(
        rig.tally.files(),
        [PathBuf::from("fake.part")],
        "left for recovery"
    );
    assert_eq!(rig.tally.span(), None);
    assert!(matches!(rig.sent()[..], [Packet::Disconnect]));
}
