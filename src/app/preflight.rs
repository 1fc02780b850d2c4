//! What `attic check` verifies of the machine beyond the config file: that
//! `attic run` could write where it must, so that "OK" means the service
//! would start. Checks the data folder (or the nearest folder that exists,
//! where it would be created), each existing stream folder, the
//! `metrics-file`'s folder, and warns when `min-free-mb` asks for more
//! space than the data folder's file system has.
//!
//! Owns: those checks. Must not: create, write or delete anything.

use std::path::{Path, PathBuf};

use super::writable;
use crate::config::Config;

/// One thing `attic check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `attic run` would exit 1 because of it.
    Error(String),
    /// `attic run` starts, but not as the config intends.
    Warning(String),
}

/// Every finding for `config` on this machine, errors first.
pub fn check(config: &Config) -> Vec<Finding> {
    let mut found = Vec::new();
    let data = &config.data_folder;
    match nearest_existing(data) {
        Some(dir) => {
            if let Err(e) = writable::check(&dir) {
                let what = if &dir == data {
                    format!("data folder {}", data.display())
                } else {
                    format!(
                        "{} (where data folder {} would be created)",
                        dir.display(),
                        data.display()
                    )
                };
                found.push(Finding::Error(format!("cannot write into {what}: {e}")));
            }
        }
        None => found.push(Finding::Error(format!(
            "data folder {}: no part of the path exists",
            data.display()
        ))),
    }
    for s in &config.streams {
        let dir = data.join(&s.folder_name);
        if dir.is_dir()
            && let Err(e) = writable::check(&dir)
        {
            found.push(Finding::Error(format!(
                "cannot write into stream folder {}: {e}",
                dir.display()
            )));
        }
    }
    if let Some(m) = &config.metrics_file {
        let dir = parent_dir(m);
        if !dir.is_dir() {
            found.push(Finding::Error(format!(
                "metrics-file {}: its folder {} does not exist",
                m.display(),
                dir.display()
            )));
        } else if let Err(e) = writable::check(&dir) {
            found.push(Finding::Error(format!(
                "metrics-file {}: cannot write into {}: {e}",
                m.display(),
                dir.display()
            )));
        }
    }
    if let (Some(want), Some(dir)) = (config.min_free_bytes, nearest_existing(data))
        && let Ok((_, total)) = crate::store::retention::file_system_bytes(&dir)
        && want >= total
    {
        found.push(Finding::Warning(format!(
            "retention.min-free-mb ({} MB) is not less than the whole file system of {} ({} MB): \
             every finished file would be deleted as soon as it is finished",
            want / (1 << 20),
            dir.display(),
            total / (1 << 20)
        )));
    }
    found.sort_by_key(|f| matches!(f, Finding::Warning(_)));
    found
}

/// The folder of a file path (`.` for a bare name).
fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `dir` itself if it exists, else its nearest ancestor that does.
fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    let start = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    start
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.is_dir())
        .map(Path::to_path_buf)
        .or_else(|| (!start.is_absolute()).then(|| PathBuf::from(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, Path::new("c.yaml")).unwrap()
    }

    #[test]
    fn a_data_folder_to_be_created_is_checked_at_its_nearest_existing_parent() {
        let dir = std::env::temp_dir().join(format!("attic-preflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = config(&format!(
            "data-folder: {}/not/yet\nstreams:\n  - topic: a\n    prefix: p\n",
            dir.display()
        ));
        assert_eq!(check(&c), vec![]);
        assert_eq!(nearest_existing(&dir.join("not/yet")), Some(dir.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_metrics_file_in_a_missing_folder_is_an_error() {
        let c = config(
            "data-folder: /tmp\nmetrics-file: /nonexistent-attic/m.prom\nstreams:\n  - topic: a\n    prefix: p\n",
        );
        let f = check(&c);
        assert!(
            matches!(&f[..], [Finding::Error(e)] if e.contains("/nonexistent-attic") && e.contains("does not exist")),
            "{f:?}"
        );
    }

    #[test]
    fn min_free_mb_beyond_the_file_system_is_a_warning() {
        let c = config(
            "data-folder: /tmp\nretention:\n  min-free-mb: 1000000000\nstreams:\n  - topic: a\n    prefix: p\n",
        );
        let f = check(&c);
        assert!(
            matches!(&f[..], [Finding::Warning(w)] if w.contains("min-free-mb")),
            "{f:?}"
        );
    }
}
