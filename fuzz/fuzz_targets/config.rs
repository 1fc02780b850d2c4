//! Fuzz target: the configuration parser and validator fed arbitrary text.
//!
//! UTF-8 input goes to `config::parse` (and an accepted config is described,
//! as `attic check` does); other bytes go through `config::load` from a
//! temporary file, which must reject them. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where non-UTF-8 input is written for `load` (one file per process).
fn scratch() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("attic-fuzz-config-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => {
            // `password-file` makes the parser read a file. Device and
            // kernel files (`/dev/zero`, `/dev/stdin`) would make it read
            // forever or block, which says nothing about the parser: skip
            // inputs naming them.
            if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
                return;
            }
            if let Ok(config) = attic::config::parse(text, Path::new("fuzz.yaml")) {
                let _ = config.describe();
            }
        }
        Err(_) => {
            if std::fs::write(scratch(), data).is_ok() {
                let loaded = attic::config::load(scratch());
                let _ = std::fs::remove_file(scratch());
                assert!(loaded.is_err(), "non-UTF-8 bytes loaded as a config");
            }
        }
    }
});
