//! Start-up check that a folder Attic must write into is writable by this
//! process, so that a folder left by another user (an earlier `sudo attic
//! run`, a copied tree) stops the start with one clear line and exit 1
//! instead of a storage error every second once messages arrive.
//!
//! Owns: that one check (`faccessat` with the effective ids). Must not:
//! create, write or delete anything.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `Ok` if this process may create files in `dir` (write and search
/// permission with its effective user and groups, on a writable file
/// system); else the reason (`Permission denied`, `Read-only file system`).
pub(super) fn check(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
    // faccessat only reads it.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_this_process_created_is_writable() {
        let dir = std::env::temp_dir().join(format!("attic-writable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let result = check(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn a_path_without_search_permission_is_refused_even_for_root() {
        // A plain file has no execute bit: X_OK fails for every user, root
        // included, so this exercises the refusal on any test machine.
        let file = std::env::temp_dir().join(format!("attic-writable-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let result = check(&file);
        std::fs::remove_file(&file).unwrap();
        assert!(result.is_err());
    }

    #[test]
    fn a_missing_folder_is_refused() {
        let e = check(Path::new("/nonexistent/attic/folder")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
