//! `attic export`: the selected rows, in reception order, as JSON lines,
//! CSV or one SQLite file.
//!
//! ```text
//!  select::Plan --rows--> Sink (jsonl | csv | sqlite) --> stdout or --output FILE
//! ```
//!
//! [`cli`] parses the arguments and maps errors to exit codes; [`sink`]
//! holds the three writers; [`sessions`] prints the files' `sessions`
//! tables instead of their rows (`--sessions`). This module reads the data folder only through
//! `select` and never writes into it.

pub mod cli;
pub mod sessions;
pub mod sink;

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::select::{Plan, SelectError, Selection, time};
use crate::store::StoreError;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (the default).
    Jsonl,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One SQLite file: the Attic schema plus a `stream` column.
    Sqlite,
}

impl Format {
    /// `--format` value -> format.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "sqlite" | "db" => Some(Format::Sqlite),
            _ => None,
        }
    }

    /// The format an output file's extension asks for, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "sqlite" | "db" => Some(Format::Sqlite),
            _ => None,
        }
    }

    /// `--format` if given, else the output's extension, else jsonl.
    pub fn choose(explicit: Option<Format>, output: Option<&Path>) -> Format {
        explicit
            .or_else(|| output.and_then(Format::from_path))
            .unwrap_or(Format::Jsonl)
    }
}

/// What to export and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The rows.
    pub selection: Selection,
    /// The format.
    pub format: Format,
    /// `None` = stdout.
    pub output: Option<PathBuf>,
    /// `--sessions`: the connections recorded in the files, not the rows.
    pub sessions: bool,
}

/// Why an export failed (every variant is exit code 1 but `Usage`, 2).
#[derive(Debug)]
pub enum ExportError {
    /// A bad argument discovered late (an unknown stream).
    Usage(String),
    /// Reading the stored files.
    Select(SelectError),
    /// Writing the output.
    Write {
        /// The output (`-` for stdout).
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing the SQLite output.
    Store(StoreError),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Usage(m) => f.write_str(m),
            ExportError::Select(e) => e.fmt(f),
            ExportError::Write { path, source } => write!(f, "write {path}: {source}"),
            ExportError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> ExportError {
        ExportError::Store(e)
    }
}

impl From<SelectError> for ExportError {
    fn from(e: SelectError) -> ExportError {
        match e {
            SelectError::Usage(m) => ExportError::Usage(m),
            other => ExportError::Select(other),
        }
    }
}

/// Runs an export to completion; returns the number of rows written. A
/// failed SQLite export leaves no file behind.
pub fn export(config: &Config, opts: &ExportOptions) -> Result<u64, ExportError> {
    if opts.sessions {
        return sessions::export_sessions(config, opts);
    }
    let result = export_rows(config, opts);
    if let (Err(_), Format::Sqlite, Some(out)) = (&result, opts.format, &opts.output) {
        let _ = std::fs::remove_file(crate::store::export_file::incomplete_path(out));
    }
    result
}

fn export_rows(config: &Config, opts: &ExportOptions) -> Result<u64, ExportError> {
    let plan = Plan::new(config, &opts.selection)?;
    let (streams, mut rows) = plan.rows();
    let mut sink = sink::open(opts, &streams)?;
    let mut progress = Progress::new();
    let mut count: u64 = 0;
    while let Some(row) = rows.next_row()? {
        sink.row(&row, &streams[row.stream])?;
        count += 1;
        if count % 8_192 == 0 {
            progress.show(count, row.timestamp_us);
        }
    }
    progress.clear();
    sink.finish(count)?;
    Ok(count)
}

/// The progress line on stderr, only when stderr is a terminal.
struct Progress {
    /// `None` when stderr is not a terminal.
    started: Option<Instant>,
    /// When the line was last drawn.
    last: Instant,
    /// Something is drawn and must be cleared.
    drawn: bool,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: std::io::stderr().is_terminal().then_some(now),
            last: now,
            drawn: false,
        }
    }

    fn show(&mut self, rows: u64, at_us: i64) {
        let Some(start) = self.started else { return };
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(250) {
            return;
        }
        self.last = now;
        self.drawn = true;
        let secs = now.duration_since(start).as_secs_f64().max(1e-3);
        let rate = rows as f64 / secs;
        let at = time::rfc3339_us(at_us).unwrap_or_default();
        eprint!("\rattic export: {rows} rows, {rate:.0} rows/s, at {at}\x1b[K");
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}
