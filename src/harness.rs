//! What the scripting options of `attic run` do (see `run_options`): the
//! ready file, the stop conditions, and writing the summary at exit.
//!
//! ```text
//!   start    remove a stale ready file; check the folders of the ready
//!            and summary files exist (else: start-up error, exit 1)
//!   each turn (after dispatch)   every stream subscribed once? -> ready file
//!            signal / --stop-after elapsed / --stop-after-messages reached
//!            -> the loop's own stop sequence (as on SIGTERM)
//!   stop     after the stop sequence: the streams' final figures
//!   exit     remove the ready file, then write the summary
//! ```
//!
//! The ready file (written atomically: a hidden temporary file in the same
//! folder, then rename):
//!
//! ```text
//! { "pid": 4242, "attic_version": "0.1.0",
//!   "streams": [ { "folder": "everything", "path": "/data/everything",
//!                  "session_present": false,
//!                  "subscriptions": [ { "filter": "#", "requested_qos": 1,
//!                                       "granted_qos": 1 } ] } ] }
//! ```
//!
//! `granted_qos` is null when the broker refused that filter, and for every
//! filter when the broker resumed a persistent session (`session_present`:
//! no SUBSCRIBE was needed, so none was acknowledged).
//!
//! Owns: those files and the stop decision. Must not: stop the streams
//! itself (the loop runs its usual stop sequence), see the streams (the
//! loop hands it a [`Progress`] per stream and, at the stop, their
//! [`StreamTotals`]), or block the loop (two small file writes, once each).

use crate::atomic::write_atomically;
use crate::config::Config;
use crate::report::ProcessSample;
use crate::run_options::{RunOptions, SummaryTarget};
use crate::summary::{ExitReason, StreamSummary, StreamTotals, Summary};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One configured stream, as the ready file names it.
#[derive(Debug, Clone)]
struct StreamInfo {
    folder: String,
    path: PathBuf,
    filters: Vec<String>,
    qos: u8,
}

/// What the harness needs of one stream each loop turn.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Its subscriptions have been confirmed at least once.
    pub subscribed: bool,
    /// QoS granted per filter by the last SUBACK (empty: session resumed).
    pub granted: &'a [Option<u8>],
    /// Messages committed, plus those inserted and awaiting their commit.
    pub stored: u64,
}

/// The scripting options at work during one `attic run`.
#[derive(Debug)]
pub struct Harness {
    opts: RunOptions,
    /// Start-up, monotonic (`--stop-after` counts from here) and wall.
    started: Instant,
    start_us: i64,
    /// `started + --stop-after`.
    stop_at: Option<Instant>,
    /// The configured streams, in order (the loop's streams have the same).
    streams: Vec<StreamInfo>,
    /// The ready file has been written.
    ready_written: bool,
    /// Set when the loop decided to stop.
    reason: Option<ExitReason>,
    /// Messages stored, all streams, as of the last turn.
    stored: u64,
    /// The streams' figures after the stop sequence.
    figures: Vec<StreamTotals>,
}

/// The ready file's JSON.
#[derive(Debug, Serialize)]
struct Ready {
    pid: u32,
    attic_version: &'static str,
    streams: Vec<ReadyStream>,
}

#[derive(Debug, Serialize)]
struct ReadyStream {
    folder: String,
    path: String,
    session_present: bool,
    subscriptions: Vec<ReadySubscription>,
}

#[derive(Debug, Serialize)]
struct ReadySubscription {
    filter: String,
    requested_qos: u8,
    granted_qos: Option<u8>,
}

