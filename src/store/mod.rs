//! Storage: where a message goes once the session has delivered it.
//!
//! [`gate`] is ack-after-commit as a sans-IO state machine; [`writer`] owns the SQLite files; [`finaliser`]
//! finishes closed files on a helper thread, off the loop; [`retention`]
//! deletes the oldest finished ones; [`lock`] keeps a
//! second instance out of a stream folder; [`reader`] reads them back and
//! [`export_file`] writes an export. Nothing here sees an MQTT packet or
//! imports `mqtt`, `net`, `config` or `stream`.

pub mod export_file;
pub mod facts;
pub mod finaliser;
pub mod gate;
pub mod lock;
pub mod reader;
pub mod retention;
pub mod writer;

use std::fmt;
use std::path::PathBuf;

/// `durability`: how hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `normal` (default): WAL with `synchronous=OFF`; survives a process
    /// crash, not a power cut.
    Normal,
    /// `power-safe`: `synchronous=FULL`; survives a power cut.
    PowerSafe,
}

/// Errors of the storage layer. Each names the file it concerns.
#[derive(Debug)]
pub enum StoreError {
    /// A file-system operation failed (create folder, rename, read dir).
    Io {
        /// What was being done, e.g. "create folder".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused an operation (disk full, I/O error, corrupt file).
    Sqlite {
        /// What was being done, e.g. "commit".
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// SQLite gave up the open transaction after an error (typically a full
    /// disk): the `rows` inserted since the last commit are NOT stored. The
    /// writer itself stays usable; the caller must not acknowledge them and
    /// inserts them again (the gate keeps a copy until the commit).
    RolledBack {
        /// What was being done, e.g. "commit".
        action: &'static str,
        /// The database file.
        path: PathBuf,
        /// How many rows the rollback took out of the file.
        rows: usize,
        /// The error that made SQLite roll back.
        source: rusqlite::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            StoreError::Sqlite {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            StoreError::RolledBack {
                action,
                path,
                rows,
                source,
            } => write!(
                f,
                "{action} {}: {source} (transaction rolled back: {rows} row(s) not in the file)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Sqlite { source, .. } => Some(source),
            StoreError::RolledBack { source, .. } => Some(source),
        }
    }
}
