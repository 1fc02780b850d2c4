//! `metrics-file`: writes the Prometheus text of each report atomically
//! (`<file>.tmp` in the same folder, then rename), so a reader such as
//! node_exporter's textfile collector never sees half a file.
//!
//! Owns: the write and its failure policy (warn once per distinct error,
//! never fatal). Must not: compute figures (that is `report`) or fsync (the
//! file is rewritten every period; losing one to a power cut is harmless).

use std::io;
use std::path::{Path, PathBuf};

/// The metrics file and the last error reported for it.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
    tmp: PathBuf,
    /// The last failure logged; the same failure is not logged again.
    last_error: Option<String>,
}

impl MetricsFile {
    /// Writes to `path` (through `path` + `.tmp`).
    pub fn new(path: PathBuf) -> Self {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        MetricsFile {
            path,
            tmp: PathBuf::from(tmp),
            last_error: None,
        }
    }

    /// Replaces the file's contents with `text`. A failure is logged as a
    /// warning the first time it happens (and again after a success).
    pub fn write(&mut self, text: &str) {
        match write_atomically(&self.path, &self.tmp, text) {
            Ok(()) => {
                if self.last_error.take().is_some() {
                    log::info!("metrics file {} is written again", self.path.display());
                }
            }
            Err(e) => {
                let why = e.to_string();
                if self.last_error.as_deref() != Some(why.as_str()) {
                    log::warn!("{why}");
                    self.last_error = Some(why);
                }
            }
        }
    }
}

fn write_atomically(path: &Path, tmp: &Path, text: &str) -> io::Result<()> {
    std::fs::write(tmp, text).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot write metrics file {}: {e}", tmp.display()),
        )
    })?;
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        io::Error::new(
            e.kind(),
            format!("cannot rename {} to {}: {e}", tmp.display(), path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_no_tmp_file_stays() {
        let dir = std::env::temp_dir().join(format!("attic-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("attic.prom");
        let mut m = MetricsFile::new(path.clone());
        m.write("a 1\n");
        m.write("b 2\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        assert!(!dir.join("attic.prom.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failure_is_remembered_so_it_is_logged_once() {
        let mut m = MetricsFile::new(PathBuf::from("/nonexistent-attic-dir/x.prom"));
        m.write("a 1\n");
        let first = m.last_error.clone().unwrap();
        assert!(
            first.contains("/nonexistent-attic-dir/x.prom.tmp"),
            "{first}"
        );
        m.write("a 1\n");
        assert_eq!(m.last_error.as_deref(), Some(first.as_str()));
    }
}
