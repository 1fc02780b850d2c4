//! `--summary`: the one JSON object `attic run` writes at exit, and the
//! per-stream [`Tally`] it is built from (reception-time span of the rows
//! committed, files finalised).
//!
//! ```text
//! { "attic_version": "0.1.0", "pid": 4242,
//!   "start_us": 1795833300123456, "start_time": "2026-11-28T02:35:00.123456Z",
//!   "end_us": ..., "end_time": "...", "duration_s": 12.5,
//!   "exit_reason": "stop-after-messages", "exit_code": 0, "error": null,
//!   "received": 1000, "stored": 1000, "cpu_s": 0.041, "peak_rss_bytes": 5345280,
//!   "streams": [ { "folder": "everything", "received": 1000, "received_bytes": 64000,
//!                  "stored": 1000, "stored_bytes": 64000, "filtered": 0, "skipped": 0,
//!                  "lost": 0, "reconnects": 0,
//!                  "first_reception_timestamp": 1795833301000000,
//!                  "first_reception_time": "2026-11-28T02:35:01.000000Z",
//!                  "last_reception_timestamp": ..., "last_reception_time": "...",
//!                  "files": ["/data/everything/2026-11-28/1795833301000000.sqlite"] } ] }
//! ```
//!
//! Every moment appears twice: as unix microseconds (`*_us`, and
//! `*_reception_timestamp` like the column it mirrors) and as an RFC 3339
//! UTC string with microseconds (`*_time`). The first/last reception
//! timestamps are the smallest and largest of the rows committed by this
//! run, so they equal `min`/`max(reception_timestamp)` over its files.
//!
//! Owns: the JSON shape and the tally's rules. Must not: read the clock,
//! the process's usage or the streams itself (the loop and `harness` hand
//! it figures), or do I/O.

use crate::report::iso_utc;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Why `attic run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitReason {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--stop-after` elapsed.
    StopAfter,
    /// `--stop-after-messages` reached.
    StopAfterMessages,
    /// A fatal error (start-up or the loop's own machinery); see `error`.
    Error,
}

/// What one stream stored during this run, beyond its counters: the span of
/// reception timestamps committed and the files finalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Smallest and largest reception timestamp committed.
    committed: Option<(i64, i64)>,
    /// The same over rows inserted but not yet committed.
    pending: Option<(i64, i64)>,
    /// Finalised files (and a `.part` left at a failed stop), in order;
    /// kept only when `record_files` is on, so that a long-running service
    /// does not grow a list it never reports.
    files: Vec<PathBuf>,
    /// Whether `files` is kept (`--summary` given).
    record_files: bool,
}

fn widen(span: Option<(i64, i64)>, lo: i64, hi: i64) -> (i64, i64) {
    span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi)))
}

impl Tally {
    /// Starts keeping the list of files written.
    pub fn record_files(&mut self) {
        self.record_files = true;
    }

    /// A row with this reception timestamp went into the open transaction.
    pub fn inserted(&mut self, ts_us: i64) {
        self.pending = Some(widen(self.pending, ts_us, ts_us));
    }

    /// The open transaction committed.
    pub fn committed(&mut self) {
        if let Some((lo, hi)) = self.pending.take() {
            self.committed = Some(widen(self.committed, lo, hi));
        }
    }

    /// SQLite rolled the open transaction back: its rows are not stored.
    pub fn rolled_back(&mut self) {
        self.pending = None;
    }

    /// A file was finalised (or, at a failed stop, left as `.part`).
    pub fn file_written(&mut self, path: &Path) {
        if self.record_files {
            self.files.push(path.to_path_buf());
        }
    }

    /// Smallest and largest reception timestamp committed so far.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.committed
    }

    /// The files written so far (empty unless recording).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// A stream's counts as the summary needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// The folder name (`prefix` + `suffix`).
    pub folder: String,
    /// Messages received (stored, filtered or skipped).
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages committed to a file.
    pub stored: u64,
    /// Payload bytes committed.
    pub stored_bytes: u64,
    /// Messages dropped by `exclude` and `filters:`.
    pub filtered: u64,
    /// Messages skipped for exceeding `max-payload-bytes`.
    pub skipped: u64,
    /// Messages that never reached a committed row.
    pub lost: u64,
    /// Connections re-established after the first.
    pub reconnects: u64,
    /// Reception-time span and files.
    pub tally: Tally,
}

