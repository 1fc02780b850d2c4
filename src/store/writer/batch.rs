//! The rows of an open file on their way into SQLite: gathered in a
//! [`Batch`] and stored by multi-row INSERTs of [`BATCH_ROWS`] rows, each a
//! raw statement ([`InsertStmt`]) prepared once per file and bound without
//! copying the topic or the payload.
//!
//! Why: a one-row INSERT pays SQLite's whole statement cost per row (the
//! VDBE set-up and halt, a cursor opened and closed, the seek to the
//! table's last row), about as much as building and inserting the row
//! itself. One statement of 16 rows pays it once (`benches/instructions.rs`,
//! 20,000 QoS 0 messages: see docs/performance.md).
//!
//! A gathered row is *inserted* as far as the writer's caller is concerned
//! (counted in `uncommitted`); it reaches SQLite at the latest when the
//! transaction commits ([`Batch::flush`]). A failing statement stores none
//! of its rows (SQLite undoes a failed statement): they stay gathered and
//! go in with the next flush, unless SQLite rolled the whole transaction
//! back ([`Batch::clear`]).
//!
//! Owns: [`Batch`], [`InsertStmt`]. Must not: begin or commit a
//! transaction, or decide when to flush beyond a full batch.

use super::INSERT_SQL;
use super::failure;
use crate::message::Message;
use bytes::Bytes;
use rusqlite::{Connection, ffi};
use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

/// Rows per multi-row INSERT. A flush of fewer rows uses the statements of
/// [`STATEMENT_ROWS`] (at most 3 + 3 statements for the rest).
pub(super) const BATCH_ROWS: usize = 16;

/// The sizes of the kept statements, largest first.
const STATEMENT_ROWS: [usize; 3] = [BATCH_ROWS, 4, 1];

/// Columns bound per row (`INSERT_SQL`'s).
const COLUMNS: usize = 5;

/// One gathered row: the message's values, the topic as a range of
/// [`Batch::topics`], the payload shared with the read buffer.
#[derive(Debug)]
struct Row {
    timestamp_us: i64,
    topic_start: usize,
    topic_end: usize,
    payload: Bytes,
    qos: u8,
    retain: bool,
}

/// The rows gathered for the open transaction and the statements that
/// store them. Dropped (statements finalised) before the connection.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Gathered rows not yet in SQLite, in arrival order.
    rows: Vec<Row>,
    /// The topics of `rows`, one after the other: no allocation per row.
    topics: String,
    /// The kept statements for [`STATEMENT_ROWS`], prepared on first use.
    stmts: [Option<InsertStmt>; STATEMENT_ROWS.len()],
}

impl Batch {
    /// Gathers one row; true when the batch is full and must be flushed.
    pub(super) fn push(&mut self, msg: &Message) -> bool {
        let topic_start = self.topics.len();
        self.topics.push_str(&msg.topic);
        self.rows.push(Row {
            timestamp_us: msg.timestamp_us,
            topic_start,
            topic_end: self.topics.len(),
            payload: msg.payload.clone(),
            qos: msg.qos,
            retain: msg.retain,
        });
        self.rows.len() >= BATCH_ROWS
    }

    /// Takes back the last row gathered (its flush failed: the caller
    /// reports it as not stored).
    pub(super) fn pop(&mut self) {
        if let Some(row) = self.rows.pop() {
            self.topics.truncate(row.topic_start);
        }
    }

    /// Forgets every gathered row (SQLite rolled the transaction back).
    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.topics.clear();
    }

    /// Drops the statements (before the connection closes).
    pub(super) fn finalise_statements(&mut self) {
        self.stmts = Default::default();
    }

    /// Stores every gathered row into the open transaction, in order. On
    /// error the rows of the failed statement and those after it stay
    /// gathered; those before it are stored.
    pub(super) fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut done = 0;
        let result = self.flush_from(conn, &mut done);
        if done == self.rows.len() {
            self.clear();
        } else {
            self.rows.drain(..done);
        }
        result
    }

    fn flush_from(&mut self, conn: &Connection, done: &mut usize) -> rusqlite::Result<()> {
        while *done < self.rows.len() {
            let left = self.rows.len() - *done;
            let (slot, n) = STATEMENT_ROWS
                .iter()
                .copied()
                .enumerate()
                .find(|&(_, n)| n <= left)
                .unwrap_or((STATEMENT_ROWS.len() - 1, 1));
            if self.stmts[slot].is_none() {
                self.stmts[slot] = Some(InsertStmt::prepare(conn, &multi_row_sql(n))?);
            }
            let Some(stmt) = self.stmts[slot].as_ref() else {
                return Err(rusqlite::Error::InvalidQuery);
            };
            let rows = &self.rows[*done..*done + n];
            let topics = self.topics.as_str();
            let r = stmt.run(|b| {
                for (i, row) in rows.iter().enumerate() {
                    let first = i * COLUMNS;
                    b.int64(first + 1, row.timestamp_us);
                    b.text(
                        first + 2,
                        topics.get(row.topic_start..row.topic_end).unwrap_or(""),
                    );
                    b.blob(first + 3, &row.payload);
                    b.int64(first + 4, i64::from(row.qos));
                    b.int64(first + 5, i64::from(row.retain));
                }
            });
            r.map_err(|rc| sqlite_failure(conn, rc))?;
            *done += n;
        }
        Ok(())
    }
}

