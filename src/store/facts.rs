//! What is known about one finished file: its path, the reception time of
//! its first and last row, its row count and its size. Read from the file
//! itself (two rowid look-ups and a count from `attic_meta`), so that a
//! file finished by an earlier run is described as well as a new one.
//!
//! Owns: [`FileFacts`] and [`read_facts`]. Must not: write to the file,
//! wait for a lock (busy timeout 0), or fail: what cannot be read is left
//! unknown.

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// One finished file, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// The final `.sqlite` path.
    pub path: PathBuf,
    /// `reception_timestamp` of its first row (unix µs); `None` when it has
    /// no row or could not be read.
    pub first_us: Option<i64>,
    /// The same of its last row.
    pub last_us: Option<i64>,
    /// Rows in the file (`row_count` meta, else `count(*)`).
    pub rows: Option<u64>,
    /// Size of the file in bytes.
    pub bytes: Option<u64>,
}

impl FileFacts {
    /// Nothing known but the path.
    pub fn unknown(path: PathBuf) -> Self {
        FileFacts {
            path,
            ..FileFacts::default()
        }
    }
}

/// Reads the facts of the finished file at `path`; whatever cannot be read
/// stays `None`.
pub fn read_facts(path: &Path) -> FileFacts {
    let mut facts = FileFacts::unknown(path.to_path_buf());
    facts.bytes = std::fs::metadata(path).ok().map(|m| m.len());
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return facts;
    };
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    // Rows are stored in reception order: the first and last by rowid.
    let edge = |order: &str| -> Option<i64> {
        conn.query_row(
            &format!("SELECT reception_timestamp FROM data ORDER BY rowid {order} LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten()
    };
    facts.first_us = edge("ASC");
    facts.last_us = edge("DESC");
    let meta: Option<String> = conn
        .query_row(
            "SELECT value FROM attic_meta WHERE key = 'row_count'",
            [],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    facts.rows = match meta.and_then(|v| v.parse().ok()) {
        Some(n) => Some(n),
        None => conn
            .query_row("SELECT count(*) FROM data", [], |r| r.get::<_, i64>(0))
            .ok()
            .and_then(|n| u64::try_from(n).ok()),
    };
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::store::Durability;
    use crate::store::writer::{FileMeta, Writer};
    use std::time::Duration;

    #[test]
    fn the_facts_of_a_finished_file_are_its_first_and_last_row_count_and_size() {
        let dir = std::env::temp_dir().join(format!("attic-facts-{}", std::process::id()));
        let mut w = Writer::new(
            dir.clone(),
            Duration::from_secs(3600),
            Durability::Normal,
            FileMeta {
                stream_folder: "s".into(),
                topics: vec!["#".into()],
                broker: "b".into(),
                host: "h".into(),
                mqtt5: false,
            },
        );
        for ts in [
            1_700_000_000_000_007,
            1_700_000_000_000_003,
            1_700_000_000_000_009,
        ] {
            w.insert(&Message {
                timestamp_us: ts,
                topic: "t".into(),
                payload: bytes::Bytes::from_static(b"x"),
                qos: 0,
                retain: false,
                properties: None,
            })
            .unwrap();
        }
        let path = w.rotate().unwrap().unwrap();
        let f = read_facts(&path);
        assert_eq!(f.first_us, Some(1_700_000_000_000_007));
        assert_eq!(f.last_us, Some(1_700_000_000_000_009));
        assert_eq!(f.rows, Some(3));
        assert_eq!(f.bytes, Some(std::fs::metadata(&path).unwrap().len()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_a_database_has_only_its_size_known() {
        let p = std::env::temp_dir().join(format!("attic-facts-bad-{}", std::process::id()));
        std::fs::write(&p, b"not sqlite").unwrap();
        let f = read_facts(&p);
        assert_eq!(
            (f.first_us, f.last_us, f.rows, f.bytes),
            (None, None, None, Some(10))
        );
        let _ = std::fs::remove_file(&p);
    }
}
