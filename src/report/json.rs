//! The JSON report of the original, with its key names, and the UTC
//! timestamps it needs. The text is serde_json's, from typed structs whose
//! field order is the key order.
//!
//! Owns: the JSON shape. Must not: do arithmetic on counters.

use super::figures::{Figures, StreamFigures};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// Appends `s` as a JSON string literal (quotes included).
pub fn json_string(out: &mut String, s: &str) {
    // Serialising a `str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A finite float (NaN and infinities, which JSON lacks, as 0).
fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// ISO 8601 UTC with microseconds: `2026-11-27T13:05:09.123456Z`.
pub fn iso_utc(us: i64) -> String {
    crate::time::rfc3339_us(us).unwrap_or_default()
}

/// The whole report: the original's keys first, then the new figures.
#[derive(Serialize)]
struct Report<'a> {
    elapsed_time_hours: f64,
    #[serde(rename = "totalMessageCount")]
    total_message_count: u64,
    messages_per_second_total: f64,
    messages_per_second_recent: f64,
    performance_details: Vec<StreamReport<'a>>,
    attic_version: &'static str,
    timestamp_unix: f64,
    period_seconds: f64,
    stored_message_count: u64,
    cpu_percent: f64,
    cpu_seconds_total: f64,
    resident_memory_bytes: u64,
    peak_resident_memory_bytes: u64,
}

/// One entry of `performance_details`.
#[derive(Serialize)]
struct StreamReport<'a> {
    stream_prefix: &'a str,
    stream_idx: u64,
    utilisation_ratio: f64,
    messages_this_channel: u64,
    last_rx_timestamp_unix: Option<f64>,
    last_rx_timestamp_iso: Option<String>,
    is_connected: bool,
    received_total: u64,
    received_bytes_total: u64,
    stored_total: u64,
    stored_bytes_total: u64,
    excluded_total: u64,
    oversize_total: u64,
    lost_total: u64,
    store_errors_total: u64,
    files_closed_total: u64,
    reconnects_total: u64,
    files_deleted: u64,
    bytes_deleted: u64,
    hooks_done: u64,
    hooks_failed: u64,
    hooks_pending: u64,
    received_period: u64,
    stored_period: u64,
    excluded_period: u64,
    oversize_period: u64,
    lost_period: u64,
    received_per_second: f64,
    stored_per_second: f64,
    received_bytes_per_second: f64,
    stored_bytes_per_second: f64,
    commit_latency_last_ms: f64,
    commit_latency_max_ms: f64,
    current_file: Option<&'a str>,
    filter_drops_total: Drops<'a>,
}

/// Per-filter drop counts as a JSON object, in chain order.
struct Drops<'a>(&'a [(String, u64)]);

impl Serialize for Drops<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.0.len()))?;
        for (name, n) in self.0 {
            map.serialize_entry(name, n)?;
        }
        map.end()
    }
}

/// The JSON report: the original's keys with their meaning, then the new
/// figures (every key is documented in README.md, "Self-report").
pub fn json(f: &Figures) -> String {
    let elapsed = f.elapsed.as_secs_f64();
    let total = f.total_received();
    let report = Report {
        elapsed_time_hours: finite(elapsed / 3600.0),
        total_message_count: total,
        messages_per_second_total: if elapsed > 0.0 {
            finite(total as f64 / elapsed)
        } else {
            0.0
        },
        messages_per_second_recent: finite(f.per_second(f.period_received())),
        performance_details: f.streams.iter().map(|s| stream_report(f, s)).collect(),
        attic_version: env!("CARGO_PKG_VERSION"),
        timestamp_unix: f.at_us as f64 / 1e6,
        period_seconds: finite(f.period.as_secs_f64()),
        stored_message_count: f.total_stored(),
        cpu_percent: finite(f.cpu_percent),
        cpu_seconds_total: finite(f.process.cpu.as_secs_f64()),
        resident_memory_bytes: f.process.rss_bytes,
        peak_resident_memory_bytes: f.process.peak_rss_bytes,
    };
    // Serialising plain numbers, strings and maps with string keys cannot fail.
    serde_json::to_string(&report).unwrap_or_default()
}

fn stream_report<'a>(f: &Figures, s: &'a StreamFigures) -> StreamReport<'a> {
    let c = &s.sample.counters;
    let seen = c.last_rx_us > 0;
    StreamReport {
        stream_prefix: &s.sample.name,
        stream_idx: s.idx as u64,
        utilisation_ratio: finite(s.utilisation),
        messages_this_channel: c.received,
        last_rx_timestamp_unix: seen.then(|| c.last_rx_us as f64 / 1e6),
        last_rx_timestamp_iso: seen.then(|| iso_utc(c.last_rx_us)),
        is_connected: s.sample.connected,
        received_total: c.received,
        received_bytes_total: c.received_bytes,
        stored_total: c.stored,
        stored_bytes_total: c.stored_bytes,
        excluded_total: c.filtered,
        oversize_total: c.oversize,
        lost_total: c.lost,
        store_errors_total: c.store_errors,
        files_closed_total: c.files_closed,
        reconnects_total: s.sample.reconnects,
        files_deleted: s.sample.files_deleted,
        bytes_deleted: s.sample.bytes_deleted,
        hooks_done: s.sample.hooks_done,
        hooks_failed: s.sample.hooks_failed,
        hooks_pending: s.sample.hooks_pending,
        received_period: s.received,
        stored_period: s.stored,
        excluded_period: s.filtered,
        oversize_period: s.oversize,
        lost_period: s.lost,
        received_per_second: finite(f.per_second(s.received)),
        stored_per_second: finite(f.per_second(s.stored)),
        received_bytes_per_second: finite(f.per_second(s.received_bytes)),
        stored_bytes_per_second: finite(f.per_second(s.stored_bytes)),
        commit_latency_last_ms: c.commit_last_us as f64 / 1e3,
        commit_latency_max_ms: c.commit_max_us as f64 / 1e3,
        current_file: s.sample.file.as_deref(),
        filter_drops_total: Drops(&s.sample.filter_drops),
    }
}
