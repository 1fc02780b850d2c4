//! The log lines of a report and the one-line systemd status.
//!
//! Owns: their wording and the binary byte units. Must not: do arithmetic
//! on counters (that is `figures`).

use super::figures::Figures;
use std::fmt::Write as _;

/// One log line per stream, then one for the process.
pub fn log_lines(f: &Figures) -> Vec<String> {
    let mut lines = Vec::with_capacity(f.streams.len() + 1);
    for s in &f.streams {
        let c = &s.sample.counters;
        lines.push(format!(
            "[{}] {}; received {} ({:.1}/s, {}), stored {} ({:.1}/s, {}), filtered {}, skipped {}, lost {}, reconnects {}, commit {:.1} ms (max {:.1}), total stored {}, file {}",
            s.sample.name,
            if s.sample.connected { "connected" } else { "disconnected" },
            s.received,
            f.per_second(s.received),
            human_bytes(s.received_bytes),
            s.stored,
            f.per_second(s.stored),
            human_bytes(s.stored_bytes),
            s.filtered,
            s.oversize,
            s.lost,
            s.sample.reconnects,
            c.commit_last_us as f64 / 1e3,
            c.commit_max_us as f64 / 1e3,
            c.stored,
            s.sample.file.as_deref().unwrap_or("none"),
        ));
        let drops: Vec<String> = s
            .sample
            .filter_drops
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if !drops.is_empty() {
            let last = lines.len() - 1;
            let _ = write!(lines[last], ", dropped by filter: {}", drops.join(", "));
        }
    }
    lines.push(format!(
        "process: cpu {:.1} %, memory {} (peak {}), up {:.2} h",
        f.cpu_percent,
        human_bytes(f.process.rss_bytes),
        human_bytes(f.process.peak_rss_bytes),
        f.elapsed.as_secs_f64() / 3600.0
    ));
    lines
}

/// The one-line summary for systemd's `STATUS=`.
pub fn status_line(f: &Figures) -> String {
    let connected = f.streams.iter().filter(|s| s.sample.connected).count();
    format!(
        "{connected}/{} streams connected; {:.1} msg/s; {} stored; cpu {:.1} %; rss {}",
        f.streams.len(),
        f.per_second(f.period_received()),
        f.total_stored(),
        f.cpu_percent,
        human_bytes(f.process.rss_bytes)
    )
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}