/// `INSERT_SQL` with `n` rows of values.
fn multi_row_sql(n: usize) -> String {
    if n == 1 {
        return INSERT_SQL.to_owned();
    }
    let head = INSERT_SQL
        .split_once("VALUES")
        .map_or(INSERT_SQL, |(head, _)| head);
    let mut sql = format!("{head}VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    sql
}

/// A kept INSERT of an open file, as a raw SQLite statement.
///
/// Bound with `SQLITE_STATIC`: SQLite reads the topic and the payload
/// where they are (the gathered topics, the read buffer) while the row is
/// built, instead of first copying each into a buffer of its own, as
/// rusqlite's binding does (`SQLITE_TRANSIENT`: a malloc, a copy and a free
/// per value and row). No pointer outlives [`run`](Self::run): the
/// bindings are cleared before it returns.
#[derive(Debug)]
pub(super) struct InsertStmt(NonNull<ffi::sqlite3_stmt>);

impl InsertStmt {
    /// Prepares `sql` on `conn`. The statement must be dropped before
    /// `conn` is closed (the `OpenFile` field order and `close` see to it).
    pub(super) fn prepare(conn: &Connection, sql: &str) -> rusqlite::Result<InsertStmt> {
        let mut stmt = std::ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is the open connection's; `sql` is valid for
        // `len` bytes; `stmt` is a valid out-pointer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &raw mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlite_failure(conn, rc));
        }
        NonNull::new(stmt)
            .map(InsertStmt)
            .ok_or(rusqlite::Error::InvalidQuery)
    }

    /// Binds with `bind`, steps once, resets and clears the bindings.
    /// `Err` is SQLite's result code (the first failed bind's, or the
    /// step's).
    pub(super) fn run(&self, bind: impl FnOnce(&mut Binder)) -> Result<(), c_int> {
        let mut b = Binder {
            stmt: self.0.as_ptr(),
            rc: ffi::SQLITE_OK,
        };
        bind(&mut b);
        let stmt = self.0.as_ptr();
        let mut rc = b.rc;
        if rc == ffi::SQLITE_OK {
            // SAFETY: a live statement of this connection, one thread.
            rc = match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                ffi::SQLITE_ROW => ffi::SQLITE_MISUSE,
                other => other,
            };
        }
        // SAFETY: as above. `sqlite3_reset` repeats the step's error code,
        // which `rc` holds already; clearing drops every borrowed pointer.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(rc)
        }
    }
}

impl Drop for InsertStmt {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalised once, here.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

/// Binds the parameters of one [`InsertStmt::run`]; remembers the first
/// failure. The borrowed values must outlive the `run` call (its closure
/// argument sees to it).
pub(super) struct Binder {
    stmt: *mut ffi::sqlite3_stmt,
    rc: c_int,
}

impl Binder {
    fn note(&mut self, rc: c_int) {
        if self.rc == ffi::SQLITE_OK {
            self.rc = rc;
        }
    }

    fn index(i: usize) -> c_int {
        c_int::try_from(i).unwrap_or(c_int::MAX)
    }

    pub(super) fn int64(&mut self, i: usize, v: i64) {
        // SAFETY: a live statement; an out-of-range index is an error code.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt, Self::index(i), v) };
        self.note(rc);
    }

    pub(super) fn null(&mut self, i: usize) {
        // SAFETY: as for `int64`.
        let rc = unsafe { ffi::sqlite3_bind_null(self.stmt, Self::index(i)) };
        self.note(rc);
    }

    pub(super) fn text(&mut self, i: usize, s: &str) {
        let len = ffi::sqlite3_uint64::try_from(s.len()).unwrap_or(u64::MAX);
        let ptr = if s.is_empty() { "\0" } else { s };
        // SAFETY: `s` outlives the step of this `run` (closure borrow) and
        // the binding is cleared before `run` returns; an empty text gets a
        // static non-null pointer.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt,
                Self::index(i),
                ptr.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_STATIC(),
                UTF8,
            )
        };
        self.note(rc);
    }

    /// A BLOB; an empty one is a zero-length BLOB, not NULL.
    pub(super) fn blob(&mut self, i: usize, b: &[u8]) {
        let rc = if b.is_empty() {
            // SAFETY: as for `int64`.
            unsafe { ffi::sqlite3_bind_zeroblob(self.stmt, Self::index(i), 0) }
        } else {
            let len = ffi::sqlite3_uint64::try_from(b.len()).unwrap_or(u64::MAX);
            // SAFETY: as for `text`.
            unsafe {
                ffi::sqlite3_bind_blob64(
                    self.stmt,
                    Self::index(i),
                    b.as_ptr().cast::<c_void>(),
                    len,
                    ffi::SQLITE_STATIC(),
                )
            }
        };
        self.note(rc);
    }
}

