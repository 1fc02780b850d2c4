//! Writing a small file so that a reader sees no file or the whole file,
//! never a part: the ready file, the summary, the hook's pending list and
//! the QoS 2 state of a stream folder all go through [`write_atomically`].
//!
//! Owns: that one way of writing. Must not: know what the files mean.

use std::io;
use std::path::Path;

/// Writes `bytes` to a hidden temporary file beside `path`, then renames it
/// over `path`: a reader sees no file or the whole file, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "attic".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let context = |e: io::Error, what: &str, p: &Path| {
        io::Error::new(e.kind(), format!("cannot {what} {}: {e}", p.display()))
    };
    std::fs::write(&tmp, bytes).map_err(|e| context(e, "write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        context(e, "rename into place", path)
    })
}
