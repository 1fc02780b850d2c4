//! One open `.part` file: its connection, pragmas and schema, and the
//! rows and INSERT statements it keeps ([`Batch`]; an MQTT 5 file's
//! one-row INSERT), finalised before the connection.
//!
//! Owns: [`OpenFile`], [`open_file`]. Must not: decide when to commit or
//! rotate, or finalise (that is `finalise`).

use super::batch::{Batch, InsertStmt, sqlite_failure};
use super::mqtt5::{ADD_PROPERTIES_COLUMN, INSERT_SQL_V5, mqtt_version};
use super::{APPLICATION_ID, FORMAT_VERSION, failure, io_err, sidecar, sqlite_err, sync_dir};
use super::{FileMeta, META_SQL, SCHEMA, STATEMENT_CACHE, tuning};
use crate::layout::{self, Kind};
use crate::message::Message;
use crate::store::{Durability, StoreError};
use rusqlite::{Connection, OpenFlags, ffi};
use std::fs;
use std::path::{Path, PathBuf};

/// A `.part` file and its connection.
#[derive(Debug)]
pub(super) struct OpenFile {
    /// The MQTT 5 INSERT statement, prepared once per file and kept (see
    /// [`OpenFile::insert_stmt`]). Declared before `conn` so that it is
    /// dropped (finalised) first; `close` also drops it before closing.
    pub(super) insert: Option<InsertStmt>,
    /// The gathered rows and multi-row INSERTs of a 3.1.1 file; dropped
    /// before `conn` like `insert`.
    pub(super) batch: Batch,
    /// Boxed so that its address never moves under the statements.
    pub(super) conn: Box<Connection>,
    /// Path of the `.part` file.
    pub(super) path: PathBuf,
    /// End of this file's period: the first timestamp that belongs elsewhere.
    pub(super) period_end_us: i64,
    /// A `BEGIN` has been executed and not yet committed.
    pub(super) in_txn: bool,
    /// Rows inserted in the open transaction (gathered ones included).
    pub(super) uncommitted: usize,
    /// Rows committed to this file (for `row_count` at finalise).
    pub(super) committed: u64,
    /// The file has the MQTT 5 `properties` column.
    pub(super) mqtt5: bool,
    /// The `sessions` row of the connection now up, if written.
    pub(super) session_row: Option<i64>,
}

impl OpenFile {
    pub(super) fn insert(&mut self, msg: &Message) -> Result<(), StoreError> {
        if !self.in_txn {
            self.exec_cached("BEGIN")
                .map_err(|e| sqlite_err("begin", &self.path, e))?;
            self.in_txn = true;
        }
        if !self.mqtt5 {
            self.uncommitted += 1;
            if !self.batch.push(msg) {
                return Ok(());
            }
            return match self.batch.flush(&self.conn) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // This message is not stored; the rows before it stay
                    // gathered (or are gone with a rolled-back transaction).
                    self.batch.pop();
                    self.uncommitted -= 1;
                    Err(self.after_error("insert", e))
                }
            };
        }
        match self.insert_row(msg) {
            Ok(()) => {
                self.uncommitted += 1;
                Ok(())
            }
            Err(e) => Err(self.after_error("insert", e)),
        }
    }

    /// The INSERT statement of an MQTT 5 file, prepared on first use and
    /// then kept for the file's life (3.1.1 files insert through
    /// [`Batch`]).
    ///
    /// Why not `prepare_cached`: its LRU lookup hashes the SQL text and
    /// moves the statement out of and back into the cache on every row, and
    /// the cached statement clears its bindings when returned: together
    /// 4-5 % of Attic's CPU at full speed (perf, 200,000 x 64 B). A kept
    /// statement is only re-bound and stepped.
    pub(super) fn insert_stmt(&mut self) -> rusqlite::Result<&InsertStmt> {
        if self.insert.is_none() {
            self.insert = Some(InsertStmt::prepare(&self.conn, INSERT_SQL_V5)?);
        }
        match self.insert.as_ref() {
            Some(stmt) => Ok(stmt),
            None => Err(rusqlite::Error::InvalidQuery),
        }
    }

    /// One row of an MQTT 5 file.
    pub(super) fn insert_row(&mut self, msg: &Message) -> rusqlite::Result<()> {
        let stmt = self.insert_stmt()?;
        stmt.run(|b| {
            b.int64(1, msg.timestamp_us);
            b.text(2, &msg.topic);
            b.blob(3, &msg.payload);
            b.int64(4, i64::from(msg.qos));
            b.int64(5, i64::from(msg.retain));
            match msg.properties.as_deref() {
                Some(p) => b.text(6, p),
                None => b.null(6),
            }
        })
        .map_err(|rc| sqlite_failure(&self.conn, rc))
    }

    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        if !self.in_txn {
            return Ok(());
        }
        if let Err(e) = self.batch.flush(&self.conn) {
            return Err(self.after_error("insert", e));
        }
        match self.exec_cached("COMMIT") {
            Ok(()) => {
                self.committed += self.uncommitted as u64;
                self.uncommitted = 0;
                self.in_txn = false;
                Ok(())
            }
            Err(e) => Err(self.after_error("commit", e)),
        }
    }

    /// After a failed statement: did SQLite give up the whole transaction?
    pub(super) fn after_error(
        &mut self,
        action: &'static str,
        source: rusqlite::Error,
    ) -> StoreError {
        let path = self.path.clone();
        if self.in_txn && self.conn.is_autocommit() {
            self.batch.clear();
            let rows = std::mem::take(&mut self.uncommitted);
            self.in_txn = false;
            if rows > 0 {
                return StoreError::RolledBack {
                    action,
                    path,
                    rows,
                    source,
                };
            }
        }
        StoreError::Sqlite {
            action,
            path,
            source,
        }
    }

    pub(super) fn exec_cached(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.raw_execute().map(drop)
    }
}