impl Harness {
    /// Prepares the options of this run: removes a ready file left by an
    /// earlier run (a script must never mistake it for this one's) and
    /// checks that the files can be written where asked.
    /// An error is one line for a start-up failure (exit 1).
    pub fn new(opts: &RunOptions, config: &Config, now: Instant) -> Result<Harness, String> {
        if let Some(p) = &opts.ready_file {
            check_folder("ready file", p)?;
            match std::fs::remove_file(p) {
                Ok(()) => log::info!("removed the stale ready file {}", p.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "cannot remove the stale ready file {}: {e}",
                        p.display()
                    ));
                }
            }
        }
        if let Some(SummaryTarget::File(p)) = &opts.summary {
            check_folder("summary file", p)?;
        }
        Ok(Harness {
            opts: opts.clone(),
            started: now,
            start_us: crate::clock::now_us(),
            stop_at: opts.stop_after.and_then(|d| now.checked_add(d)),
            streams: config
                .streams
                .iter()
                .map(|s| StreamInfo {
                    folder: s.folder_name.clone(),
                    path: config.data_folder.join(&s.folder_name),
                    filters: s.topics.clone(),
                    qos: s.qos,
                })
                .collect(),
            ready_written: false,
            reason: None,
            stored: 0,
            figures: Vec::new(),
        })
    }

    /// True when the summary wants the list of files each stream writes.
    pub fn wants_files(&self) -> bool {
        self.opts.summary.is_some()
    }

    /// When the loop must wake for a stop condition: `--stop-after`, or at
    /// once when `--stop-after-messages` was reached during the last turn.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.messages_reached() {
            return Some(self.started);
        }
        self.stop_at
    }

    /// Called once per loop turn, after dispatch, with every stream's
    /// progress in configuration order: writes the ready file as soon as
    /// every stream has subscribed once, and decides whether to stop
    /// (`signalled`: a SIGINT/SIGTERM arrived this turn).
    pub fn on_turn<'a>(
        &mut self,
        streams: impl Iterator<Item = Progress<'a>>,
        signalled: bool,
        now: Instant,
    ) -> bool {
        let want_ready = !self.ready_written && self.opts.ready_file.is_some();
        let mut all_subscribed = true;
        let mut granted: Vec<Vec<Option<u8>>> = Vec::new();
        self.stored = 0;
        for p in streams {
            all_subscribed &= p.subscribed;
            self.stored += p.stored;
            if want_ready && all_subscribed {
                granted.push(p.granted.to_vec());
            }
        }
        if want_ready && all_subscribed {
            self.write_ready(&granted);
        }
        if self.reason.is_some() {
            return true;
        }
        self.reason = if signalled {
            Some(ExitReason::Signal)
        } else if self.stop_at.is_some_and(|t| now >= t) {
            log::info!(
                "stopping: --stop-after {:?} has elapsed",
                self.opts.stop_after.unwrap_or_default()
            );
            Some(ExitReason::StopAfter)
        } else if self.messages_reached() {
            log::info!(
                "stopping: {} message(s) stored (--stop-after-messages {})",
                self.stored,
                self.opts.stop_after_messages.unwrap_or_default()
            );
            Some(ExitReason::StopAfterMessages)
        } else {
            None
        };
        self.reason.is_some()
    }

    /// After the stop sequence: keeps the streams' final figures for the
    /// summary.
    pub fn stopped(&mut self, streams: impl Iterator<Item = StreamTotals>) {
        self.figures = streams.collect();
    }

    /// At exit: removes the ready file, then writes the summary. Failures
    /// are logged, never fatal (the data is safe by now).
    /// `error`: the fatal error that ended the run, if any.
    pub fn finish(&mut self, error: Option<String>) {
        if let Some(p) = &self.opts.ready_file
            && self.ready_written
            && let Err(e) = std::fs::remove_file(p)
        {
            log::warn!("cannot remove the ready file {}: {e}", p.display());
        }
        let Some(target) = &self.opts.summary else {
            return;
        };
        let summary = self.summary(error, ProcessSample::read(), crate::clock::now_us());
        let text = summary.to_json_line();
        let written = match target {
            SummaryTarget::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            SummaryTarget::File(p) => write_atomically(p, text.as_bytes()),
        };
        if let Err(e) = written {
            log::error!("cannot write the summary: {e}");
        }
    }

    fn summary(&self, error: Option<String>, process: ProcessSample, now_us: i64) -> Summary {
        let streams: Vec<StreamSummary> = self.figures.iter().map(StreamSummary::new).collect();
        let (reason, code) = match error {
            None => (self.reason.unwrap_or(ExitReason::Signal), 0),
            Some(_) => (ExitReason::Error, 1),
        };
        Summary {
            attic_version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            start_us: self.start_us,
            start_time: crate::report::iso_utc(self.start_us),
            end_us: now_us,
            end_time: crate::report::iso_utc(now_us),
            duration_s: micros(self.started.elapsed().as_secs_f64()),
            exit_reason: reason,
            exit_code: code,
            error,
            received: streams.iter().map(|s| s.received).sum(),
            stored: streams.iter().map(|s| s.stored).sum(),
            cpu_s: micros(process.cpu.as_secs_f64()),
            peak_rss_bytes: process.peak_rss_bytes,
            streams,
        }
    }

    fn messages_reached(&self) -> bool {
        self.opts
            .stop_after_messages
            .is_some_and(|n| self.stored >= n)
    }

    fn write_ready(&mut self, granted: &[Vec<Option<u8>>]) {
        let Some(path) = &self.opts.ready_file else {
            return;
        };
        let ready = Ready {
            pid: std::process::id(),
            attic_version: env!("CARGO_PKG_VERSION"),
            streams: self
                .streams
                .iter()
                .zip(granted)
                .map(|(info, g)| ready_stream(info, g))
                .collect(),
        };
        let text = match serde_json::to_string(&ready) {
            Ok(t) => t + "\n",
            Err(e) => format!("{{\"pid\":{},\"error\":\"{e}\"}}\n", std::process::id()),
        };
        // Marked written even on failure: retrying every turn would flood
        // the log, and the script's own deadline reports the problem.
        self.ready_written = true;
        match write_atomically(path, text.as_bytes()) {
            Ok(()) => log::info!("every stream is subscribed: wrote {}", path.display()),
            Err(e) => log::error!("cannot write the ready file: {e}"),
        }
    }
}