/// `SQLITE_UTF8` as the `unsigned char` encoding argument.
#[expect(clippy::cast_possible_truncation, reason = "SQLITE_UTF8 is 1")]
const UTF8: u8 = ffi::SQLITE_UTF8 as u8;

/// A result code of `conn` as rusqlite's error, with SQLite's message.
pub(super) fn sqlite_failure(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: the handle is the open connection's; `sqlite3_errmsg` returns
    // a NUL-terminated string owned by it, copied at once.
    let msg = unsafe {
        let m = ffi::sqlite3_errmsg(conn.handle());
        (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    failure(rc, msg.unwrap_or_else(|| ffi::code_to_str(rc).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::writer::{FileMeta, Writer};
    use crate::store::{Durability, StoreError};
    use crate::test_dir::TempDir;
    use rusqlite::OpenFlags;
    use std::time::Duration;

    fn msg(i: usize, payload: Vec<u8>) -> Message {
        Message {
            timestamp_us: 1_700_000_000_000_000 + i64::try_from(i).unwrap(),
            topic: format!("t/{}", i % 3),
            payload: Bytes::from(payload),
            qos: 0,
            retain: false,
            properties: None,
        }
    }

    /// The timestamps of the stored rows, in rowid order.
    fn stored(path: &std::path::Path) -> Vec<i64> {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut st = c
            .prepare("SELECT reception_timestamp FROM data ORDER BY rowid")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn every_row_count_reaches_the_file_in_order_at_commit() {
        for n in [0, 1, 3, 4, 15, 16, 17, 21, 37] {
            let tmp = TempDir::new("batch");
            let mut w = Writer::new(
                tmp.0.clone(),
                Duration::from_secs(3600),
                Durability::Normal,
                FileMeta {
                    stream_folder: "s".into(),
                    topics: vec!["#".into()],
                    broker: "b:1883".into(),
                    host: "h".into(),
                    mqtt5: false,
                },
            );
            let msgs: Vec<Message> = (0..n).map(|i| msg(i, vec![b'x'; i])).collect();
            for m in &msgs {
                w.insert(m).unwrap();
            }
            assert_eq!(w.uncommitted(), n, "gathered rows count as inserted");
            w.commit().unwrap();
            assert_eq!(w.uncommitted(), 0);
            let Some(path) = w.rotate().unwrap() else {
                assert_eq!(n, 0);
                continue;
            };
            let want: Vec<i64> = msgs.iter().map(|m| m.timestamp_us).collect();
            assert_eq!(stored(&path), want, "{n} rows");
            let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
            let (topic, len): (String, i64) = c
                .query_row(
                    "SELECT topic, length(payload) FROM data ORDER BY rowid DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(topic, format!("t/{}", (n - 1) % 3));
            assert_eq!(len, i64::try_from(n - 1).unwrap());
        }
    }

    #[test]
    fn rows_gathered_before_a_failed_flush_are_stored_once_and_in_order_when_space_returns() {
        let tmp = TempDir::new("batch");
        let mut w = Writer::new(
            tmp.0.clone(),
            Duration::from_secs(3600),
            Durability::Normal,
            FileMeta {
                stream_folder: "s".into(),
                topics: vec!["#".into()],
                broker: "b:1883".into(),
                host: "h".into(),
                mqtt5: false,
            },
        );
        for i in 0..40 {
            w.insert(&msg(i, vec![1; 10])).unwrap();
        }
        w.commit().unwrap();
        let conn = &w.open.as_ref().unwrap().conn;
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA max_page_count = {}", pages + 20))
            .unwrap();
        let mut accepted: Vec<i64> = (0..40).map(|i| msg(i, vec![]).timestamp_us).collect();
        let mut i = 40;
        let err = loop {
            let m = msg(i, vec![7; 1000]);
            match w.insert(&m) {
                Ok(()) => accepted.push(m.timestamp_us),
                Err(e) => break e,
            }
            i += 1;
        };
        assert!(
            i > 40 + BATCH_ROWS,
            "a full batch went in before the disk filled"
        );
        if let StoreError::RolledBack { .. } = err {
            accepted.truncate(40);
        }
        let conn = &w.open.as_ref().unwrap().conn;
        conn.execute_batch("PRAGMA max_page_count = 1073741823")
            .unwrap();
        let after = msg(i + 1, b"after".to_vec());
        w.insert(&after).unwrap();
        accepted.push(after.timestamp_us);
        w.commit().unwrap();
        let path = w.rotate().unwrap().unwrap();
        assert_eq!(stored(&path), accepted);
    }
}
