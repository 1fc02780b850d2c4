//! One stream's SQLite writer: opens a `<created>.sqlite.part` file when the
//! first message of a period arrives, inserts rows in batched transactions,
//! and finalises the file (meta, checkpoint, `journal_mode=DELETE`, the
//! `topics` index, close, rename to `.sqlite`, fsync the folder) at
//! rotation. Also finalises the
//! `.part` files a crash left behind ([`recover_parts`]).
//!
//! It must not decide *when* to commit or rotate (the app's deadlines do),
//! read the clock for anything but the `closed_at_us` meta value, or panic:
//! every failure is a [`StoreError`] naming the action and the file.
//!
//! File life:
//!
//! ```text
//!  insert (no file) --open--> X.sqlite.part (+ -wal, -shm)  --rotate-->  X.sqlite
//!                                 |   crash                                 ^
//!                                 +--> recover_parts at next start ---------+
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::ffi;

mod batch;
mod finalise;
mod mqtt5;
mod open;
mod recovery;
mod sessions;
mod tuning;

pub use finalise::{finalise_closed, finalise_with, is_busy};
pub use recovery::recover_parts;
pub use sessions::{BrokerSession, read as read_sessions};

use super::{Durability, StoreError};
use crate::message::Message;
use open::{OpenFile, open_file};

/// `PRAGMA application_id` of every Attic file: "ATTC" in ASCII.
pub const APPLICATION_ID: i32 = 0x4154_5443;

/// The `format_version` meta value of the files this writer produces.
pub const FORMAT_VERSION: &str = "1";

/// The original's table and the key/value meta table (the `sessions`
/// table, [`sessions::SCHEMA`], follows them). The `topics` index is built
/// at finalisation ([`tuning::INDEX_SQL`]).
const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS data (reception_timestamp INTEGER NOT NULL, topic TEXT NOT NULL, \
payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

const INSERT_SQL: &str = "INSERT INTO data (reception_timestamp, topic, payload, qos, retain) \
VALUES (?1, ?2, ?3, ?4, ?5)";
const META_SQL: &str = "INSERT OR REPLACE INTO attic_meta (key, value) VALUES (?1, ?2)";

/// SQLite page cache of one connection at most, in KiB (with several
/// streams each gets a share of a process-wide budget: see
/// [`tuning::cache_kib`]). The whole process must stay under 8 MB RSS.
///
/// At QoS 0 a transaction holds a whole `commit-interval-ms` of messages
/// (50,000 rows at full speed), far more than the cache: SQLite then spills
/// dirty pages to the WAL one `pwrite` at a time and reads evicted index
/// pages back. 512 KiB (128 pages) is too small for the index's hot leaves
/// (one per topic) plus the table's right edge: raising it to 2 MiB cut the
/// insert cost from 3.2 to 2.8 us/row (CPU, `benches/insert.rs`, 50,000 rows
/// per commit, 50 topics; system time halved) and the `pread`s of a full
/// speed run by ~5x. Larger pages (8-16 KiB) measured within noise once the
/// WAL checkpoint size in bytes is kept equal, so the page size stays 4 KiB.
///
/// Since then the index is built at finalisation, and the gate commits
/// once its copies of uncommitted messages reach `MAX_KEPT_BYTES` (about
/// 3,000 small messages, ~90 dirty pages of the table's right edge), so a
/// transaction of the service fits in 1 MiB: going from 2 MiB to 1 MiB
/// changed the instructions per message by -0.3 % (`benches/instructions.rs`,
/// 4,103.8 -> 4,092.8 at QoS 0) and the peak RSS at full speed from 9.6 to
/// 9.0 MB (`INGEST_ONLY=saturate`, back-to-back runs).
const CACHE_KIB: u32 = 1024;

/// Statements a connection keeps in rusqlite's cache: begin, commit (the
/// insert is kept by [`OpenFile`] itself).
const STATEMENT_CACHE: usize = 8;

/// What every file of a stream records about where its rows came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The stream's folder name (prefix + suffix).
    pub stream_folder: String,
    /// The topic filters subscribed to.
    pub topics: Vec<String>,
    /// The broker as `host:port`.
    pub broker: String,
    /// The host name of the machine Attic runs on.
    pub host: String,
    /// The stream speaks MQTT 5: its files get the `properties` column.
    pub mqtt5: bool,
}