/// Seconds rounded to the microsecond, so that JSON shows `1.114422`, not
/// `1.1144219340000001`.
fn micros(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

fn ready_stream(info: &StreamInfo, granted: &[Option<u8>]) -> ReadyStream {
    // No SUBACK on this connection (empty `granted`): the broker resumed
    // the session with its subscriptions.
    let session_present = granted.is_empty();
    ReadyStream {
        folder: info.folder.clone(),
        path: std::path::absolute(&info.path)
            .unwrap_or_else(|_| info.path.clone())
            .display()
            .to_string(),
        session_present,
        subscriptions: info
            .filters
            .iter()
            .enumerate()
            .map(|(i, f)| ReadySubscription {
                filter: f.clone(),
                requested_qos: info.qos,
                granted_qos: granted.get(i).copied().flatten(),
            })
            .collect(),
    }
}

/// The folder `path` is to be written in exists (the current directory for
/// a bare file name).
fn check_folder(what: &str, path: &Path) -> Result<(), String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if folder.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "{what} {}: folder {} does not exist",
            path.display(),
            folder.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn info() -> StreamInfo {
        StreamInfo {
            folder: "plant".into(),
            path: PathBuf::from("/data/plant"),
            filters: vec!["a/#".into(), "b/+".into()],
            qos: 2,
        }
    }

    #[test]
    fn the_ready_file_names_each_filter_with_its_granted_qos() {
        let v = serde_json::to_value(ready_stream(&info(), &[Some(1), None])).unwrap();
        assert_eq!(
            v,
            json!({
                "folder": "plant", "path": "/data/plant", "session_present": false,
                "subscriptions": [
                    {"filter": "a/#", "requested_qos": 2, "granted_qos": 1},
                    {"filter": "b/+", "requested_qos": 2, "granted_qos": null},
                ],
            })
        );
    }

    #[test]
    fn a_resumed_session_has_no_granted_qos() {
        let v = serde_json::to_value(ready_stream(&info(), &[])).unwrap();
        assert_eq!(v["session_present"], json!(true));
        assert_eq!(v["subscriptions"][0]["granted_qos"], Value::Null);
        assert_eq!(v["subscriptions"][1]["granted_qos"], Value::Null);
    }

    #[test]
    fn the_ready_file_has_pid_version_and_streams() {
        let r = Ready {
            pid: 7,
            attic_version: "0.1.0",
            streams: vec![ready_stream(&info(), &[Some(2), Some(2)])],
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["pid"], json!(7));
        assert_eq!(v["attic_version"], json!("0.1.0"));
        assert_eq!(v["streams"][0]["folder"], json!("plant"));
    }

    #[test]
    fn seconds_are_rounded_to_the_microsecond_for_json() {
        assert_eq!(
            serde_json::to_string(&micros(1.114_421_934_000_000_1)).unwrap(),
            "1.114422"
        );
        assert_eq!(micros(0.0), 0.0);
    }

    #[test]
    fn an_atomic_write_leaves_only_the_final_file() {
        let dir = std::env::temp_dir().join(format!("attic-harness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ready.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_folder_is_a_start_up_error_naming_it() {
        let e = check_folder("ready file", Path::new("/nonexistent-attic/r.json")).unwrap_err();
        assert!(e.contains("/nonexistent-attic"), "{e}");
        assert!(check_folder("ready file", Path::new("r.json")).is_ok());
    }
}
