//! Log output. Under systemd (`JOURNAL_STREAM` set) every line starts with
//! the syslog priority prefix `<N>` and carries no timestamp (journald adds
//! one), so `journalctl -p warning` works. On a terminal or in a file,
//! plain timestamped lines from `simplelog`.
//!
//! `ATTIC_LOG_LEVEL` (error, warn, info, debug, trace, off) overrides the
//! configured `log-level`.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

/// Environment variable that overrides `log-level`.
pub const LEVEL_ENV: &str = "ATTIC_LOG_LEVEL";

/// The level to use: the environment override if valid, else `configured`.
pub fn effective_level(configured: LevelFilter) -> LevelFilter {
    std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(configured)
}

/// Installs the logger once; later calls do nothing.
pub fn init(configured: LevelFilter) {
    let level = effective_level(configured);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if log::set_boxed_logger(Box::new(Journal { level })).is_ok() {
            log::set_max_level(level);
        }
    } else {
        let cfg = simplelog::ConfigBuilder::new()
            .set_time_format_rfc3339()
            .set_target_level(LevelFilter::Off)
            .set_thread_level(LevelFilter::Off)
            .set_location_level(LevelFilter::Off)
            .build();
        // An error here means a logger is already set; keep that one.
        let _ = simplelog::WriteLogger::init(level, cfg, std::io::stderr());
    }
}

/// The syslog priority of a log level.
pub fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

struct Journal {
    level: LevelFilter,
}

impl Log for Journal {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!("<{}>{}\n", priority(r.level()), r.args());
        // stderr is unbuffered: one write per line keeps lines whole.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
    }
}
