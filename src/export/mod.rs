//! `attic export`: the selected rows, in reception order, as JSON lines,
//! CSV, one SQLite file or Parquet, with payloads optionally decoded.
//!
//! ```text
//!  select::Plan --rows--> decode::RowDecoder --row + Decoded--> Sink --> stdout, --output FILE
//!                                                  (jsonl | csv | sqlite | parquet | hive)   or --output-dir DIR
//! ```
//!
//! [`cli`] parses the arguments and maps errors to exit codes; [`decode`]
//! turns payloads into values and `--field` columns; [`sink`] holds the
//! text and SQLite writers, [`parquet_file`] the Parquet file and [`hive`] its
//! partitions; [`sessions`] prints the files' `sessions` tables instead of
//! their rows (`--sessions`). An untyped `--field` has its type inferred by
//! a first pass over the selection that only decodes (memory stays flat;
//! the rows are read twice). This module reads the data folder only through
//! `select` and never writes into it.

pub mod cli;
pub mod decode;
pub mod hive;
pub mod parquet_file;
pub mod sessions;
pub mod sink;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::progress::Progress;
use crate::select::{Plan, SelectError, Selection};
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
    /// Parquet: one file, or hive partitions with `--output-dir`.
    Parquet,
}

impl Format {
    /// `--format` value -> format.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "sqlite" | "db" => Some(Format::Sqlite),
            "parquet" => Some(Format::Parquet),
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
            "parquet" => Some(Format::Parquet),
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
    /// `--output-dir DIR`: Parquet hive partitions.
    pub output_dir: Option<PathBuf>,
    /// DECODING.
    pub decode: decode::DecodeOptions,
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
    // Schema files are read before anything is written (exit 2 when bad).
    let decoder = decode::Decoder::open(&opts.decode).map_err(ExportError::Usage)?;
    let result = export_rows(config, opts, decoder);
    if let (Err(_), Some(out)) = (&result, &opts.output) {
        match opts.format {
            Format::Sqlite => {
                let _ = std::fs::remove_file(crate::store::export_file::incomplete_path(out));
            }
            Format::Parquet => {
                let _ = std::fs::remove_file(parquet_file::temporary_path(out));
            }
            Format::Jsonl | Format::Csv => {}
        }
    }
    result
}

fn export_rows(
    config: &Config,
    opts: &ExportOptions,
    decoder: Option<decode::Decoder>,
) -> Result<u64, ExportError> {
    let mut fields = opts.decode.fields.clone();
    if let Some(d) = &decoder
        && fields.iter().any(|f| f.ty.is_none())
    {
        infer_types(config, opts, d, &mut fields)?;
    }
    let mut decoder = decode::RowDecoder::new(decoder, fields);
    let plan = Plan::new(config, &opts.selection)?;
    let (notes, files) = (plan.notes.clone(), plan.files.len());
    let (streams, mut rows) = plan.rows();
    let mut sink = sink::open(opts, &streams, decoder.active(), decoder.fields())?;
    let mut progress = Progress::new("attic export");
    let mut count: u64 = 0;
    let mut decoded = decode::Decoded::default();
    while let Some(row) = rows.next_row()? {
        let stream = &streams[row.stream];
        let at = || {
            format!(
                "{} {stream} {}",
                crate::time::rfc3339_us(row.message.timestamp_us).unwrap_or_default(),
                row.message.topic
            )
        };
        decoder.decode(&row.message.payload, &at, &mut decoded);
        sink.row(&row, stream, &decoded)?;
        count += 1;
        if count % 8_192 == 0 {
            progress.show(count, row.message.timestamp_us);
        }
    }
    progress.clear();
    sink.finish(count)?;
    // One line at the end, whatever came out, and why nothing did.
    let mut line = if decoder.active() {
        decoder.summary()
    } else {
        crate::progress::count(count, "row written", "rows written")
    };
    if let Some(why) = notes.explain(count, files, &config.data_folder) {
        line.push_str(&format!("; {why}"));
    }
    eprintln!("attic export: {line}");
    Ok(count)
}

/// The first pass for untyped `--field`s: decodes every selected row and
/// gives each untyped field the type its present values agree on.
fn infer_types(
    config: &Config,
    opts: &ExportOptions,
    decoder: &decode::Decoder,
    fields: &mut [decode::fields::Field],
) -> Result<(), ExportError> {
    let plan = Plan::new(config, &opts.selection)?;
    let (_, mut rows) = plan.rows();
    let mut seen = vec![decode::fields::Inference::new(); fields.len()];
    while let Some(row) = rows.next_row()? {
        if let Ok(v) = decoder.decode(&row.message.payload) {
            for (f, i) in fields.iter().zip(&mut seen) {
                if f.ty.is_none() {
                    i.see(f, &v);
                }
            }
        }
    }
    for (f, i) in fields.iter_mut().zip(&seen) {
        f.ty.get_or_insert(i.result());
    }
    Ok(())
}