/// One stream in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// The stream's folder under `data-folder`.
    pub folder: String,
    /// See [`StreamTotals`].
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages committed to a file.
    pub stored: u64,
    /// Payload bytes committed.
    pub stored_bytes: u64,
    /// Dropped by the filter chain.
    pub filtered: u64,
    /// Over `max-payload-bytes`.
    pub skipped: u64,
    /// Never reached a committed row.
    pub lost: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Smallest committed reception timestamp (unix µs); null if none.
    pub first_reception_timestamp: Option<i64>,
    /// The same as RFC 3339 UTC.
    pub first_reception_time: Option<String>,
    /// Largest committed reception timestamp (unix µs); null if none.
    pub last_reception_timestamp: Option<i64>,
    /// The same as RFC 3339 UTC.
    pub last_reception_time: Option<String>,
    /// Files written, absolute paths, in the order they were finalised, as
    /// they are at exit: a `.part` for one a reader held at the stop; none
    /// that retention deleted meanwhile.
    pub files: Vec<String>,
}

impl StreamSummary {
    /// Builds a stream's entry from its figures.
    pub fn new(f: &StreamTotals) -> Self {
        let span = f.tally.span();
        StreamSummary {
            folder: f.folder.clone(),
            received: f.received,
            received_bytes: f.received_bytes,
            stored: f.stored,
            stored_bytes: f.stored_bytes,
            filtered: f.filtered,
            skipped: f.skipped,
            lost: f.lost,
            reconnects: f.reconnects,
            first_reception_timestamp: span.map(|s| s.0),
            first_reception_time: span.map(|s| iso_utc(s.0)),
            last_reception_timestamp: span.map(|s| s.1),
            last_reception_time: span.map(|s| iso_utc(s.1)),
            files: f
                .tally
                .files()
                .iter()
                .filter_map(|p| on_disk(p))
                .map(|p| absolute(&p))
                .collect(),
        }
    }
}

/// A written file as it is on disk at exit: its final name, else the
/// `.part` it still is (a reader held it at the stop; the next start
/// finishes it); `None` when it is gone (retention deleted it).
fn on_disk(p: &Path) -> Option<PathBuf> {
    use crate::layout::{Kind, with_kind};
    [with_kind(p, Kind::Finished), with_kind(p, Kind::Part)]
        .into_iter()
        .find(|c| c.exists())
}

/// A path as an absolute string (relative `data-folder`s are relative to
/// the working directory, which Attic never changes).
fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Attic's version.
    pub attic_version: &'static str,
    /// Process id.
    pub pid: u32,
    /// Start-up, unix µs.
    pub start_us: i64,
    /// Start-up, RFC 3339 UTC.
    pub start_time: String,
    /// Exit, unix µs.
    pub end_us: i64,
    /// Exit, RFC 3339 UTC.
    pub end_time: String,
    /// From start-up to exit, monotonic seconds.
    pub duration_s: f64,
    /// Why the run ended.
    pub exit_reason: ExitReason,
    /// The process's exit code (0 clean stop, 1 fatal error).
    pub exit_code: u8,
    /// The fatal error, for `exit_reason: "error"`; else null.
    pub error: Option<String>,
    /// Messages received, all streams.
    pub received: u64,
    /// Messages committed, all streams.
    pub stored: u64,
    /// User + system CPU seconds of the process.
    pub cpu_s: f64,
    /// Peak resident memory (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// Per stream, in configuration order; empty if the run failed before
    /// its streams stopped.
    pub streams: Vec<StreamSummary>,
}

