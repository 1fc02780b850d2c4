//! Reading an Attic file from outside the writer: a cursor over the rows of
//! one file that fall in a time window and pass a topic predicate, read in
//! chunks (for `attic export` and `attic replay`).
//!
//! Rows come in storage order (rowid), which is reception order. Only rows
//! that existed when the cursor was opened are read (the rowid bound), so a
//! file that keeps growing still ends.
//!
//! A finished `.sqlite` file keeps one read-only connection. A `.part` file
//! is being written by a running Attic: it is opened read-only for one
//! chunk at a time, with busy timeout 0, and closed again, so that no
//! connection of ours is open when the writer checkpoints and renames it.
//! A busy (or otherwise unreadable) `.part` file is skipped with a
//! warning, never waited for. This
//! module must not write to any file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::writer::BrokerSession;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;
use crate::message::Message;

/// Which topics a reader keeps.
pub type TopicPredicate = Box<dyn Fn(&str) -> bool>;

/// Rows fetched per chunk.
const CHUNK_ROWS: i64 = 2_048;
/// Payload bytes after which a chunk stops early, so a file of large
/// payloads does not fill memory.
const CHUNK_BYTES: usize = 4 << 20;

const CHUNK_SQL: &str = "SELECT rowid, reception_timestamp, topic, payload, qos, retain, NULL \
FROM data WHERE rowid > ?1 AND rowid <= ?2 AND reception_timestamp >= ?3 \
AND reception_timestamp < ?4 ORDER BY rowid LIMIT ?5";

/// [`CHUNK_SQL`] for a file of an MQTT 5 stream, which has the
/// `properties` column.
const CHUNK_SQL_V5: &str = "SELECT rowid, reception_timestamp, topic, payload, qos, retain, \
properties FROM data WHERE rowid > ?1 AND rowid <= ?2 AND reception_timestamp >= ?3 \
AND reception_timestamp < ?4 ORDER BY rowid LIMIT ?5";

/// The matching rows of one file.
pub struct FileReader {
    /// The file (for a `.part` file: its name while being written).
    path: PathBuf,
    /// `Some` for a finished file; `None` for a `.part` file, which is
    /// opened per chunk.
    conn: Option<Connection>,
    /// Window `[from, to)` on `reception_timestamp`.
    from_us: i64,
    /// See `from_us`.
    to_us: i64,
    /// Rows whose topic fails this are skipped (before their payload is copied).
    keep: TopicPredicate,
    /// Last rowid read.
    after: i64,
    /// Largest rowid when the cursor was opened.
    last: i64,
    /// Rows read and not yet taken.
    buffer: VecDeque<Message>,
    /// Every row up to `last` has been read.
    done: bool,
    /// The file's `data` table has the `properties` column (MQTT 5).
    has_properties: bool,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .field("after", &self.after)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    /// Opens the file and notes its last rowid. `Ok(None)`: a `.part` file
    /// that is busy or gone (warned about, skipped).
    pub fn open(
        path: &Path,
        is_part: bool,
        window: (i64, i64),
        keep: TopicPredicate,
    ) -> Result<Option<FileReader>, StoreError> {
        let mut cursor = FileReader {
            path: path.to_path_buf(),
            conn: None,
            from_us: window.0,
            to_us: window.1,
            keep,
            after: 0,
            last: 0,
            buffer: VecDeque::new(),
            done: false,
            has_properties: false,
        };
        let found = if is_part {
            cursor.with_part(|c| Ok((last_rowid(c)?, has_properties(c)?)))?
        } else if !path.exists() {
            // Deleted since it was listed (retention runs while we read).
            log::warn!("{}: deleted before it was read, skipped", path.display());
            None
        } else {
            let conn = open_ro(path).map_err(|e| sqlite_err(path, e))?;
            let last = last_rowid(&conn).map_err(|e| sqlite_err(path, e))?;
            let props = has_properties(&conn).map_err(|e| sqlite_err(path, e))?;
            cursor.conn = Some(conn);
            Some((last, props))
        };
        Ok(found.map(|(last, props)| {
            cursor.last = last;
            cursor.has_properties = props;
            cursor
        }))
    }

