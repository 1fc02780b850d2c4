//! The self-report: the figures of one period and of the process, and their
//! three renderings (the log lines, the JSON report of the original, the
//! Prometheus text of `metrics-file`), plus the one-line systemd status.
//!
//! Owns: the arithmetic (per-period deltas, rates, CPU percent) and the text
//! formats, including the JSON string escaping. Must not: touch a socket or
//! a file (the loop gathers [`StreamSample`]s and [`ProcessSample`]s, the
//! publisher and `metrics` carry the text away); reading the process's own
//! usage (`getrusage`, `/proc/self/statm`) is the only system access.

use crate::stream::Counters;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What the loop knows about one stream at the end of a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSample {
    /// The stream's folder name (`prefix` + `suffix`).
    pub name: String,
    /// Totals since start.
    pub counters: Counters,
    /// Connections re-established after the first (`Session::stats`).
    pub reconnects: u64,
    /// CONNACK accepted and the connection is up.
    pub connected: bool,
    /// The file being written, if any.
    pub file: Option<String>,
    /// Time the loop spent handling this stream during the period.
    pub busy: Duration,
    /// Messages dropped per filter since start, in chain order (the
    /// wire-level `max-payload-bytes` first).
    pub filter_drops: Vec<(String, u64)>,
    /// Finished files deleted by retention since start.
    pub files_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
}

/// The process's own resource use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    /// User + system CPU time since the process started.
    pub cpu: Duration,
    /// Resident memory now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident memory, in bytes.
    pub peak_rss_bytes: u64,
}

impl ProcessSample {
    /// Reads `getrusage(RUSAGE_SELF)`, `/proc/self/statm` and the peak
    /// (`VmHWM`) from `/proc/self/status`; a figure that cannot be read is 0.
    pub fn read() -> Self {
        // SAFETY: `rusage` is plain data; getrusage fills it or fails.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
        let cpu = if ok {
            timeval(ru.ru_utime) + timeval(ru.ru_stime)
        } else {
            Duration::ZERO
        };
        // The peak is VmHWM, not ru_maxrss: ru_maxrss survives exec, so a
        // process started by a big parent (`cargo run`, a Python harness)
        // would report the parent's peak as its own.
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| status_kib(&s, "VmHWM:"))
            .map_or(0, |kib| kib * 1024);
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| statm_resident_pages(&s))
            .map_or(0, |pages| pages * page_size());
        ProcessSample {
            cpu,
            rss_bytes: rss,
            // The kernel updates ru_maxrss lazily; never report a peak
            // below the current figure.
            peak_rss_bytes: peak.max(rss),
        }
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    let s = u64::try_from(tv.tv_sec).unwrap_or(0);
    let us = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(s) + Duration::from_micros(u64::from(us))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A `kB` figure of `/proc/self/status`, e.g. `VmHWM:     5124 kB`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// The second field of `/proc/self/statm`: resident pages.
fn statm_resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// CPU use over a period, in percent of one core: CPU time spent divided by
/// wall time elapsed (above 100 only with several threads, which Attic has
/// not). 0 for an empty period.
pub fn cpu_percent(cpu_before: Duration, cpu_after: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu_after.saturating_sub(cpu_before).as_secs_f64() / wall.as_secs_f64() * 100.0
}

/// One stream's figures for one period.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFigures {
    /// Position in `streams:` (0-based).
    pub idx: usize,
    /// The sample the figures come from (totals since start).
    pub sample: StreamSample,
    /// Messages received during the period.
    pub received: u64,
    /// Payload bytes received during the period.
    pub received_bytes: u64,
    /// Messages committed during the period.
    pub stored: u64,
    /// Payload bytes committed during the period.
    pub stored_bytes: u64,
    /// Messages dropped by `exclude` during the period.
    pub excluded: u64,
    /// Messages skipped as oversize during the period.
    pub oversize: u64,
    /// Rows lost to rolled-back transactions during the period.
    pub lost: u64,
    /// Fraction of the period the loop was busy with this stream (0..1).
    pub utilisation: f64,
}

/// Everything one report says.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Since the process started.
    pub elapsed: Duration,
    /// Length of this period (since the previous report).
    pub period: Duration,
    /// Unix µs of the moment the figures were taken.
    pub at_us: i64,
    /// Per stream, in configuration order.
    pub streams: Vec<StreamFigures>,
    /// CPU percent of one core over the period.
    pub cpu_percent: f64,
    /// The process sample at the end of the period.
    pub process: ProcessSample,
}