impl Summary {
    /// The summary as one line of JSON, with a final newline.
    pub fn to_json_line(&self) -> String {
        match serde_json::to_string(self) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            // Serialising plain numbers and strings cannot fail; say so
            // rather than write nothing.
            Err(e) => format!("{{\"error\":\"summary not serialisable: {e}\"}}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_span_covers_committed_rows_only() {
        let mut t = Tally::default();
        t.inserted(20);
        t.inserted(10);
        assert_eq!(t.span(), None, "nothing committed yet");
        t.committed();
        assert_eq!(t.span(), Some((10, 20)));
        t.inserted(30);
        t.rolled_back();
        t.committed();
        assert_eq!(t.span(), Some((10, 20)), "rolled-back rows are not stored");
        t.inserted(5);
        t.inserted(40);
        t.committed();
        assert_eq!(t.span(), Some((5, 40)), "a clock step back widens the span");
    }

    #[test]
    fn files_are_kept_only_when_recording() {
        let mut t = Tally::default();
        t.file_written(Path::new("/d/a.sqlite"));
        assert!(t.files().is_empty());
        t.record_files();
        t.file_written(Path::new("/d/b.sqlite"));
        assert_eq!(t.files(), [PathBuf::from("/d/b.sqlite")]);
    }

    #[test]
    fn a_stream_entry_has_the_documented_fields_and_both_time_forms() {
        let mut tally = Tally::default();
        tally.record_files();
        tally.inserted(1_795_833_301_000_000);
        tally.inserted(1_795_833_302_500_001);
        tally.committed();
        let dir = std::env::temp_dir().join(format!("attic-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("1795833301000000.sqlite");
        std::fs::write(&file, b"").unwrap();
        tally.file_written(&file);
        let f = StreamTotals {
            folder: "s".into(),
            received: 5,
            received_bytes: 50,
            stored: 2,
            stored_bytes: 20,
            filtered: 1,
            skipped: 1,
            lost: 1,
            reconnects: 3,
            tally,
        };
        let v = serde_json::to_value(StreamSummary::new(&f)).unwrap();
        assert_eq!(
            v,
            json!({
                "folder": "s", "received": 5, "received_bytes": 50, "stored": 2,
                "stored_bytes": 20, "filtered": 1, "skipped": 1, "lost": 1, "reconnects": 3,
                "first_reception_timestamp": 1_795_833_301_000_000_i64,
                "first_reception_time": "2026-11-28T02:35:01.000000Z",
                "last_reception_timestamp": 1_795_833_302_500_001_i64,
                "last_reception_time": "2026-11-28T02:35:02.500001Z",
                "files": [file.display().to_string()],
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_are_listed_as_they_are_at_exit() {
        let dir = std::env::temp_dir().join(format!("attic-summary-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let finished = dir.join("0000000000000001.sqlite");
        let held = dir.join("0000000000000002.sqlite");
        let deleted = dir.join("0000000000000003.sqlite");
        std::fs::write(&finished, b"").unwrap();
        // A reader held it at the stop: it is still the `.part`.
        std::fs::write(dir.join("0000000000000002.sqlite.part"), b"").unwrap();
        let mut tally = Tally::default();
        tally.record_files();
        for f in [&finished, &held, &deleted] {
            tally.file_written(f);
        }
        let s = StreamSummary::new(&StreamTotals {
            tally,
            ..StreamTotals::default()
        });
        assert_eq!(
            s.files,
            [
                finished.display().to_string(),
                format!("{}.part", held.display())
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stream_that_stored_nothing_has_null_times() {
        let v = serde_json::to_value(StreamSummary::new(&StreamTotals::default())).unwrap();
        assert_eq!(v["first_reception_timestamp"], Value::Null);
        assert_eq!(v["last_reception_time"], Value::Null);
        assert_eq!(v["files"], json!([]));
    }

    #[test]
    fn relative_file_paths_are_made_absolute() {
        let mut tally = Tally::default();
        tally.record_files();
        // Tests run in the package root: a relative path under target/.
        let rel = PathBuf::from(format!("target/attic-summary-rel-{}", std::process::id()));
        std::fs::create_dir_all(&rel).unwrap();
        let file = rel.join("x.sqlite");
        std::fs::write(&file, b"").unwrap();
        tally.file_written(&file);
        let s = StreamSummary::new(&StreamTotals {
            tally,
            ..StreamTotals::default()
        });
        assert!(Path::new(&s.files[0]).is_absolute(), "{:?}", s.files);
        assert!(s.files[0].ends_with(&file.display().to_string()));
        std::fs::remove_dir_all(&rel).unwrap();
    }

    #[test]
    fn the_summary_is_one_line_with_the_documented_fields() {
        let s = Summary {
            attic_version: "0.1.0",
            pid: 42,
            start_us: 0,
            start_time: iso_utc(0),
            end_us: 1_500_000,
            end_time: iso_utc(1_500_000),
            duration_s: 1.5,
            exit_reason: ExitReason::StopAfterMessages,
            exit_code: 0,
            error: None,
            received: 3,
            stored: 2,
            cpu_s: 0.25,
            peak_rss_bytes: 4096,
            streams: vec![],
        };
        let line = s.to_json_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({
                "attic_version": "0.1.0", "pid": 42,
                "start_us": 0, "start_time": "1970-01-01T00:00:00.000000Z",
                "end_us": 1_500_000, "end_time": "1970-01-01T00:00:01.500000Z",
                "duration_s": 1.5, "exit_reason": "stop-after-messages", "exit_code": 0,
                "error": null, "received": 3, "stored": 2, "cpu_s": 0.25,
                "peak_rss_bytes": 4096, "streams": [],
            })
        );
    }

    #[test]
    fn exit_reasons_are_kebab_case_words() {
        let words: Vec<Value> = [
            ExitReason::Signal,
            ExitReason::StopAfter,
            ExitReason::StopAfterMessages,
            ExitReason::Error,
        ]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
        assert_eq!(
            words,
            [
                json!("signal"),
                json!("stop-after"),
                json!("stop-after-messages"),
                json!("error")
            ]
        );
    }
}