    /// The next matching row, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Message>, StoreError> {
        if self.buffer.is_empty() && !self.done {
            self.fill()?;
        }
        Ok(self.buffer.pop_front())
    }

    /// Reads chunks until one row matches or the file is exhausted.
    fn fill(&mut self) -> Result<(), StoreError> {
        while self.buffer.is_empty() && !self.done {
            let read = match self.conn.take() {
                Some(conn) => {
                    let r = self.read_chunk(&conn);
                    self.conn = Some(conn);
                    Some(r.map_err(|e| sqlite_err(&self.path, e))?)
                }
                None => self.with_part_mut(|me, conn| me.read_chunk(conn))?,
            };
            match read {
                Some(more) => self.done = !more,
                None => {
                    self.buffer.clear();
                    self.done = true;
                }
            }
        }
        Ok(())
    }

    /// Reads one chunk into the buffer; true if rows may remain.
    fn read_chunk(&mut self, conn: &Connection) -> rusqlite::Result<bool> {
        let sql = if self.has_properties {
            CHUNK_SQL_V5
        } else {
            CHUNK_SQL
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query((self.after, self.last, self.from_us, self.to_us, CHUNK_ROWS))?;
        let mut seen = 0;
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            seen += 1;
            self.after = r.get(0)?;
            let topic = r.get_ref(2)?.as_str()?;
            if !(self.keep)(topic) {
                continue;
            }
            let topic = topic.to_owned();
            let payload = match r.get_ref(3)? {
                rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                rusqlite::types::ValueRef::Text(t) => t.to_vec(),
                rusqlite::types::ValueRef::Null => Vec::new(),
                other => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        3,
                        "payload".into(),
                        other.data_type(),
                    ));
                }
            };
            bytes += payload.len() + topic.len();
            let qos: i64 = r.get(4)?;
            let retain: i64 = r.get(5)?;
            self.buffer.push_back(Message {
                timestamp_us: r.get(1)?,
                topic,
                payload: payload.into(),
                qos: u8::try_from(qos.clamp(0, 2)).unwrap_or(0),
                retain: retain != 0,
                properties: r.get(6)?,
            });
            if bytes >= CHUNK_BYTES {
                return Ok(true);
            }
        }
        // A short chunk: every row up to `last` has been seen (the window
        // condition may have skipped rowids, which is the same thing).
        Ok(seen == CHUNK_ROWS && self.after < self.last)
    }

    /// Runs `f` on a fresh read-only connection to the `.part` file, then
    /// closes it. `Ok(None)`: busy or gone, warned about.
    fn with_part<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.with_part_mut(|_, conn| f(conn))
    }

    fn with_part_mut<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &Connection) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        // The writer renames the file once finished: follow it.
        if !self.path.exists() {
            let finished = crate::layout::with_kind(&self.path, crate::layout::Kind::Finished);
            if finished.exists() {
                self.path = finished;
            } else {
                log::warn!("{}: gone while reading it, skipped", self.path.display());
                return Ok(None);
            }
        }
        let path = self.path.clone();
        let result = open_ro(&path).and_then(|conn| {
            let r = f(self, &conn);
            drop(conn);
            r
        });
        match result {
            Ok(v) => Ok(Some(v)),
            // A file being written may be locked, mid-checkpoint or renamed
            // under us: skip it rather than wait or fail the whole export.
            Err(e) => {
                let why = if is_busy(&e) { "busy" } else { "unreadable" };
                log::warn!("{}: {why}, skipped ({e})", path.display());
                Ok(None)
            }
        }
    }
}

/// A read-only connection that never waits for a lock.
/// The `sessions` rows of the file at `path`, in order (none for a file
/// made before the table existed). A `.part` file finished meanwhile is
/// read under its final name.
pub fn read_sessions(path: &Path) -> Result<Vec<BrokerSession>, StoreError> {
    let finished = crate::layout::with_kind(path, crate::layout::Kind::Finished);
    let path = if path.exists() { path } else { &finished };
    let conn = open_ro(path).map_err(|e| sqlite_err(path, e))?;
    super::writer::read_sessions(&conn).map_err(|e| sqlite_err(path, e))
}

fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    Ok(conn)
}

fn last_rowid(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(rowid), 0) FROM data", [], |r| r.get(0))
}

/// True if the file's `data` table has the `properties` column.
fn has_properties(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('data') WHERE name = 'properties'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn sqlite_err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        action: "read",
        path: path.to_path_buf(),
        source,
    }
}