impl Figures {
    /// Messages received by every stream since start.
    pub fn total_received(&self) -> u64 {
        self.streams
            .iter()
            .map(|s| s.sample.counters.received)
            .sum()
    }

    /// Messages received by every stream during the period.
    pub fn period_received(&self) -> u64 {
        self.streams.iter().map(|s| s.received).sum()
    }

    /// Messages committed by every stream since start.
    pub fn total_stored(&self) -> u64 {
        self.streams.iter().map(|s| s.sample.counters.stored).sum()
    }

    /// `n` per second of the period.
    pub fn per_second(&self, n: u64) -> f64 {
        rate(n, self.period)
    }
}

fn rate(n: u64, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        n as f64 / over.as_secs_f64()
    }
}

/// Turns successive samples into period figures; remembers the previous
/// totals and the report deadline.
#[derive(Debug)]
pub struct Reporter {
    period: Duration,
    start: Instant,
    /// When the next report is due.
    pub due: Instant,
    last: Instant,
    prev: Vec<Counters>,
    prev_cpu: Duration,
}

impl Reporter {
    /// A reporter whose first report is due one `period` after `now`.
    /// `cpu` is the process's CPU time at `now`.
    pub fn new(period: Duration, now: Instant, cpu: Duration) -> Self {
        Reporter {
            period,
            start: now,
            due: now + period,
            last: now,
            prev: Vec::new(),
            prev_cpu: cpu,
        }
    }

    /// The figures of the period ending at `now`; arms the next deadline.
    pub fn take(
        &mut self,
        samples: Vec<StreamSample>,
        process: ProcessSample,
        now: Instant,
        at_us: i64,
    ) -> Figures {
        let period = now.saturating_duration_since(self.last);
        self.prev.resize(samples.len(), Counters::default());
        let streams = samples
            .into_iter()
            .zip(self.prev.iter_mut())
            .enumerate()
            .map(|(idx, (sample, prev))| {
                let c = &sample.counters;
                let d = |a: u64, b: u64| a.saturating_sub(b);
                let f = StreamFigures {
                    idx,
                    received: d(c.received, prev.received),
                    received_bytes: d(c.received_bytes, prev.received_bytes),
                    stored: d(c.stored, prev.stored),
                    stored_bytes: d(c.stored_bytes, prev.stored_bytes),
                    excluded: d(c.excluded, prev.excluded),
                    oversize: d(c.oversize, prev.oversize),
                    lost: d(c.lost, prev.lost),
                    utilisation: if period.is_zero() {
                        0.0
                    } else {
                        (sample.busy.as_secs_f64() / period.as_secs_f64()).min(1.0)
                    },
                    sample: sample.clone(),
                };
                *prev = sample.counters;
                f
            })
            .collect();
        let cpu = cpu_percent(self.prev_cpu, process.cpu, period);
        self.prev_cpu = process.cpu;
        self.last = now;
        self.due = now + self.period;
        Figures {
            elapsed: now.saturating_duration_since(self.start),
            period,
            at_us,
            streams,
            cpu_percent: cpu,
            process,
        }
    }
}

// ---------------------------------------------------------------------------
// Log lines and status