/// Creates the day folder and a new `.part` file for a first message at
/// `created_us`, with pragmas, schema and meta committed.
pub(super) fn open_file(
    stream_dir: &Path,
    period_s: u64,
    durability: Durability,
    meta: &FileMeta,
    created_us: i64,
) -> Result<OpenFile, StoreError> {
    let mut created = layout::name_time(created_us);
    let day = stream_dir.join(layout::day_folder(created));
    fs::create_dir_all(&day).map_err(|e| io_err("create day folder", &day, e))?;
    // Never reuse a name (the clock may have stepped back): a `.sqlite` file
    // is never touched again, and a `.part` belongs to recovery.
    let taken = |t: i64| {
        [Kind::Finished, Kind::Part, Kind::Init, Kind::Corrupt]
            .into_iter()
            .any(|k| fs::symlink_metadata(day.join(layout::name(t, k))).is_ok())
    };
    while created < layout::NAME_MAX_US && taken(created) {
        created += 1;
    }
    let path = day.join(layout::part_name(created));
    // The file is made under a private name (`X.sqlite.init`), switched to
    // WAL and given its schema there, and only then renamed to `.part`.
    // Switching to WAL needs the file to itself: a reader (`sqlite3`,
    // `attic export --include-open`, a dashboard polling `*.part`) that
    // opened a fresh `.part` at that moment made its creation fail.
    // Once a file is in WAL mode, readers never block the writer's commits.
    let init = layout::with_kind(&path, layout::Kind::Init);
    for p in [init.clone(), sidecar(&init, "-wal"), sidecar(&init, "-shm")] {
        let _ = fs::remove_file(p); // a leftover holds no rows
    }
    // Created here first so that a failure names its cause (a read-only
    // file system, a full disk) instead of SQLite's "unable to open".
    fs::File::create(&init).map_err(|e| io_err("create", &init, e))?;
    let made = open_rw(&init)
        .and_then(|conn| init_file(&conn, durability, meta, created).map(|()| conn))
        .and_then(|conn| conn.close().map_err(|(_, e)| e));
    if let Err(e) = made {
        // Best effort: a half-made file holds no rows; free its space.
        for p in [init.clone(), sidecar(&init, "-wal"), sidecar(&init, "-shm")] {
            let _ = fs::remove_file(p);
        }
        return Err(sqlite_err("initialise", &path, e));
    }
    fs::rename(&init, &path).map_err(|e| io_err("rename", &init, e))?;
    if durability == Durability::PowerSafe {
        sync_dir(&day)?;
    }
    let conn = open_rw(&path)
        .and_then(|conn| {
            // Per-connection settings (the file's own ones persist).
            conn.execute_batch(&tuning::connection_pragmas(durability))?;
            Ok(conn)
        })
        .map_err(|e| sqlite_err("open", &path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(OpenFile {
        insert: None,
        batch: Batch::default(),
        conn: Box::new(conn),
        path,
        period_end_us: layout::period_end_us(created_us, period_s),
        in_txn: false,
        uncommitted: 0,
        committed: 0,
        mqtt5: meta.mqtt5,
        session_row: None,
    })
}

/// Opens (or creates) a file for writing. Never waits for a reader
/// (rusqlite's default is 5 s): a busy file is an error at once, and the
/// loop goes on.
fn open_rw(path: &Path) -> rusqlite::Result<Connection> {
    tuning::configure_sqlite();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    Ok(conn)
}

/// Pragmas, schema and meta of a new file, in one transaction.
pub(super) fn init_file(
    conn: &Connection,
    durability: Durability,
    meta: &FileMeta,
    created_us: i64,
) -> rusqlite::Result<()> {
    // page_size must be set before the first table exists (and before WAL).
    conn.execute_batch(&tuning::open_pragmas(durability, APPLICATION_ID))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failure(
            ffi::SQLITE_ERROR,
            format!("journal_mode is {mode}, not wal"),
        ));
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(super::sessions::SCHEMA)?;
    if meta.mqtt5 {
        tx.execute_batch(ADD_PROPERTIES_COLUMN)?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let topics = meta.topics.join("\n");
    let opened = created_us.to_string();
    let mut stmt = tx.prepare(META_SQL)?;
    for (key, value) in [
        ("format_version", FORMAT_VERSION),
        ("attic_version", version),
        ("stream_folder", meta.stream_folder.as_str()),
        ("topic_filters", topics.as_str()),
        ("broker", meta.broker.as_str()),
        ("host", meta.host.as_str()),
        ("opened_at_us", opened.as_str()),
        ("mqtt_version", mqtt_version(meta)),
    ] {
        stmt.execute([key, value])?;
    }
    drop(stmt);
    tx.commit()
}
