//! The Prometheus text exposition of a report, for `metrics-file`.
//!
//! Owns: metric names, HELP and TYPE lines, label escaping. Must not: do
//! arithmetic on counters.

use super::figures::{Figures, StreamFigures};
use std::fmt::Write as _;

/// Appends `v` as a Prometheus label value (quotes included).
pub(super) fn label(out: &mut String, v: &str) {
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

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(super) fn prom_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push('0');
    }
}

/// A per-stream metric family: one sample per stream.
pub(super) fn per_stream(
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

pub(super) fn process_metric(out: &mut String, name: &str, kind: &str, help: &str, v: f64) {
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
            "Messages dropped by a filter (any filter of the stream: exclude, include, changes-only, min-interval, max-payload).",
            |s| s.sample.counters.filtered as f64,
        ),
        (
            "attic_messages_oversize_total",
            "Messages skipped for exceeding max-payload-bytes.",
            |s| s.sample.counters.oversize as f64,
        ),
        (
            "attic_messages_lost_total",
            "Messages that never reached a committed row (given up at a stop while storage failed).",
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
    let hooks: [(&str, &str, &str, Get); 3] = [
        (
            "attic_hooks_done_total",
            "counter",
            "on-finish runs that exited 0.",
            |s| s.sample.hooks_done as f64,
        ),
        (
            "attic_hooks_failed_total",
            "counter",
            "on-finish runs that failed (each retry counts).",
            |s| s.sample.hooks_failed as f64,
        ),
        (
            "attic_hooks_pending",
            "gauge",
            "Finished files whose on-finish hook is not done yet.",
            |s| s.sample.hooks_pending as f64,
        ),
    ];
    for (name, kind, help, get) in hooks {
        per_stream(o, f, name, kind, help, get);
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
