//! The stream folder's lock: one running Attic per stream folder. An
//! exclusive `flock` on the folder's lock file ([`layout::LOCK_FILE`]),
//! taken before start-up recovery and held for the life of the process
//! (the kernel lets go when the process ends, however it ends); the file
//! holds the holder's pid, for the error a second instance prints.
//!
//! Owns: taking the lock and reading the holder's pid. Must not: block
//! (a held lock is an error at once), or lock anything readers use:
//! `attic export`, replay and SQLite readers never take it.

use crate::layout;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A stream folder's lock, held until dropped.
#[derive(Debug)]
pub struct FolderLock {
    /// The open lock file: the `flock` lives as long as it is open.
    _file: File,
}

/// Why a folder could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock.
    Held {
        /// The stream folder.
        folder: PathBuf,
        /// The holder's pid, as it wrote it (`None` if unreadable).
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held {
                folder,
                pid: Some(pid),
            } => write!(
                f,
                "stream folder {} is in use by another attic (pid {pid}); one instance per folder",
                folder.display()
            ),
            LockError::Held { folder, pid: None } => write!(
                f,
                "stream folder {} is in use by another attic (pid unknown); one instance per folder",
                folder.display()
            ),
            LockError::Io { path, source } => {
                write!(f, "cannot lock {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

/// Takes the lock of `stream_dir` (which must exist) for this process, or
/// says who holds it.
pub fn lock_folder(stream_dir: &Path) -> Result<FolderLock, LockError> {
    let path = stream_dir.join(layout::LOCK_FILE);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    // The lock is held through a read-only descriptor: a file open for
    // writing would keep its file system from being remounted read-only
    // (`mount -o remount,ro` fails while any file is open for writing).
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_err)?;
    let mut file = File::open(&path).map_err(io_err)?;
    // SAFETY: `flock` on a file descriptor this function owns; no memory
    // is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(LockError::Held {
                folder: stream_dir.to_path_buf(),
                pid,
            });
        }
        return Err(io_err(e));
    }
    // Holding the lock, write the pid through a descriptor closed at once.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut w| writeln!(w, "{}", std::process::id()))
        .map_err(io_err)?;
    Ok(FolderLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_folder_fails_at_once_naming_the_holder_and_works_after_release() {
        let dir = std::env::temp_dir().join(format!("attic-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = lock_folder(&dir).unwrap();
        // flock locks belong to the open file: a second open in the same
        // process conflicts as a second process would.
        let e = lock_folder(&dir).unwrap_err();
        let pid = std::process::id();
        assert!(
            matches!(e, LockError::Held { pid: Some(p), .. } if p == pid),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "stream folder {} is in use by another attic (pid {pid}); one instance per folder",
                dir.display()
            )
        );
        drop(first);
        let again = lock_folder(&dir);
        assert!(again.is_ok(), "{again:?}");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
