//! The JSON report of the original, with its key names, and the JSON
//! string escaping and UTC timestamps it needs.
//!
//! Owns: the JSON text. Must not: do arithmetic on counters.

use super::figures::{Figures, StreamFigures};
use std::fmt::Write as _;

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
pub(super) fn json_f64(out: &mut String, v: f64) {
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

pub(super) fn stream_json(out: &mut String, f: &Figures, s: &StreamFigures) {
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
    o.u64("excluded_total", c.filtered);
    o.u64("oversize_total", c.oversize);
    o.u64("lost_total", c.lost);
    o.u64("store_errors_total", c.store_errors);
    o.u64("files_closed_total", c.files_closed);
    o.u64("reconnects_total", s.sample.reconnects);
    o.u64("files_deleted", s.sample.files_deleted);
    o.u64("bytes_deleted", s.sample.bytes_deleted);
    o.u64("received_period", s.received);
    o.u64("stored_period", s.stored);
    o.u64("excluded_period", s.filtered);
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