/// One stream's writer: at most one open `.part` file at a time.
#[derive(Debug)]
pub struct Writer {
    /// `<data-folder>/<stream folder>`: day folders are created inside.
    stream_dir: PathBuf,
    /// Rotation period in whole seconds (at least 1).
    period_s: u64,
    /// Chooses `synchronous=OFF` (normal) or `FULL` (power-safe).
    durability: Durability,
    /// Written into every file's `attic_meta`.
    meta: FileMeta,
    /// The file being written, if a message arrived in this period.
    open: Option<OpenFile>,
    /// This stream's claim on the process-wide page-cache budget.
    _cache: tuning::CacheShare,
    /// Closed files are left to a finaliser thread instead of being
    /// finished in the calling thread (see [`defer_finalising`](Self::defer_finalising)).
    defer: bool,
    /// Closed `.part` files waiting to be handed to the finaliser.
    closed: Vec<PathBuf>,
    /// The connection to the broker now up, recorded in the `sessions`
    /// table of every file opened while it lasts.
    live: Option<BrokerSession>,
}

impl Writer {
    /// A writer for the stream folder `stream_dir`. Does no I/O: the first
    /// file is created by the first [`insert`](Self::insert).
    ///
    /// Periods are whole seconds; a sub-second `period` is rounded down and
    /// a zero one is treated as 1 s.
    pub fn new(
        stream_dir: PathBuf,
        period: Duration,
        durability: Durability,
        meta: FileMeta,
    ) -> Writer {
        Writer {
            stream_dir,
            period_s: period.as_secs().max(1),
            durability,
            meta,
            open: None,
            _cache: tuning::CacheShare::join(),
            defer: false,
            closed: Vec::new(),
            live: None,
        }
    }