/// One log line per stream, then one for the process.
pub fn log_lines(f: &Figures) -> Vec<String> {
    let mut lines = Vec::with_capacity(f.streams.len() + 1);
    for s in &f.streams {
        let c = &s.sample.counters;
        lines.push(format!(
            "[{}] {}; received {} ({:.1}/s, {}), stored {} ({:.1}/s, {}), excluded {}, skipped {}, lost {}, reconnects {}, commit {:.1} ms (max {:.1}), total stored {}, file {}",
            s.sample.name,
            if s.sample.connected { "connected" } else { "disconnected" },
            s.received,
            f.per_second(s.received),
            human_bytes(s.received_bytes),
            s.stored,
            f.per_second(s.stored),
            human_bytes(s.stored_bytes),
            s.excluded,
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

fn human_bytes(n: u64) -> String {
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

// ---------------------------------------------------------------------------
// JSON

/// Appends `s` as a JSON string literal (quotes included).
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite float as JSON (NaN and infinities, which JSON lacks, as 0).
fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
        // `{}` prints integral floats without a point; that is valid JSON.
    } else {
        out.push('0');
    }
}

/// ISO 8601 UTC with microseconds: `2026-11-27T13:05:09.123456Z`.
pub fn iso_utc(us: i64) -> String {
    let day = crate::store::rotation::day_folder(us);
    let in_day = us.rem_euclid(86_400_000_000);
    let s = in_day / 1_000_000;
    format!(
        "{day}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        in_day % 1_000_000
    )
}

/// A tiny writer of one JSON object: keys in order, commas handled.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json_string(self.out, k);
        self.out.push(':');
        self.out
    }

    fn u64(&mut self, k: &str, v: u64) {
        let _ = write!(self.key(k), "{v}");
    }

    fn f64(&mut self, k: &str, v: f64) {
        json_f64(self.key(k), v);
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k).push_str(if v { "true" } else { "false" });
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(s) => json_string(self.key(k), s),
            None => self.key(k).push_str("null"),
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// The JSON report: the original's keys with their meaning, then the new
/// figures (every key is documented in README.md, "Self-report").
pub fn json(f: &Figures) -> String {
    let mut out = String::with_capacity(512 + 700 * f.streams.len());
    let elapsed = f.elapsed.as_secs_f64();
    let total = f.total_received();
    let mut o = Obj::open(&mut out);
    o.f64("elapsed_time_hours", elapsed / 3600.0);
    o.u64("totalMessageCount", total);
    o.f64(
        "messages_per_second_total",
        if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        },
    );
    o.f64(
        "messages_per_second_recent",
        f.per_second(f.period_received()),
    );
    let details = o.key("performance_details");
    details.push('[');
    for (i, s) in f.streams.iter().enumerate() {
        if i > 0 {
            details.push(',');
        }
        stream_json(details, f, s);
    }
    details.push(']');
    o.str("attic_version", Some(env!("CARGO_PKG_VERSION")));
    o.f64("timestamp_unix", f.at_us as f64 / 1e6);
    o.f64("period_seconds", f.period.as_secs_f64());
    o.u64("stored_message_count", f.total_stored());
    o.f64("cpu_percent", f.cpu_percent);
    o.f64("cpu_seconds_total", f.process.cpu.as_secs_f64());
    o.u64("resident_memory_bytes", f.process.rss_bytes);
    o.u64("peak_resident_memory_bytes", f.process.peak_rss_bytes);
    o.close();
    out
}

fn stream_json(out: &mut String, f: &Figures, s: &StreamFigures) {
    let c = &s.sample.counters;
    let mut o = Obj::open(out);
    o.str("stream_prefix", Some(&s.sample.name));
    o.u64("stream_idx", s.idx as u64);
    o.f64("utilisation_ratio", s.utilisation);
    o.u64("messages_this_channel", c.received);
    if c.last_rx_us > 0 {
        o.f64("last_rx_timestamp_unix", c.last_rx_us as f64 / 1e6);
        o.str("last_rx_timestamp_iso", Some(&iso_utc(c.last_rx_us)));
    } else {
        o.str("last_rx_timestamp_unix", None);
        o.str("last_rx_timestamp_iso", None);
    }
    o.bool("is_connected", s.sample.connected);
    o.u64("received_total", c.received);
    o.u64("received_bytes_total", c.received_bytes);
    o.u64("stored_total", c.stored);
    o.u64("stored_bytes_total", c.stored_bytes);
    o.u64("excluded_total", c.excluded);
    o.u64("oversize_total", c.oversize);
    o.u64("lost_total", c.lost);
    o.u64("store_errors_total", c.store_errors);
    o.u64("files_closed_total", c.files_closed);
    o.u64("reconnects_total", s.sample.reconnects);
    o.u64("files_deleted", s.sample.files_deleted);
    o.u64("bytes_deleted", s.sample.bytes_deleted);
    o.u64("received_period", s.received);
    o.u64("stored_period", s.stored);
    o.u64("excluded_period", s.excluded);
    o.u64("oversize_period", s.oversize);
    o.u64("lost_period", s.lost);
    o.f64("received_per_second", f.per_second(s.received));
    o.f64("stored_per_second", f.per_second(s.stored));
    o.f64("received_bytes_per_second", f.per_second(s.received_bytes));
    o.f64("stored_bytes_per_second", f.per_second(s.stored_bytes));
    o.f64("commit_latency_last_ms", c.commit_last_us as f64 / 1e3);
    o.f64("commit_latency_max_ms", c.commit_max_us as f64 / 1e3);
    o.str("current_file", s.sample.file.as_deref());
    let out = o.key("filter_drops_total");
    let mut drops = Obj::open(out);
    for (name, n) in &s.sample.filter_drops {
        drops.u64(name, *n);
    }
    drops.close();
    o.close();
}

// ---------------------------------------------------------------------------
// Prometheus text exposition format

/// Appends `v` as a Prometheus label value (quotes included).
fn label(out: &mut String, v: &str) {
    out.push('"');
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn prom_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push('0');
    }
}

