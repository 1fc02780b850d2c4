//! The figures of one period: per-stream deltas of the [`Counters`],
//! rates, loop utilisation and CPU percent, computed from successive samples.
//!
//! Owns: [`StreamSample`], [`Figures`], [`Reporter`]. Must not: render text
//! or read the process's usage (that is `process`).

use super::process::ProcessSample;
use crate::counters::Counters;
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
    /// `on-finish` runs that exited 0 since start.
    pub hooks_done: u64,
    /// `on-finish` runs that failed since start (each retry counts).
    pub hooks_failed: u64,
    /// Files whose `on-finish` hook is not done yet.
    pub hooks_pending: u64,
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
    pub filtered: u64,
    /// Messages skipped as oversize during the period.
    pub oversize: u64,
    /// Messages given up during the period (never committed).
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
                    filtered: d(c.filtered, prev.filtered),
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
