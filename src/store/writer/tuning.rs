//! How Attic's files are written so that an SD card sees few writes and many
//! streams fit in little memory: the journal and checkpoint settings of an
//! open file, the page cache shared by all streams of the process, and the
//! `topics` index built once at finalisation instead of row by row.
//!
//! Every figure below comes from `cargo bench --bench ingest` (storage
//! writes from `/proc/<pid>/io` over a whole run, finalisation included;
//! see README "Performance").
//!
//! Owns: [`CacheShare`] (the process-wide page-cache budget),
//! [`open_pragmas`], [`build_index`]. Must not: decide when to commit,
//! rotate or finalise, or touch a file other than through the connection it
//! is given.

use super::CACHE_KIB;
use crate::store::Durability;
use rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `topics` index of a finished file (README "Files").
///
/// Built at finalisation, not kept up to date per row: one sorted pass
/// packs its pages full (the file shrank from 1.47 to 1.43x the raw rows
/// in the benchmark, ~1.41 being this schema's floor for 64 B payloads)
/// and takes a random B-tree insert, and the index pages it dirties in
/// every commit, off the per-row path (callgrind, 20,000 QoS 1 messages:
/// 193.7 M -> 145.3 M instructions). The open `.part` has
/// no index: a reader of the open file filtering by topic scans it.
pub(super) const INDEX_SQL: &str = "CREATE INDEX IF NOT EXISTS topics ON data (topic)";

/// WAL frames after which a commit also runs a PASSIVE checkpoint.
///
/// With `journal_size_limit = 0` the WAL is truncated back at the first
/// commit after each completed checkpoint, so its pages rarely live long
/// enough to be written back: the kernel cancels dirty pages that are
/// truncated away (`cancelled_write_bytes`). A small WAL keeps what the
/// 30 s writeback of a continuously dirty file can catch small too. The
/// checkpoint copies each distinct page once (no fsync under `normal`), a
/// fraction of a millisecond for 256 KiB. With the other settings here,
/// device writes fell from 2.15 to 1.12 bytes per finished byte at 1,000
/// msg/s with 60 s files (a limit of 0 gave the same bytes).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 64;

/// A WAL larger than this after a completed checkpoint is truncated back
/// to it (`journal_size_limit`), in bytes.
const WAL_LIMIT_BYTES: u32 = 1024 * 1024;

/// SQLite page cache for all open files of the process together, in KiB.
///
/// Up to eight streams keep the full [`CACHE_KIB`]; with more each gets an
/// equal share, at least [`CACHE_MIN_KIB`]. With the index built at
/// finalisation an insert only touches the right edge of the table, so a
/// small cache costs little. 100 streams of ~2.4 MB files each peaked at
/// 238.9 MB resident before, 35.9 MB with this budget (12 MiB and a
/// 128 KiB floor: 40.9 MB, over the 40 MB of SPEC 10).
const CACHE_BUDGET_KIB: u32 = 8 * 1024;

/// The smallest page cache of one file, in KiB (16 pages).
const CACHE_MIN_KIB: u32 = 64;

/// Writers alive in this process (one per configured stream).
static WRITERS: AtomicUsize = AtomicUsize::new(0);

/// A writer's claim on the process-wide page-cache budget: created with the
/// writer, released when it is dropped.
#[derive(Debug)]
pub(super) struct CacheShare(());

impl CacheShare {
    pub(super) fn join() -> CacheShare {
        WRITERS.fetch_add(1, Ordering::Relaxed);
        CacheShare(())
    }
}

impl Drop for CacheShare {
    fn drop(&mut self) {
        WRITERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The page cache of a file opened now, in KiB: the budget divided by the
/// writers alive, between [`CACHE_MIN_KIB`] and [`CACHE_KIB`]. A file keeps
/// the share it was opened with until it is closed.
pub(super) fn cache_kib() -> u32 {
    let writers = u32::try_from(WRITERS.load(Ordering::Relaxed).max(1)).unwrap_or(u32::MAX);
    (CACHE_BUDGET_KIB / writers).clamp(CACHE_MIN_KIB, CACHE_KIB)
}

/// The pragmas of a new `.part`, before WAL mode is entered.
///
/// `synchronous`: `OFF` under `durability: normal`. A commit still hands
/// every frame to the kernel with `write(2)`, so a committed row survives a
/// process crash (the `normal` promise, SPEC 5); what changes is that a
/// checkpoint no longer fsyncs the WAL and the database. Those fsyncs wrote
/// every WAL frame to the disk before it could be overwritten or truncated
/// in the page cache: 1.77 device bytes per finished byte at 1,000 msg/s
/// (13x at QoS 1, whose small commits rewrite the same tail pages), and a
/// 10-30 ms stall of the loop at each checkpoint. A power cut may now lose
/// the open `.part` (it was never promised); a finished file is fsynced
/// before its rename. `power-safe` keeps `FULL`.
pub(super) fn open_pragmas(durability: Durability, app_id: i32) -> String {
    format!(
        "PRAGMA page_size = 4096;
         PRAGMA application_id = {app_id};
         {}",
        connection_pragmas(durability)
    )
}

/// The settings of [`open_pragmas`] that belong to a connection, not to
/// the file: set again on every connection that writes the file.
pub(super) fn connection_pragmas(durability: Durability) -> String {
    let synchronous = match durability {
        Durability::Normal => "OFF",
        Durability::PowerSafe => "FULL",
    };
    format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};
         PRAGMA cache_size = -{};",
        cache_kib()
    )
}

