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
    level_from(std::env::var(LEVEL_ENV).ok().as_deref(), configured).0
}

/// The level `value` of [`LEVEL_ENV`] selects, else `configured`; the
/// second part is the warning to log when `value` is set but not a level.
fn level_from(value: Option<&str>, configured: LevelFilter) -> (LevelFilter, Option<String>) {
    let Some(v) = value else {
        return (configured, None);
    };
    match v.trim().parse() {
        Ok(level) => (level, None),
        Err(_) => (
            configured,
            Some(format!(
                "{LEVEL_ENV}={v:?} is not a log level (error, warn, info, debug, trace, off): \
                 using log-level {}",
                configured.as_str().to_lowercase()
            )),
        ),
    }
}

/// Installs the logger once; later calls do nothing. An unusable
/// [`LEVEL_ENV`] is said once, as a warning, instead of being ignored.
pub fn init(configured: LevelFilter) {
    let (level, warning) = level_from(std::env::var(LEVEL_ENV).ok().as_deref(), configured);
    install(level);
    if let Some(w) = warning {
        // Said even when the level hides warnings: the user asked for a
        // level and did not get it.
        if log::log_enabled!(log::Level::Warn) {
            log::warn!("{w}");
        } else {
            eprintln!("attic: {w}");
        }
    }
}

fn install(level: LevelFilter) {
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
    fn an_unknown_level_in_the_environment_keeps_the_configured_one_and_says_so() {
        let (level, warning) = level_from(Some("verbose"), LevelFilter::Info);
        assert_eq!(level, LevelFilter::Info);
        let w = warning.unwrap();
        assert!(w.contains("\"verbose\" is not a log level"), "{w}");
        assert!(w.contains("using log-level info"), "{w}");
        assert_eq!(
            level_from(Some("debug"), LevelFilter::Info),
            (LevelFilter::Debug, None)
        );
        assert_eq!(
            level_from(None, LevelFilter::Warn),
            (LevelFilter::Warn, None)
        );
    }

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
    }
}
