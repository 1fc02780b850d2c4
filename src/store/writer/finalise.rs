//! The two halves of finalising a file, split so that only the cheap half
//! runs on the loop:
//!
//! ```text
//!  loop:    Writer::close      commit, closing meta, close (no checkpoint)
//!                  |  X.sqlite.part + -wal, closed
//!                  v
//!  helper:  finalise_closed    checkpoint(TRUNCATE), journal_mode=DELETE,
//!                              the `topics` index (`tuning::build_index`),
//!                              close, fsync X.sqlite.part, rename to X.sqlite,
//!                              fsync the folder (power-safe)
//! ```
//!
//! A reader holding the closed file makes `finalise_closed` fail at once
//! with a busy error ([`is_busy`]; busy timeout 0), and the caller tries
//! again later. The `.part` stays a complete database at every step, so a
//! crash or a power cut in between leaves a file that [`recover_parts`]
//! finishes at the next start.
//!
//! Owns: [`Writer::close`], [`finalise_closed`], [`is_busy`]. Must not:
//! decide when a file ends or where the finalising runs.
//!
//! [`recover_parts`]: super::recover_parts

use super::open::OpenFile;
use super::{META_SQL, Writer, failure, io_err, sqlite_err, sync_dir};
use crate::clock::now_us;
use crate::store::{Durability, StoreError};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, ffi};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Writer {
    /// Commits, writes the closing meta (`closed_at_us`, `row_count`) and
    /// closes the open file without checkpointing it; returns the closed
    /// `.part` path for [`finalise_closed`], or `None` when no file was
    /// open. Costs one small commit and a close: no checkpoint, no fsync
    /// (beyond the commit's own under `power-safe`).
    ///
    /// If a step fails, the file stays open and `close` can be called again.
    pub fn close(&mut self) -> Result<Option<PathBuf>, StoreError> {
        let Some(file) = self.open.as_mut() else {
            return Ok(None);
        };
        file.commit()?;
        closing_meta(&file.conn, &file.path, file.committed)?;
        // Leave the WAL for the finaliser: the close must not checkpoint on
        // the loop. Best effort: without it the close checkpoints here.
        let _ = file
            .conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        let Some(mut file) = self.open.take() else {
            return Ok(None);
        };
        // The statements belong to the connection: finalise them before
        // closing (the commit above flushed every gathered row).
        file.insert = None;
        file.batch.finalise_statements();
        let OpenFile {
            insert: _,
            batch,
            conn,
            path,
            period_end_us,
            in_txn,
            uncommitted,
            committed,
            mqtt5,
            session_row,
        } = file;
        if let Err((conn, source)) = (*conn).close() {
            self.open = Some(OpenFile {
                insert: None,
                batch,
                conn: Box::new(conn),
                path: path.clone(),
                period_end_us,
                in_txn,
                uncommitted,
                committed,
                mqtt5,
                session_row,
            });
            return Err(StoreError::Sqlite {
                action: "close",
                path,
                source,
            });
        }
        Ok(Some(path))
    }

    /// The durability of this writer's files (the finaliser needs it).
    pub fn durability(&self) -> Durability {
        self.durability
    }
}

/// `closed_at_us` and `row_count` (and `recovered`), in one transaction.
pub(super) fn closing_meta(conn: &Connection, path: &Path, rows: u64) -> Result<(), StoreError> {
    let meta = || -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        let closed = now_us().to_string();
        let rows = rows.to_string();
        tx.execute(META_SQL, ["closed_at_us", closed.as_str()])?;
        tx.execute(META_SQL, ["row_count", rows.as_str()])?;
        tx.commit()
    };
    meta().map_err(|e| sqlite_err("write closing meta", path, e))
}

/// Finishes a `.part` file that its writer has closed: checkpoint, leave
/// WAL mode, close, fsync the file, rename it to `.sqlite`, and under
/// `power-safe` fsync the folder. Returns the final path.
///
/// Blocks on the disk (the checkpoint and the fsync): run it off the loop.
/// Never waits for a reader: a file someone holds fails with an error for
/// which [`is_busy`] is true, and can be tried again later.
pub fn finalise_closed(part: &Path, durability: Durability) -> Result<PathBuf, StoreError> {
    finalise_with(part, durability, true)
}

/// [`finalise_closed`], with the fsync of the file before the rename
/// optional (only benchmarks turn it off, to measure what it costs).
#[doc(hidden)]
pub fn finalise_with(
    part: &Path,
    durability: Durability,
    sync_file: bool,
) -> Result<PathBuf, StoreError> {
    super::tuning::configure_sqlite();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(part, flags).map_err(|e| sqlite_err("open", part, e))?;
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| sqlite_err("open", part, e))?;
    checkpoint_and_leave_wal(&conn, part)?;
    conn.close()
        .map_err(|(_, e)| sqlite_err("close", part, e))?;
    publish(part, durability, sync_file)
}

/// The connection's part of finalising: checkpoint every committed page
/// into the database file and switch to a rollback journal, so that the
/// file is complete on its own (no `-wal`, no `-shm`). The pages are
/// written without fsync (`synchronous=OFF`): the one fsync of the whole
/// file follows in [`publish`]. Safe to repeat after a failure.
pub(super) fn checkpoint_and_leave_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch("PRAGMA synchronous = OFF")
        .map_err(|e| sqlite_err("finalise", path, e))?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| sqlite_err("checkpoint", path, e))?;
    if busy != 0 {
        let e = failure(
            ffi::SQLITE_BUSY,
            "checkpoint could not complete (a reader holds the file)".into(),
        );
        return Err(sqlite_err("checkpoint", path, e));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|e| sqlite_err("leave WAL mode", path, e))?;
    if !mode.eq_ignore_ascii_case("delete") {
        let e = failure(
            ffi::SQLITE_BUSY,
            format!("journal_mode stayed {mode} (a reader holds the file)"),
        );
        return Err(sqlite_err("leave WAL mode", path, e));
    }
    super::tuning::build_index(conn).map_err(|e| sqlite_err("build index", path, e))
}

/// fsync the closed `X.sqlite.part` (after its last write, before the
/// rename: a rename that reaches the disk before the data would leave a
/// torn `.sqlite`), rename it to `X.sqlite`, and under `power-safe` fsync
/// the folder so that the rename itself survives a power cut. Without the
/// folder fsync a power cut may undo the rename: the complete `.part` is
/// then finished again at the next start.
pub(super) fn publish(
    part: &Path,
    durability: Durability,
    sync_file: bool,
) -> Result<PathBuf, StoreError> {
    if sync_file {
        fs::File::open(part)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err("fsync", part, e))?;
    }
    let done = crate::layout::with_kind(part, crate::layout::Kind::Finished);
    fs::rename(part, &done).map_err(|e| io_err("rename", part, e))?;
    if durability == Durability::PowerSafe
        && let Some(dir) = done.parent()
    {
        sync_dir(dir)?;
    }
    Ok(done)
}

/// `true` for an error that only says another connection holds the file
/// (try again later), as opposed to a real failure.
pub fn is_busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