    /// Stores one message in the open transaction (not yet durable: see
    /// [`commit`](Self::commit)).
    ///
    /// Opens a file created at `msg.timestamp_us` if none is open, and
    /// rotates first if the message is past the open file's period. On error
    /// the message is not stored; a [`StoreError::RolledBack`] says that the
    /// uncommitted rows before it were lost as well. The writer stays usable.
    pub fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        if self.belongs_after_open_file(msg.timestamp_us) {
            self.rotate()?;
        }
        let file = match self.open {
            Some(ref mut file) => file,
            None => {
                let mut file = open_file(
                    &self.stream_dir,
                    self.period_s,
                    self.durability,
                    &self.meta,
                    msg.timestamp_us,
                )?;
                if let Some(s) = &self.live {
                    file.session_row = note_session(&file, sessions::insert(&file.conn, s));
                }
                self.open.insert(file)
            }
        };
        file.insert(msg)
    }

    /// Commits the open transaction, if any (a cheap no-op otherwise).
    ///
    /// If COMMIT fails and SQLite keeps the transaction open, the rows stay
    /// pending and a later `commit` retries them; ROLLBACK is never issued
    /// here, as it would drop rows that may still be saved. If SQLite itself
    /// rolled the transaction back (it does for I/O errors and a full disk
    /// during COMMIT), the error is [`StoreError::RolledBack`] with the count
    /// of lost rows, and the writer starts afresh with the next insert.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        match self.open.as_mut() {
            Some(file) => file.commit(),
            None => Ok(()),
        }
    }

    /// Rows inserted since the last successful commit.
    pub fn uncommitted(&self) -> usize {
        self.open.as_ref().map_or(0, |f| f.uncommitted)
    }

    /// Commits, then finalises the open file, if any, and returns its final
    /// `.sqlite` path.
    ///
    /// [`close`](Self::close) then [`finalise_closed`], in the calling
    /// thread (the loop runs the second half on a helper thread instead:
    /// see `store::finaliser`). If a step before the close fails, the file
    /// stays open and `rotate` can be called again; if a later step fails,
    /// the closed `.part` is left for [`recover_parts`].
    ///
    /// After [`defer_finalising`](Self::defer_finalising), the second half
    /// is left to the caller: the closed `.part` path is returned and also
    /// queued for [`take_closed`](Self::take_closed).
    pub fn rotate(&mut self) -> Result<Option<PathBuf>, StoreError> {
        let Some(part) = self.close()? else {
            return Ok(None);
        };
        if self.defer {
            self.closed.push(part.clone());
            return Ok(Some(part));
        }
        finalise_closed(&part, self.durability).map(Some)
    }

    /// From now on, a rotation (explicit, or a message past the period end)
    /// only closes the file; the caller finishes it off its own thread
    /// with [`finalise_closed`], taking the paths from
    /// [`take_closed`](Self::take_closed). The loop's writers run so.
    pub fn defer_finalising(&mut self) {
        self.defer = true;
    }

    /// The closed `.part` files not yet taken (only with
    /// [`defer_finalising`](Self::defer_finalising)).
    pub fn take_closed(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.closed)
    }

    /// Drops the open file without finalising it (shutdown after an error).
    /// Uncommitted rows are lost (they were never acknowledged); the `.part`
    /// stays for [`recover_parts`] at the next start.
    pub fn abandon(&mut self) {
        self.open = None;
    }

    /// True when a message stamped `ts_us` must go into a new file: it is
    /// at or past the open file's period end, or before its period start
    /// (the wall clock was stepped back: the new file is named and dated
    /// by the new time, and never takes an existing name).
    pub fn belongs_after_open_file(&self, ts_us: i64) -> bool {
        self.open.as_ref().is_some_and(|f| {
            let start = f.period_end_us.saturating_sub(self.period_us());
            ts_us >= f.period_end_us || ts_us < start
        })
    }

    /// The rotation period in µs.
    fn period_us(&self) -> i64 {
        i64::try_from(self.period_s)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .unwrap_or(i64::MAX)
    }

    /// A connection to the broker is up: a row in the open file's
    /// `sessions` table, and in every file opened while it lasts.
    pub fn session_started(&mut self, s: BrokerSession) {
        if let Some(f) = self.open.as_mut() {
            f.session_row = note_session(f, sessions::insert(&f.conn, &s));
        }
        self.live = Some(s);
    }

    /// The connection to the broker ended at `at_us`, for the reason `why`
    /// (words): its row in the open file says so.
    pub fn session_ended(&mut self, at_us: i64, why: &str) {
        let Some(mut s) = self.live.take() else {
            return;
        };
        s.disconnected_us = Some(at_us);
        s.ended = Some(why.to_owned());
        if let Some(f) = self.open.as_mut() {
            let id = f.session_row.take();
            note_session(f, sessions::end(&f.conn, id, &s).map(|()| 0));
        }
    }

    /// End of the open file's period: when the app must call
    /// [`rotate`](Self::rotate) even if no message comes. `None` when no file
    /// is open.
    pub fn period_end_us(&self) -> Option<i64> {
        self.open.as_ref().map(|f| f.period_end_us)
    }

    /// Path of the `.part` file being written, if any.
    pub fn current_file(&self) -> Option<&Path> {
        self.open.as_ref().map(|f| f.path.as_path())
    }
}

/// A `sessions` row written (its id) or not (logged: the data goes on).
fn note_session(f: &OpenFile, r: rusqlite::Result<i64>) -> Option<i64> {
    r.map_err(|e| {
        log::warn!(
            "{}: cannot record the broker connection in its sessions table: {e}",
            f.path.display()
        );
    })
    .ok()
}

/// `X.sqlite.part` + `-wal` -> `X.sqlite.part-wal` (SQLite's naming).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// fsync a folder so that a rename or a new file in it survives power loss.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync folder", dir, e))
}

fn failure(code: std::ffi::c_int, msg: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(msg))
}

fn sqlite_err(action: &'static str, path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn io_err(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "test data built from small loop counters"
)]
mod tests {
    use super::*;
    use crate::layout as rotation;
    use crate::test_dir::TempDir;
    use rusqlite::{Connection, ErrorCode, OpenFlags};

    /// 2023-11-14T22:13:20Z.
    const T0: i64 = 1_700_000_000_000_000;

    fn meta() -> FileMeta {
        FileMeta {
            stream_folder: "home".into(),
            topics: vec!["sensors/#".into(), "power/+".into()],
            broker: "localhost:1883".into(),
            host: "pi".into(),
            mqtt5: false,
        }
    }

    fn writer(dir: &Path, period_s: u64) -> Writer {
        Writer::new(
            dir.to_path_buf(),
            Duration::from_secs(period_s),
            Durability::Normal,
            meta(),
        )
    }

