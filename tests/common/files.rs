//! Reads what Attic wrote: lists `.sqlite` (finished) and `.sqlite.part`
//! (being written) files, reads their rows read-only, and waits for rows.
//!
//! Readers are opened for a moment and closed again: a reader holding a
//! `.part` file open would delay Attic's final checkpoint and rename.

use super::{wait_for, wait_until};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One row of the `data` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `reception_timestamp`, unix microseconds.
    pub ts: i64,
    /// `topic`.
    pub topic: String,
    /// `payload`, bytes exactly as received.
    pub payload: Vec<u8>,
    /// `qos`.
    pub qos: i64,
    /// `retain` (stored as 0/1).
    pub retain: bool,
}

/// Every file under `dir`, recursively, sorted by path ([] if `dir` is missing).
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// Finished files (`*.sqlite`), sorted (names are creation times, so by time).
pub fn finished_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".sqlite")
}

/// Files being written (`*.sqlite.part`), sorted.
pub fn part_files(dir: &Path) -> Vec<PathBuf> {
    files_ending(dir, ".sqlite.part")
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    list_files(dir)
        .into_iter()
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(suffix)))
        .collect()
}

/// Opens an SQLite file read-only (URI `?mode=ro`, so WAL files being
/// written are readable).
pub fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let uri = format!("file:{}?mode=ro", path.display());
    let c = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_millis(200))?;
    Ok(c)
}

/// All rows of one file in insertion order; panics naming the file on error.
pub fn read_rows(path: &Path) -> Vec<Row> {
    try_read_rows(path).unwrap_or_else(|e| panic!("cannot read rows of {}: {e}", path.display()))
}

fn try_read_rows(path: &Path) -> rusqlite::Result<Vec<Row>> {
    let c = open_ro(path)?;
    let mut stmt = c.prepare(
        "SELECT reception_timestamp, topic, payload, qos, retain FROM data ORDER BY rowid",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                ts: r.get(0)?,
                topic: r.get(1)?,
                payload: r.get(2)?,
                qos: r.get(3)?,
                retain: r.get::<_, i64>(4)? != 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<Row>>>()?;
    Ok(rows)
}

/// Rows of every finished file under `data_dir`, files in name (time) order.
pub fn all_rows(data_dir: &Path) -> Vec<Row> {
    finished_files(data_dir)
        .iter()
        .flat_map(|p| read_rows(p))
        .collect()
}

/// `count(*)` of one file, `Err` if it cannot be read right now.
pub fn count_rows(path: &Path) -> rusqlite::Result<usize> {
    let c = open_ro(path)?;
    c.query_row("SELECT count(*) FROM data", [], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
}

/// Rows visible now in finished and `.part` files. A file caught in the
/// middle of its rename (both names listed) is counted once; a file that
/// cannot be read (BUSY, just renamed, no table yet) counts as 0.
pub fn visible_rows(data_dir: &Path) -> usize {
    let finished = finished_files(data_dir);
    let parts = part_files(data_dir).into_iter().filter(|p| {
        let done = p.with_extension(""); // x.sqlite.part -> x.sqlite
        !finished.contains(&done)
    });
    finished
        .iter()
        .cloned()
        .chain(parts)
        .map(|p| count_rows(&p).unwrap_or(0))
        .sum()
}

/// Waits until at least `n` rows are visible in finished and `.part` files
/// under `data_dir`; returns the count seen.
pub fn wait_for_rows(data_dir: &Path, n: usize, timeout: Duration) -> usize {
    let what = format!("{n} rows in the SQLite files under {}", data_dir.display());
    wait_for(timeout, &what, || {
        let count = visible_rows(data_dir);
        (count >= n).then_some(count)
    })
}

/// Waits until at least `n` rows are in finished (`.sqlite`) files only;
/// never opens a `.part` file, so it cannot disturb the writer.
pub fn wait_for_finished_rows(data_dir: &Path, n: usize, timeout: Duration) -> usize {
    let what = format!(
        "{n} rows in finished .sqlite files under {}",
        data_dir.display()
    );
    wait_for(timeout, &what, || {
        let count: usize = finished_files(data_dir)
            .iter()
            .map(|p| count_rows(p).unwrap_or(0))
            .sum();
        (count >= n).then_some(count)
    })
}

/// Waits until no `.part` file is left under `data_dir` (all finalised).
pub fn wait_no_part_files(data_dir: &Path, timeout: Duration) {
    let what = format!("no .sqlite.part files left under {}", data_dir.display());
    wait_until(timeout, &what, || part_files(data_dir).is_empty());
}
