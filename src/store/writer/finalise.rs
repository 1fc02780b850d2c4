//! Finalising a file: meta, checkpoint, `journal_mode=DELETE`, the `topics`
//! index (`tuning::build_index`), close, rename `.sqlite.part` to
//! `.sqlite`, fsync the folder.
//!
//! Owns: [`finish`] and [`rename_final`]. Must not: insert rows or choose
//! when a file ends (the writer does).

use super::{META_SQL, failure, io_err, now_us, sqlite_err, sync_dir};
use crate::store::{Durability, StoreError};
use rusqlite::{Connection, ffi};
use std::fs;
use std::path::{Path, PathBuf};

/// Everything of finalising that happens on the open connection: meta,
/// checkpoint, leave WAL mode. Safe to repeat after a failure.
pub(super) fn finish(
    conn: &Connection,
    path: &Path,
    rows: u64,
    recovered: bool,
    durability: Durability,
) -> Result<(), StoreError> {
    if durability == Durability::Normal {
        // `normal` promises survival of a process crash, not of a power
        // cut; the checkpoint's fsyncs (10-30 ms each on an SD card or a
        // busy VM) would stall the loop at every rotation for a guarantee
        // this mode does not give. Without them the finalised pages sit in
        // the page cache, which a process crash does not lose.
        conn.execute_batch("PRAGMA synchronous = OFF")
            .map_err(|e| sqlite_err("finalise", path, e))?;
    }
    let meta = || -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        let closed = now_us().to_string();
        let rows = rows.to_string();
        tx.execute(META_SQL, ["closed_at_us", closed.as_str()])?;
        tx.execute(META_SQL, ["row_count", rows.as_str()])?;
        if recovered {
            tx.execute(META_SQL, ["recovered", "true"])?;
        }
        tx.commit()
    };
    meta().map_err(|e| sqlite_err("write closing meta", path, e))?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .map_err(|e| sqlite_err("checkpoint", path, e))?;
    if busy != 0 {
        let e = failure(ffi::SQLITE_BUSY, "checkpoint could not complete".into());
        return Err(sqlite_err("checkpoint", path, e));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|e| sqlite_err("leave WAL mode", path, e))?;
    if !mode.eq_ignore_ascii_case("delete") {
        let e = failure(ffi::SQLITE_BUSY, format!("journal_mode stayed {mode}"));
        return Err(sqlite_err("leave WAL mode", path, e));
    }
    super::tuning::build_index(conn).map_err(|e| sqlite_err("build index", path, e))
}

/// Renames a closed `X.sqlite.part` to `X.sqlite` and fsyncs its folder.
pub(super) fn rename_final(part: &Path, durability: Durability) -> Result<PathBuf, StoreError> {
    let done = part.with_extension("");
    fs::rename(part, &done).map_err(|e| io_err("rename", part, e))?;
    // Only `power-safe` needs the rename itself on disk now (see `finish`).
    if durability == Durability::PowerSafe
        && let Some(dir) = done.parent()
    {
        sync_dir(dir)?;
    }
    Ok(done)
}