    fn msg(t: i64, topic: &str, payload: &[u8]) -> Message {
        Message {
            timestamp_us: t,
            topic: topic.into(),
            payload: bytes::Bytes::copy_from_slice(payload),
            qos: 1,
            retain: false,
            properties: None,
        }
    }

    fn open_ro(path: &Path) -> Connection {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }

    fn meta_of(conn: &Connection, key: &str) -> Option<String> {
        conn.query_row("SELECT value FROM attic_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .ok()
    }

    fn count(path: &Path) -> i64 {
        open_ro(path)
            .query_row("SELECT count(*) FROM data", [], |r| r.get(0))
            .unwrap()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_finalised_file_has_exactly_the_specified_schema_meta_and_application_id() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        w.insert(&msg(T0, "sensors/a", b"1")).unwrap();
        w.insert(&msg(T0 + 1, "power/b", b"2")).unwrap();
        let path = w.rotate().unwrap().unwrap();
        assert_eq!(path, tmp.0.join("2023-11-14").join(format!("{T0}.sqlite")));
        let conn = open_ro(&path);
        let sql: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_schema ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get::<_, Option<String>>(0))
            .unwrap()
            .filter_map(|s| s.unwrap())
            .collect();
        assert_eq!(
            sql,
            [
                "CREATE TABLE data (reception_timestamp INTEGER NOT NULL, topic TEXT NOT NULL, \
                 payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL)",
                "CREATE TABLE attic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "CREATE TABLE sessions (connected_us INTEGER NOT NULL, disconnected_us INTEGER, \
                 session_present INTEGER NOT NULL, granted_qos TEXT NOT NULL, ended TEXT)",
                // Built at finalisation, hence last.
                "CREATE INDEX topics ON data (topic)",
            ]
        );
        let id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        assert_eq!(id.to_be_bytes(), *b"ATTC");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(page, 4096);
        assert_eq!(meta_of(&conn, "format_version").as_deref(), Some("1"));
        assert_eq!(
            meta_of(&conn, "attic_version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(meta_of(&conn, "stream_folder").as_deref(), Some("home"));
        assert_eq!(
            meta_of(&conn, "topic_filters").as_deref(),
            Some("sensors/#\npower/+")
        );
        assert_eq!(meta_of(&conn, "broker").as_deref(), Some("localhost:1883"));
        assert_eq!(meta_of(&conn, "host").as_deref(), Some("pi"));
        assert_eq!(meta_of(&conn, "opened_at_us"), Some(T0.to_string()));
        assert_eq!(meta_of(&conn, "row_count").as_deref(), Some("2"));
        let closed: i64 = meta_of(&conn, "closed_at_us").unwrap().parse().unwrap();
        assert!(closed > T0);
        assert_eq!(meta_of(&conn, "recovered"), None);
    }

    #[test]
    fn rotate_renames_the_part_file_and_leaves_no_wal_or_shm() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        assert_eq!(w.rotate().unwrap(), None, "nothing open, nothing to rotate");
        w.insert(&msg(T0, "a", b"x")).unwrap();
        let part = w.current_file().unwrap().to_path_buf();
        assert!(part.to_string_lossy().ends_with(".sqlite.part"));
        assert!(sidecar(&part, "-wal").exists());
        assert_eq!(w.period_end_us(), Some(rotation::period_end_us(T0, 300)));
        w.rotate().unwrap();
        assert_eq!(w.current_file(), None);
        assert_eq!(w.period_end_us(), None);
        assert_eq!(
            files_in(&tmp.0.join("2023-11-14")),
            [format!("{T0}.sqlite")]
        );
    }

    #[test]
    fn commit_counts_and_clears_the_uncommitted_rows() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        w.commit().unwrap();
        assert_eq!(w.uncommitted(), 0);
        for i in 0..3 {
            w.insert(&msg(T0 + i, "a", b"x")).unwrap();
        }
        assert_eq!(w.uncommitted(), 3);
        w.commit().unwrap();
        assert_eq!(w.uncommitted(), 0);
        w.commit().unwrap();
        let part = w.current_file().unwrap().to_path_buf();
        assert_eq!(count(&part), 3, "committed rows are visible to a reader");
    }