/// Builds the `topics` index of a file that has left WAL mode (rollback
/// journal): the index pages are appended to the database file once, and
/// the journal holds only the few pages that existed before (the schema
/// page). Idempotent; a crash in the middle is rolled back by the journal
/// and recovery builds it again.
///
/// The sort keeps at most the cache size in memory and spills the rest to
/// deleted temporary files: the build runs with a small cache
/// ([`INDEX_BUILD_CACHE_KIB`]) so that finishing a file beside a writing
/// stream stays inside the 8 MB of SPEC 10 (with SQLite's default 2 MB
/// cache plus a 2 MB sort, the rotation scenario peaked at 10.1 MB).
pub(super) fn build_index(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{INDEX_BUILD_CACHE_KIB}; {INDEX_SQL}"
    ))
}

/// Page cache (and in-memory sort) while the `topics` index is built, KiB.
const INDEX_BUILD_CACHE_KIB: u32 = 256;

/// The least of a sort SQLite keeps in memory before spilling it to a
/// temporary file, in pages (`SQLITE_CONFIG_PMASZ`). SQLite's default, 250
/// pages (1 MiB), is a floor that `cache_size` cannot lower: the index
/// build on the finaliser thread held 1 MiB of sort beside the writing
/// stream. 64 pages equal [`INDEX_BUILD_CACHE_KIB`].
const SORT_MEMORY_PAGES: u32 = 64;

/// Process-wide SQLite settings; they take effect only before SQLite is
/// initialised (the first connection of the process), so every entry point
/// of the writer that opens a connection calls this first (recovery, in
/// `attic run`, comes before any other use of SQLite). Later calls do
/// nothing.
pub(super) fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` with the unsigned integer that
        // SQLITE_CONFIG_PMASZ takes, once per process. It must not run
        // while another thread uses SQLite: in `attic run` the first call
        // is the recovery's, before the finaliser thread starts. Once SQLite
        // is initialised it only reads its `isInit` flag and refuses
        // (SQLITE_MISUSE), changing nothing.
        let _ = unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_PMASZ, SORT_MEMORY_PAGES)
        };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::store::writer::{FileMeta, Writer, recover_parts};
    use crate::test_dir::TempDir;
    use rusqlite::OpenFlags;
    use std::path::Path;
    use std::time::Duration;

    fn writer(dir: &Path) -> Writer {
        Writer::new(
            dir.to_path_buf(),
            Duration::from_secs(3600),
            Durability::Normal,
            FileMeta {
                stream_folder: "s".into(),
                topics: vec!["#".into()],
                broker: "b:1883".into(),
                host: "h".into(),
                mqtt5: false,
            },
        )
    }

    fn msg(i: i64) -> Message {
        Message {
            timestamp_us: 1_700_000_000_000_000 + i,
            topic: format!("t/{}", i % 7),
            payload: bytes::Bytes::from(vec![7u8; 64]),
            qos: 0,
            retain: false,
            properties: None,
        }
    }

    fn has_index(path: &Path) -> bool {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        c.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'topics'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    }

    /// Rows per topic through the index (the plan must use it).
    fn per_topic_via_index(path: &Path) -> Vec<(String, i64)> {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN SELECT topic, count(*) FROM data GROUP BY topic",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("topics"), "{plan}");
        let mut st = c
            .prepare("SELECT topic, count(*) FROM data GROUP BY topic")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_open_part_has_no_index_and_the_finished_file_indexes_every_row() {
        let tmp = TempDir::new("tuning");
        let mut w = writer(&tmp.0);
        for i in 0..700 {
            w.insert(&msg(i)).unwrap();
        }
        w.commit().unwrap();
        let part = w.current_file().unwrap().to_path_buf();
        assert!(!has_index(&part));
        let done = w.rotate().unwrap().unwrap();
        assert!(has_index(&done));
        let counts = per_topic_via_index(&done);
        assert_eq!(counts.len(), 7);
        assert!(counts.iter().all(|(_, n)| *n == 100), "{counts:?}");
        let c = Connection::open_with_flags(&done, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_part_left_by_a_crash_gets_the_same_index_at_recovery() {
        let tmp = TempDir::new("tuning");
        let mut w = writer(&tmp.0);
        for i in 0..350 {
            w.insert(&msg(i)).unwrap();
        }
        w.commit().unwrap();
        // A crash: the connection goes away without finalising.
        w.abandon();
        let done = recover_parts(&tmp.0).unwrap();
        assert_eq!(done.len(), 1);
        assert!(has_index(&done[0]));
        let counts = per_topic_via_index(&done[0]);
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 350);
    }

    #[test]
    fn the_cache_share_shrinks_with_more_writers_within_its_bounds() {
        // Other tests create writers concurrently: only bounds and the
        // direction of change can be asserted.
        let one = cache_kib();
        assert!((CACHE_MIN_KIB..=CACHE_KIB).contains(&one));
        let many: Vec<CacheShare> = (0..200).map(|_| CacheShare::join()).collect();
        assert_eq!(cache_kib(), CACHE_MIN_KIB);
        drop(many);
        assert!(cache_kib() >= CACHE_MIN_KIB);
    }

    #[test]
    fn normal_durability_writes_without_fsync_and_power_safe_with_full() {
        assert!(open_pragmas(Durability::Normal, 1).contains("synchronous = OFF"));
        assert!(open_pragmas(Durability::PowerSafe, 1).contains("synchronous = FULL"));
        assert!(open_pragmas(Durability::Normal, 1).contains("journal_size_limit = 1048576"));
    }
}