/// A per-stream metric family: one sample per stream.
fn per_stream(
    out: &mut String,
    f: &Figures,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&StreamFigures) -> f64,
) {
    family(out, name, kind, help);
    for s in &f.streams {
        out.push_str(name);
        out.push_str("{stream=");
        label(out, &s.sample.name);
        out.push_str("} ");
        prom_f64(out, value(s));
        out.push('\n');
    }
}

fn process_metric(out: &mut String, name: &str, kind: &str, help: &str, v: f64) {
    family(out, name, kind, help);
    out.push_str(name);
    out.push(' ');
    prom_f64(out, v);
    out.push('\n');
}

/// The figures in Prometheus text exposition format (counters end in
/// `_total`; per-stream samples carry `stream="<folder>"`).
pub fn prometheus(f: &Figures) -> String {
    let mut out = String::with_capacity(2048 + 1024 * f.streams.len());
    let o = &mut out;
    type Get = fn(&StreamFigures) -> f64;
    let counters: [(&str, &str, Get); 10] = [
        (
            "attic_messages_received_total",
            "Messages received from the broker (stored, excluded or skipped).",
            |s| s.sample.counters.received as f64,
        ),
        (
            "attic_received_bytes_total",
            "Payload bytes received.",
            |s| s.sample.counters.received_bytes as f64,
        ),
        (
            "attic_messages_stored_total",
            "Messages committed to a file.",
            |s| s.sample.counters.stored as f64,
        ),
        (
            "attic_stored_bytes_total",
            "Payload bytes committed to a file.",
            |s| s.sample.counters.stored_bytes as f64,
        ),
        (
            "attic_messages_excluded_total",
            "Messages dropped by exclude filters.",
            |s| s.sample.counters.excluded as f64,
        ),
        (
            "attic_messages_oversize_total",
            "Messages skipped for exceeding max-payload-bytes.",
            |s| s.sample.counters.oversize as f64,
        ),
        (
            "attic_messages_lost_total",
            "Rows lost because SQLite rolled back a transaction.",
            |s| s.sample.counters.lost as f64,
        ),
        (
            "attic_store_errors_total",
            "Inserts or commits that failed.",
            |s| s.sample.counters.store_errors as f64,
        ),
        ("attic_files_closed_total", "Files finalised.", |s| {
            s.sample.counters.files_closed as f64
        }),
        (
            "attic_reconnects_total",
            "Broker connections re-established after the first.",
            |s| s.sample.reconnects as f64,
        ),
    ];
    for (name, help, get) in counters {
        per_stream(o, f, name, "counter", help, get);
    }
    let deleted: [(&str, &str, Get); 2] = [
        (
            "attic_files_deleted_total",
            "Finished files deleted by retention.",
            |s| s.sample.files_deleted as f64,
        ),
        (
            "attic_bytes_deleted_total",
            "Bytes of the finished files deleted by retention.",
            |s| s.sample.bytes_deleted as f64,
        ),
    ];
    for (name, help, get) in deleted {
        per_stream(o, f, name, "counter", help, get);
    }
    let gauges: [(&str, &str, Get); 5] = [
        (
            "attic_connected",
            "1 while the broker connection is up.",
            |s| if s.sample.connected { 1.0 } else { 0.0 },
        ),
        (
            "attic_commit_latency_seconds",
            "Duration of the last commit.",
            |s| s.sample.counters.commit_last_us as f64 / 1e6,
        ),
        (
            "attic_commit_latency_max_seconds",
            "Longest commit since start.",
            |s| s.sample.counters.commit_max_us as f64 / 1e6,
        ),
        (
            "attic_last_message_timestamp_seconds",
            "Unix time of the last message received (0 = none yet).",
            |s| s.sample.counters.last_rx_us as f64 / 1e6,
        ),
        (
            "attic_utilisation_ratio",
            "Fraction of the last period the loop spent on this stream.",
            |s| s.utilisation,
        ),
    ];
    for (name, help, get) in gauges {
        per_stream(o, f, name, "gauge", help, get);
    }
    family(
        o,
        "attic_filter_dropped_total",
        "counter",
        "Messages dropped per filter (the wire-level max-payload-bytes included).",
    );
    for s in &f.streams {
        for (filter, n) in &s.sample.filter_drops {
            o.push_str("attic_filter_dropped_total{stream=");
            label(o, &s.sample.name);
            o.push_str(",filter=");
            label(o, filter);
            let _ = writeln!(o, "}} {n}");
        }
    }
    process_metric(
        o,
        "attic_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process.",
        f.process.cpu.as_secs_f64(),
    );
    process_metric(
        o,
        "attic_cpu_percent",
        "gauge",
        "CPU use over the last period, in percent of one core.",
        f.cpu_percent,
    );
    process_metric(
        o,
        "attic_resident_memory_bytes",
        "gauge",
        "Resident memory now.",
        f.process.rss_bytes as f64,
    );
    process_metric(
        o,
        "attic_peak_resident_memory_bytes",
        "gauge",
        "Peak resident memory.",
        f.process.peak_rss_bytes as f64,
    );
    process_metric(
        o,
        "attic_uptime_seconds",
        "gauge",
        "Time since the process started.",
        f.elapsed.as_secs_f64(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn sample(name: &str, received: u64, stored: u64) -> StreamSample {
        StreamSample {
            name: name.into(),
            counters: Counters {
                received,
                received_bytes: received * 10,
                stored,
                stored_bytes: stored * 10,
                last_rx_us: 1_764_250_000_123_456,
                commit_last_us: 1500,
                commit_max_us: 4000,
                ..Counters::default()
            },
            reconnects: 2,
            connected: true,
            file: Some("/data/a\"b\\c\n.sqlite.part".into()),
            busy: Duration::from_millis(250),
            filter_drops: vec![
                ("max-payload-bytes (wire)".into(), 0),
                ("exclude".into(), 4),
            ],
            files_deleted: 3,
            bytes_deleted: 12_288,
        }
    }

    pub(super) fn figures() -> Figures {
        let t0 = Instant::now();
        let mut r = Reporter::new(Duration::from_secs(1), t0, Duration::ZERO);
        let p0 = ProcessSample {
            cpu: Duration::from_millis(100),
            rss_bytes: 4096,
            peak_rss_bytes: 8192,
        };
        r.take(vec![sample("s", 10, 5)], p0, t0 + Duration::from_secs(1), 0);
        let p1 = ProcessSample {
            cpu: Duration::from_millis(150),
            ..p0
        };
        r.take(
            vec![sample("tab\there", 30, 25), sample("zwei", 0, 0)],
            p1,
            t0 + Duration::from_secs(3),
            1_764_250_001_000_000,
        )
    }

    fn python_parses(text: &str, check: &str) -> Option<String> {
        let mut child = Command::new("python3")
            .args(["-c", check])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?; // no python3: the Rust-side checks still ran
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        assert!(
            out.status.success(),
            "python rejected:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_control_characters() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\te\u{1}f\u{7f}é€😀");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}é€😀\"");
        let decoded = python_parses(&s, "import json,sys; print(json.load(sys.stdin), end='')");
        if let Some(d) = decoded {
            assert_eq!(d, "a\"b\\c\nd\te\u{1}f\u{7f}é€😀");
        }
    }

    #[test]
    fn periods_are_differences_and_rates_divide_by_the_period() {
        let f = figures();
        assert_eq!(f.period, Duration::from_secs(2));
        let s = &f.streams[0];
        assert_eq!((s.received, s.stored), (20, 20));
        assert_eq!(s.received_bytes, 200);
        assert!((f.per_second(s.received) - 10.0).abs() < 1e-9);
        assert!((s.utilisation - 0.125).abs() < 1e-9);
        // A stream that appeared later starts from zero.
        assert_eq!(f.streams[1].received, 0);
        assert!((f.cpu_percent - 2.5).abs() < 1e-9);
        assert_eq!(f.total_received(), 30);
    }

    #[test]
    fn the_json_report_parses_and_keeps_the_original_keys() {
        let f = figures();
        let text = json(&f);
        assert!(text.starts_with("{\"elapsed_time_hours\":"));
        for key in [
            "totalMessageCount\":30",
            "messages_per_second_recent\":10",
            "\"stream_prefix\":\"tab\\there\"",
            "\"stream_idx\":1",
            "\"last_rx_timestamp_iso\":\"2025-11-27T13:26:40.123456Z\"",
            "\"is_connected\":true",
        ] {
            assert!(text.contains(key), "{key} missing in {text}");
        }
        let check = "import json,sys\n\
            d=json.load(sys.stdin)\n\
            assert d['totalMessageCount']==30\n\
            assert abs(d['elapsed_time_hours']-3/3600)<1e-9\n\
            assert abs(d['messages_per_second_total']-10)<1e-9\n\
            p=d['performance_details']\n\
            assert [x['stream_idx'] for x in p]==[0,1]\n\
            assert p[0]['messages_this_channel']==30\n\
            assert p[0]['current_file']=='/data/a\"b\\\\c\\n.sqlite.part'\n\
            assert abs(p[0]['last_rx_timestamp_unix']-1764250000.123456)<1e-6\n\
            print('ok',end='')";
        if let Some(out) = python_parses(&text, check) {
            assert_eq!(out, "ok");
        }
    }

    #[test]
    fn no_message_yet_gives_null_timestamps() {
        let mut f = figures();
        f.streams[1].sample.counters.last_rx_us = 0;
        let text = json(&f);
        assert!(text.contains("\"last_rx_timestamp_unix\":null,\"last_rx_timestamp_iso\":null"));
    }

    #[test]
    fn iso_timestamps_are_utc_with_microseconds() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso_utc(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn prometheus_text_has_help_type_and_numeric_samples() {
        let mut f = figures();
        f.streams[1].sample.name = "we\"ird\\".into();
        let text = prometheus(&f);
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "counter" || kind == "gauge");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                typed.insert(name.to_owned());
            } else if !line.starts_with("# HELP ") {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                assert!(typed.contains(name), "{name} has no TYPE");
                value.parse::<f64>().unwrap();
            }
        }
        assert!(text.contains("attic_messages_stored_total{stream=\"tab\there\"} 25\n"));
        assert!(text.contains("{stream=\"we\\\"ird\\\\\"}"));
        assert!(text.contains("attic_cpu_percent 2.5\n"));
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let s = Duration::from_secs;
        assert_eq!(cpu_percent(s(1), s(2), s(4)), 25.0);
        assert_eq!(cpu_percent(s(2), s(1), s(4)), 0.0);
        assert_eq!(cpu_percent(s(0), s(1), Duration::ZERO), 0.0);
    }

    #[test]
    fn statm_gives_resident_pages_and_the_process_sample_is_plausible() {
        assert_eq!(statm_resident_pages("1000 250 30 1 0 100 0\n"), Some(250));
        assert_eq!(statm_resident_pages(""), None);
        let p = ProcessSample::read();
        assert!(p.rss_bytes > 0 && p.peak_rss_bytes >= p.rss_bytes / 2);
    }

    #[test]
    fn log_lines_and_status_name_every_stream_once() {
        let f = figures();
        let lines = log_lines(&f);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("[tab\there] connected; received 20 (10.0/s"));
        assert!(lines[2].starts_with("process: cpu 2.5 %"));
        let st = status_line(&f);
        assert!(st.starts_with("2/2 streams connected; 10.0 msg/s; 25 stored"));
        assert!(!st.contains('\n'));
    }

    #[test]
    fn byte_counts_read_as_binary_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}