    #[test]
    fn a_message_after_the_period_end_opens_a_new_file_in_its_day_folder() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 3600);
        // 2023-11-14T23:59:59.999999Z, then exactly midnight.
        let midnight = 1_700_006_400_000_000;
        w.insert(&msg(midnight - 1, "a", b"1")).unwrap();
        w.insert(&msg(midnight - 1, "a", b"2")).unwrap();
        assert_eq!(w.period_end_us(), Some(midnight));
        w.insert(&msg(midnight, "a", b"3")).unwrap();
        assert_eq!(w.period_end_us(), Some(midnight + 3_600_000_000));
        let second = w.rotate().unwrap().unwrap();
        let first = tmp
            .0
            .join("2023-11-14")
            .join(format!("{}.sqlite", midnight - 1));
        assert_eq!(count(&first), 2);
        assert_eq!(
            second,
            tmp.0.join("2023-11-15").join(format!("{midnight}.sqlite"))
        );
        assert_eq!(count(&second), 1);
    }

    #[test]
    fn a_file_name_already_taken_is_never_reused() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 1);
        w.insert(&msg(T0, "a", b"1")).unwrap();
        let first = w.rotate().unwrap().unwrap();
        // The clock stepped back: the same creation time again.
        w.insert(&msg(T0, "a", b"2")).unwrap();
        let second = w.rotate().unwrap().unwrap();
        assert_ne!(first, second);
        assert_eq!((count(&first), count(&second)), (1, 1));
    }

    #[test]
    fn a_clock_stepped_back_starts_a_new_file_dated_by_the_new_time_and_never_reuses_a_name() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        w.insert(&msg(T0, "a", b"1")).unwrap();
        assert!(!w.belongs_after_open_file(T0 + 1));
        // NTP steps the clock back three days.
        let back = T0 - 3 * 86_400_000_000;
        assert!(w.belongs_after_open_file(back));
        w.insert(&msg(back, "a", b"2")).unwrap();
        let first = tmp.0.join("2023-11-14").join(rotation::file_name(T0));
        assert_eq!(count(&first), 1, "the file before the step is finished");
        assert_eq!(
            w.current_file().unwrap(),
            tmp.0.join("2023-11-11").join(rotation::part_name(back)),
            "the new file is in the new day's folder"
        );
        // And forward again to the moment of the first file: a new name.
        w.insert(&msg(T0, "a", b"3")).unwrap();
        let third = w.rotate().unwrap().unwrap();
        assert_eq!(
            third,
            tmp.0.join("2023-11-14").join(rotation::file_name(T0 + 1))
        );
        assert_eq!((count(&first), count(&third)), (1, 1));
        assert_eq!(files_in(&tmp.0.join("2023-11-14")).len(), 2);
    }

    #[test]
    fn each_file_records_the_connections_that_were_up_while_it_was_open() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        let up = |at: i64, present: bool| BrokerSession {
            connected_us: at,
            disconnected_us: None,
            session_present: present,
            granted_qos: "1".into(),
            ended: None,
        };
        // Connected before the first message: the file gets the row when
        // it opens.
        w.session_started(up(T0 - 5, false));
        w.insert(&msg(T0, "a", b"1")).unwrap();
        w.commit().unwrap();
        w.session_ended(T0 + 10, "broker closed the connection");
        w.session_started(up(T0 + 20, true));
        w.insert(&msg(T0 + 30, "a", b"2")).unwrap();
        let first = w.rotate().unwrap().unwrap();
        // The connection outlives the file: the next file has it too.
        w.insert(&msg(T0 + 400_000_000, "a", b"3")).unwrap();
        w.session_ended(T0 + 400_000_010, "attic stopped");
        let second = w.rotate().unwrap().unwrap();
        let read = |p: &Path| read_sessions(&open_ro(p)).unwrap();
        let ended = |s: BrokerSession, at: i64, why: &str| BrokerSession {
            disconnected_us: Some(at),
            ended: Some(why.into()),
            ..s
        };
        assert_eq!(
            read(&first),
            [
                ended(up(T0 - 5, false), T0 + 10, "broker closed the connection"),
                up(T0 + 20, true),
            ]
        );
        assert_eq!(
            read(&second),
            [ended(up(T0 + 20, true), T0 + 400_000_010, "attic stopped")]
        );
        // Nothing is recorded while no connection is up.
        w.insert(&msg(T0 + 800_000_000, "a", b"4")).unwrap();
        let third = w.rotate().unwrap().unwrap();
        assert_eq!(read(&third), []);
    }

    #[test]
    fn payload_bytes_and_columns_round_trip_exactly() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 256) as u8).collect();
        let payloads: [&[u8]; 4] = [b"", b"\0a\0\xff\xfe", "é€".as_bytes(), &big];
        for (i, p) in payloads.iter().enumerate() {
            let mut m = msg(T0 + i as i64, "t/ü", p);
            m.qos = (i % 3) as u8;
            m.retain = i % 2 == 1;
            w.insert(&m).unwrap();
        }
        let path = w.rotate().unwrap().unwrap();
        let conn = open_ro(&path);
        let mut stmt = conn
            .prepare(
                "SELECT reception_timestamp, topic, payload, typeof(payload), qos, retain \
                 FROM data ORDER BY rowid",
            )
            .unwrap();
        let rows: Vec<(i64, String, Vec<u8>, String, i64, i64)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len(), payloads.len());
        for (i, (row, p)) in rows.iter().zip(payloads).enumerate() {
            assert_eq!(row.0, T0 + i as i64);
            assert_eq!(row.1, "t/ü");
            assert_eq!(row.2, p, "payload {i}");
            assert_eq!(row.3, "blob", "payload {i} is a BLOB, even when empty");
            assert_eq!(row.4, (i % 3) as i64);
            assert_eq!(row.5, i64::from(i % 2 == 1));
        }
        let text_topic: String = conn
            .query_row("SELECT typeof(topic) FROM data LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(text_topic, "text");
    }

    #[test]
    fn recovery_keeps_exactly_the_committed_rows_of_a_crashed_file() {
        let tmp = TempDir::new("writer-test");
        let live = tmp.0.join("live");
        let crashed = tmp.0.join("crashed");
        let mut w = writer(&live, 300);
        for i in 0..50 {
            w.insert(&msg(T0 + i, "a", &[i as u8; 64])).unwrap();
        }
        w.commit().unwrap();
        for i in 50..80 {
            w.insert(&msg(T0 + i, "a", b"tail")).unwrap();
        }
        // A crash now: what is on disk is the .part and its -wal as they are
        // (the uncommitted tail has no commit frame). Copy them aside; the
        // live writer's Drop would otherwise roll back and checkpoint.
        let part = w.current_file().unwrap().to_path_buf();
        let day = crashed.join("2023-11-14");
        fs::create_dir_all(&day).unwrap();
        let name = part.file_name().unwrap();
        fs::copy(&part, day.join(name)).unwrap();
        fs::copy(sidecar(&part, "-wal"), sidecar(&day.join(name), "-wal")).unwrap();
        w.abandon();

        let done = recover_parts(&crashed).unwrap();
        assert_eq!(done, [day.join(format!("{T0}.sqlite"))]);
        assert_eq!(files_in(&day), [format!("{T0}.sqlite")]);
        assert_eq!(count(&done[0]), 50);
        let conn = open_ro(&done[0]);
        assert_eq!(meta_of(&conn, "recovered").as_deref(), Some("true"));
        assert_eq!(meta_of(&conn, "row_count").as_deref(), Some("50"));
        assert_eq!(meta_of(&conn, "stream_folder").as_deref(), Some("home"));

        // The abandoned original is recovered the same way (its Drop rolled
        // the tail back).
        let done = recover_parts(&live).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(count(&done[0]), 50);
        assert_eq!(recover_parts(&live).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn recovery_removes_empty_parts_and_sets_corrupt_ones_aside() {
        let tmp = TempDir::new("writer-test");
        let day = tmp.0.join("2023-11-14");
        fs::create_dir_all(&day).unwrap();
        let part = |k: i64| day.join(rotation::part_name(k));
        let done_at = |k: i64| day.join(rotation::file_name(k));
        fs::write(part(1), b"").unwrap();
        fs::write(part(2), vec![0x5a; 8192]).unwrap();
        fs::write(done_at(0), b"complete files are not touched").unwrap();
        // Not a name of the layout: not Attic's, left alone.
        fs::write(day.join("5.sqlite.part"), b"foreign").unwrap();
        // A valid database without the data table.
        Connection::open(part(3))
            .unwrap()
            .execute_batch("CREATE TABLE other (x)")
            .unwrap();
        let mut w = writer(&tmp.0, 300);
        w.insert(&msg(T0, "a", b"x")).unwrap();
        w.commit().unwrap();
        let good = w.current_file().unwrap().to_path_buf();
        let copy = part(4);
        fs::copy(&good, &copy).unwrap();
        fs::copy(sidecar(&good, "-wal"), sidecar(&copy, "-wal")).unwrap();
        w.abandon();
        fs::remove_file(&good).unwrap();

        let done = recover_parts(&tmp.0).unwrap();
        assert_eq!(done, [done_at(3), done_at(4)]);
        assert_eq!(
            files_in(&day),
            [
                "0000000000000000.sqlite",
                "0000000000000002.sqlite.corrupt",
                "0000000000000003.sqlite",
                "0000000000000004.sqlite",
                "5.sqlite.part",
            ]
        );
        assert_eq!(count(&done_at(3)), 0);
        assert_eq!(count(&done_at(4)), 1);
        assert_eq!(recover_parts(&tmp.0.join("missing")).unwrap().len(), 0);
    }

    #[test]
    fn an_unwritable_folder_gives_a_store_error() {
        let tmp = TempDir::new("writer-test");
        let file = tmp.0.join("not-a-folder");
        fs::write(&file, b"").unwrap();
        let mut w = writer(&file.join("stream"), 300);
        let e = w.insert(&msg(T0, "a", b"x")).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Io {
                    action: "create day folder",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(w.current_file(), None);
        assert!(recover_parts(&file).is_err());
    }

    #[test]
    fn a_full_database_fails_the_insert_and_the_writer_carries_on_once_space_returns() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 300);
        w.insert(&msg(T0, "a", b"first")).unwrap();
        w.commit().unwrap();
        let conn = &w.open.as_ref().unwrap().conn;
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        // Simulate a full disk: the database may not grow any more.
        conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 2))
            .unwrap();
        let big = vec![7u8; 20_000];
        let mut stored = 1;
        let err = loop {
            match w.insert(&msg(T0 + stored, "a", &big)) {
                Ok(()) => stored += 1,
                Err(e) => break e,
            }
        };
        let full = |e: &StoreError| match e {
            StoreError::Sqlite { source, .. } | StoreError::RolledBack { source, .. } => {
                source.sqlite_error_code() == Some(ErrorCode::DiskFull)
            }
            StoreError::Io { .. } => false,
        };
        assert!(full(&err), "{err}");
        // Space returns: the pending rows (if SQLite kept them) and new ones commit.
        let kept = if matches!(err, StoreError::RolledBack { .. }) {
            1
        } else {
            stored
        };
        let conn = &w.open.as_ref().unwrap().conn;
        conn.execute_batch("PRAGMA max_page_count = 1073741823")
            .unwrap();
        w.insert(&msg(T0 + 100, "a", b"after")).unwrap();
        w.commit().unwrap();
        let path = w.rotate().unwrap().unwrap();
        assert_eq!(count(&path), kept + 1);
    }

    /// `cargo test --release --lib insert_rate -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement, not a check; run in release"]
    fn insert_rate_of_64_byte_messages() {
        let tmp = TempDir::new("writer-test");
        let mut w = writer(&tmp.0, 3600);
        let n = 200_000i64;
        let msgs: Vec<Message> = (0..n)
            .map(|i| msg(T0 + i, &format!("sensors/room{}/temp", i % 50), &[b'x'; 64]))
            .collect();
        let cpu0 = cpu_time();
        let t0 = std::time::Instant::now();
        for (i, m) in msgs.iter().enumerate() {
            w.insert(m).unwrap();
            if i % 1000 == 999 {
                w.commit().unwrap();
            }
        }
        w.commit().unwrap();
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        let path = w.rotate().unwrap().unwrap();
        assert_eq!(count(&path), n);
        println!(
            "{n} rows: wall {:.0} rows/s ({:.2} us/row), cpu {:.2} us/row (commit every 1000)",
            n as f64 / wall.as_secs_f64(),
            wall.as_secs_f64() * 1e6 / n as f64,
            cpu.as_secs_f64() * 1e6 / n as f64,
        );
    }

    fn cpu_time() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}
