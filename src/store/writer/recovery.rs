//! Recovery at start: finalises the `.part` files a crash left behind,
//! keeping exactly their committed rows, and sets corrupt ones aside.
//!
//! Owns: [`recover_parts`]. Must not: touch a file of the running process
//! (it runs before any stream opens a file).

use super::finalise::{checkpoint_and_leave_wal, closing_meta, publish};
use super::{APPLICATION_ID, FORMAT_VERSION, META_SQL, SCHEMA, io_err, sidecar, sqlite_err};
use crate::layout::{self, Kind};
use crate::store::{Durability, StoreError};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// Finalises every `*.sqlite.part` in the day folders of `stream_dir` left
/// by a crash, keeping every committed row (SQLite replays the `-wal`), and
/// returns the final paths.
///
/// A zero-length `.part` without a `-wal` (a crash right at creation) is
/// removed. A valid database without the `data` table gets the schema and is
/// finalised empty. A file SQLite finds corrupt is renamed to
/// `.sqlite.corrupt` (never lost, never retried) and logged; any other
/// failure is logged and the `.part` left for the next start. Only a stream
/// folder that cannot be read is an error; a missing one is empty.
pub fn recover_parts(stream_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    super::tuning::configure_sqlite();
    let days = match fs::read_dir(stream_dir) {
        Ok(days) => days,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read stream folder", stream_dir, e)),
    };
    let mut parts = Vec::new();
    for day in days {
        let day = day.map_err(|e| io_err("read stream folder", stream_dir, e))?;
        if !day.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let day = day.path();
        let files = match fs::read_dir(&day) {
            Ok(files) => files,
            Err(e) => {
                log::warn!("recovery: cannot read {}: {e}", day.display());
                continue;
            }
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let kind = layout::parse(&file.file_name()).map(|n| n.kind);
            if kind == Some(Kind::Part) {
                parts.push(file.path());
            } else if is_init_leftover(&name) {
                // A crash while a new file was being made: it holds no rows.
                match fs::remove_file(file.path()) {
                    Ok(()) => log::info!("recovery: removed {}", file.path().display()),
                    Err(e) => log::warn!("recovery: cannot remove {}: {e}", file.path().display()),
                }
            }
        }
    }
    parts.sort();
    let mut done = Vec::new();
    for part in parts {
        match recover_one(&part) {
            Ok(Some(path)) => done.push(path),
            Ok(None) => log::info!("recovery: removed empty {}", part.display()),
            Err(e) if is_corrupt(&e) => {
                let to = layout::with_kind(&part, Kind::Corrupt);
                log::warn!("recovery: {e}; moving it to {}", to.display());
                if let Err(e) = fs::rename(&part, &to) {
                    log::warn!("recovery: cannot rename {}: {e}", part.display());
                }
                let wal = sidecar(&part, "-wal");
                if wal.exists() {
                    let _ = fs::rename(&wal, sidecar(&to, "-wal"));
                }
            }
            Err(e) => log::warn!("recovery: {e}; leaving it for the next start"),
        }
    }
    Ok(done)
}

/// `<16 digits>.sqlite.init` (and its `-wal`/`-shm`): a new file that was
/// still being made (see `open`), which never held a row.
fn is_init_leftover(name: &str) -> bool {
    let file = ["-wal", "-shm"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    layout::parse(std::ffi::OsStr::new(file)).is_some_and(|n| n.kind == Kind::Init)
}

/// Finalises one `.part`; `Ok(None)` if it was empty and removed.
fn recover_one(part: &Path) -> Result<Option<PathBuf>, StoreError> {
    let wal = sidecar(part, "-wal");
    let len = fs::metadata(part)
        .map_err(|e| io_err("inspect", part, e))?
        .len();
    let wal_len = fs::metadata(&wal).map_or(0, |m| m.len());
    if len == 0 && wal_len == 0 {
        for p in [part.to_path_buf(), wal, sidecar(part, "-shm")] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove empty file", &p, e)),
            }
        }
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(part, flags).map_err(|e| sqlite_err("open", part, e))?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(|e| sqlite_err("open", part, e))?;
    let rows = || -> rusqlite::Result<u64> {
        // Creates nothing on a complete Attic file; gives a file that died
        // before its schema was committed the schema of an empty one.
        conn.execute_batch(SCHEMA)?;
        let n: i64 = conn.query_row("SELECT count(*) FROM data", [], |r| r.get(0))?;
        let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        if id == 0 {
            conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
            conn.execute(META_SQL, ["format_version", FORMAT_VERSION])?;
            conn.execute(META_SQL, ["attic_version", env!("CARGO_PKG_VERSION")])?;
        }
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let rows = rows().map_err(|e| sqlite_err("recover", part, e))?;
    closing_meta(&conn, part, rows)?;
    conn.execute(META_SQL, ["recovered", "true"])
        .map_err(|e| sqlite_err("write closing meta", part, e))?;
    checkpoint_and_leave_wal(&conn, part)?;
    conn.close()
        .map_err(|(_, e)| sqlite_err("close", part, e))?;
    publish(part, Durability::PowerSafe, true).map(Some)
}

/// `true` for errors that mean SQLite cannot read the file as a database.
fn is_corrupt(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

#[cfg(test)]
mod tests {
    use super::is_init_leftover;

    #[test]
    fn only_attic_named_init_files_are_leftovers() {
        assert!(is_init_leftover("1795840552897613.sqlite.init"));
        assert!(is_init_leftover("1795840552897613.sqlite.init-wal"));
        assert!(is_init_leftover("1795840552897613.sqlite.init-shm"));
        assert!(!is_init_leftover("1795840552897613.sqlite.part"));
        assert!(!is_init_leftover("notes.sqlite.init"));
        assert!(!is_init_leftover("179584055289761.sqlite.init"));
    }
}