#[cfg(test)]
mod filter_drop_tests {
    use super::*;

    #[test]
    fn per_filter_drops_reach_the_log_line_the_json_and_the_metrics() {
        let f = tests::figures();
        let line = &log_lines(&f)[0];
        assert!(line.ends_with("dropped by filter: exclude 4"), "{line}");
        let j = json(&f);
        assert!(
            j.contains(r#""filter_drops_total":{"max-payload-bytes (wire)":0,"exclude":4}"#),
            "{j}"
        );
        let p = prometheus(&f);
        assert!(
            p.contains("attic_filter_dropped_total{stream=\"zwei\",filter=\"exclude\"} 4"),
            "{p}"
        );
    }

    #[test]
    fn retention_deletions_reach_the_json_and_the_metrics() {
        let f = figures();
        let j = json(&f);
        assert!(
            j.contains(r#""files_deleted":3,"bytes_deleted":12288"#),
            "{j}"
        );
        let p = prometheus(&f);
        assert!(
            p.contains("attic_files_deleted_total{stream=\"s\"} 3"),
            "{p}"
        );
        assert!(
            p.contains("attic_bytes_deleted_total{stream=\"s\"} 12288"),
            "{p}"
        );
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_vmhwm_in_kib() {
        let status = "Name:\tattic\nVmPeak:\t  10000 kB\nVmHWM:\t    5124 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(5124));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let p = ProcessSample::read();
        assert!(p.peak_rss_bytes >= p.rss_bytes && p.rss_bytes > 0, "{p:?}");
    }
}
