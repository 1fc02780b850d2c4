//! `--format parquet`: one Parquet file of exported rows, written with the
//! `parquet` crate's low-level column writer (no Arrow). The only user of
//! `parquet`.
//!
//! ```text
//!  reception_timestamp  INT64   TIMESTAMP(MICROS, adjusted to UTC)
//!  stream               BYTE_ARRAY STRING, dictionary  (not with --output-dir)
//!  topic                BYTE_ARRAY STRING, dictionary
//!  payload              BYTE_ARRAY (binary, the stored bytes)
//!  qos                  INT32
//!  retain               BOOLEAN
//!  properties           BYTE_ARRAY STRING, optional
//!  value, decode_error  BYTE_ARRAY STRING, optional     (when decoding)
//!  <field>...           DOUBLE | INT64 | STRING | BOOLEAN, optional
//! ```
//!
//! Rows are buffered column by column and written as a row group every
//! [`GROUP_ROWS`] rows or [`GROUP_BYTES`] bytes, so memory stays flat
//! whatever the number of rows; zstd compression. A file is written under
//! a temporary name and renamed when complete. Must not: read the data
//! folder.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, Type};

use super::decode::Decoded;
use super::decode::fields::{Cell, Field, FieldType};
use super::sink::Sink;
use super::{ExportError, ExportOptions};
use crate::select::Row;

/// Rows per row group at most.
pub const GROUP_ROWS: usize = 65_536;
/// Buffered bytes (payloads, topics, values) after which a row group is
/// written early, so large payloads do not fill memory.
pub const GROUP_BYTES: usize = 8 << 20;

/// A nullable string column being buffered.
#[derive(Debug, Default)]
struct Strings {
    values: Vec<ByteArray>,
    /// Definition levels: 1 present, 0 null.
    defs: Vec<i16>,
}

impl Strings {
    fn push(&mut self, s: Option<&[u8]>) {
        match s {
            Some(b) => {
                self.values.push(ByteArray::from(b.to_vec()));
                self.defs.push(1);
            }
            None => self.defs.push(0),
        }
    }
    fn clear(&mut self) {
        self.values.clear();
        self.defs.clear();
    }
}

/// One `--field` column being buffered.
#[derive(Debug)]
enum FieldColumn {
    F64(Vec<f64>, Vec<i16>),
    I64(Vec<i64>, Vec<i16>),
    Bool(Vec<bool>, Vec<i16>),
    Text(Strings),
}

impl FieldColumn {
    fn new(ty: FieldType) -> FieldColumn {
        match ty {
            FieldType::F64 => FieldColumn::F64(Vec::new(), Vec::new()),
            FieldType::I64 => FieldColumn::I64(Vec::new(), Vec::new()),
            FieldType::Bool => FieldColumn::Bool(Vec::new(), Vec::new()),
            FieldType::Str | FieldType::Json => FieldColumn::Text(Strings::default()),
        }
    }

    fn push(&mut self, c: &Cell) {
        fn put<T: Copy>(v: &mut Vec<T>, d: &mut Vec<i16>, x: Option<T>) {
            if let Some(x) = x {
                v.push(x);
            }
            d.push(i16::from(x.is_some()));
        }
        match (self, c) {
            (FieldColumn::F64(v, d), Cell::F64(x)) => put(v, d, Some(*x)),
            (FieldColumn::I64(v, d), Cell::I64(x)) => put(v, d, Some(*x)),
            (FieldColumn::Bool(v, d), Cell::Bool(x)) => put(v, d, Some(*x)),
            (FieldColumn::Text(s), Cell::Text(t)) => s.push(Some(t.as_bytes())),
            (FieldColumn::F64(v, d), _) => put(v, d, None),
            (FieldColumn::I64(v, d), _) => put(v, d, None),
            (FieldColumn::Bool(v, d), _) => put(v, d, None),
            (FieldColumn::Text(s), _) => s.push(None),
        }
    }

    fn clear(&mut self) {
        match self {
            FieldColumn::F64(v, d) => {
                v.clear();
                d.clear();
            }
            FieldColumn::I64(v, d) => {
                v.clear();
                d.clear();
            }
            FieldColumn::Bool(v, d) => {
                v.clear();
                d.clear();
            }
            FieldColumn::Text(s) => s.clear(),
        }
    }
}

/// The columns of one row group being buffered.
#[derive(Debug)]
struct Group {
    ts: Vec<i64>,
    stream: Vec<ByteArray>,
    topic: Vec<ByteArray>,
    payload: Vec<ByteArray>,
    qos: Vec<i32>,
    retain: Vec<bool>,
    properties: Strings,
    value: Strings,
    error: Strings,
    fields: Vec<FieldColumn>,
    /// Bytes buffered (for [`GROUP_BYTES`]).
    bytes: usize,
}

/// One Parquet file being written.
pub struct ParquetFile {
    writer: SerializedFileWriter<File>,
    /// The temporary name.
    tmp: PathBuf,
    /// The final name.
    path: PathBuf,
    /// The file has a `stream` column.
    with_stream: bool,
    /// The file has `value` and `decode_error`.
    decoding: bool,
    group: Group,
    /// Reception time of the first row (for partition file names).
    pub first_us: Option<i64>,
    /// Rows and bytes after which a row group is written: [`GROUP_ROWS`]
    /// and [`GROUP_BYTES`], or their share when several files are open.
    limits: (usize, usize),
}

fn primitive(
    name: &str,
    t: Physical,
    rep: Repetition,
    logical: Option<LogicalType>,
) -> Result<Arc<Type>, String> {
    Type::primitive_type_builder(name, t)
        .with_repetition(rep)
        .with_logical_type(logical)
        .build()
        .map(Arc::new)
        .map_err(|e| format!("column {name}: {e}"))
}

fn schema(with_stream: bool, decoding: bool, fields: &[Field]) -> Result<Arc<Type>, String> {
    const OPTIONAL: Repetition = Repetition::OPTIONAL;
    const REQUIRED: Repetition = Repetition::REQUIRED;
    let string = || Some(LogicalType::String);
    let mut cols = vec![primitive(
        "reception_timestamp",
        Physical::INT64,
        REQUIRED,
        Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
    )?];
    if with_stream {
        cols.push(primitive(
            "stream",
            Physical::BYTE_ARRAY,
            REQUIRED,
            string(),
        )?);
    }
    cols.push(primitive(
        "topic",
        Physical::BYTE_ARRAY,
        REQUIRED,
        string(),
    )?);
    cols.push(primitive("payload", Physical::BYTE_ARRAY, REQUIRED, None)?);
    cols.push(primitive("qos", Physical::INT32, REQUIRED, None)?);
    cols.push(primitive("retain", Physical::BOOLEAN, REQUIRED, None)?);
    cols.push(primitive(
        "properties",
        Physical::BYTE_ARRAY,
        OPTIONAL,
        string(),
    )?);
    if decoding {
        cols.push(primitive(
            "value",
            Physical::BYTE_ARRAY,
            OPTIONAL,
            string(),
        )?);
        cols.push(primitive(
            "decode_error",
            Physical::BYTE_ARRAY,
            OPTIONAL,
            string(),
        )?);
        for f in fields {
            let (t, l) = match f.ty.unwrap_or(FieldType::Str) {
                FieldType::F64 => (Physical::DOUBLE, None),
                FieldType::I64 => (Physical::INT64, None),
                FieldType::Bool => (Physical::BOOLEAN, None),
                FieldType::Str | FieldType::Json => (Physical::BYTE_ARRAY, string()),
            };
            cols.push(primitive(&f.name, t, OPTIONAL, l)?);
        }
    }
    Type::group_type_builder("attic")
        .with_fields(cols)
        .build()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn props() -> Arc<WriterProperties> {
    let no_dict = ["reception_timestamp", "payload", "value", "decode_error"];
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("attic {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(GROUP_ROWS));
    for c in no_dict {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    Arc::new(b.build())
}

/// `<path>.tmp`: where a file is written until complete.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> ExportError {
    ExportError::Write {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl ParquetFile {
    /// Creates `<path>.tmp` (replacing a leftover one).
    pub fn create(
        path: PathBuf,
        with_stream: bool,
        decoding: bool,
        fields: &[Field],
    ) -> Result<ParquetFile, ExportError> {
        let tmp = temporary_path(&path);
        let schema = schema(with_stream, decoding, fields).map_err(|e| write_err(&path, e))?;
        let file = File::create(&tmp).map_err(|source| ExportError::Write {
            path: tmp.display().to_string(),
            source,
        })?;
        let writer =
            SerializedFileWriter::new(file, schema, props()).map_err(|e| write_err(&tmp, e))?;
        let types: Vec<FieldType> = if decoding {
            fields
                .iter()
                .map(|f| f.ty.unwrap_or(FieldType::Str))
                .collect()
        } else {
            Vec::new()
        };
        Ok(ParquetFile {
            writer,
            tmp,
            path,
            with_stream,
            decoding,
            group: Group {
                ts: Vec::new(),
                stream: Vec::new(),
                topic: Vec::new(),
                payload: Vec::new(),
                qos: Vec::new(),
                retain: Vec::new(),
                properties: Strings::default(),
                value: Strings::default(),
                error: Strings::default(),
                fields: types.into_iter().map(FieldColumn::new).collect(),
                bytes: 0,
            },
            first_us: None,
            limits: (GROUP_ROWS, GROUP_BYTES),
        })
    }

    /// Gives this file a `1/share` of the row group bounds (at least 1,024
    /// rows and 256 KiB), so that `share` open files together buffer no
    /// more than one file alone.
    pub fn share_limits(&mut self, share: usize) {
        let share = share.max(1);
        self.limits = (
            (GROUP_ROWS / share).max(1_024),
            (GROUP_BYTES / share).max(256 << 10),
        );
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers one row; writes a row group when the buffer is full.
    pub fn push(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        let m = &row.message;
        self.first_us.get_or_insert(m.timestamp_us);
        let g = &mut self.group;
        g.ts.push(m.timestamp_us);
        if self.with_stream {
            g.stream.push(ByteArray::from(stream));
        }
        g.topic.push(ByteArray::from(m.topic.as_str()));
        g.payload.push(ByteArray::from(m.payload.clone()));
        g.qos.push(i32::from(m.qos));
        g.retain.push(m.retain);
        g.properties
            .push(m.properties.as_deref().map(str::as_bytes));
        g.bytes += m.topic.len() + m.payload.len() + 24;
        if self.decoding {
            let v = dec.value_text();
            g.bytes += v.as_ref().map_or(0, |t| t.len());
            g.value.push(v.as_deref().map(str::as_bytes));
            g.error.push(dec.error.as_deref().map(str::as_bytes));
            for (col, c) in g.fields.iter_mut().zip(&dec.cells) {
                col.push(c);
            }
        }
        if g.ts.len() >= self.limits.0 || g.bytes >= self.limits.1 {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as one row group.
    fn flush(&mut self) -> Result<(), ExportError> {
        if self.group.ts.is_empty() {
            return Ok(());
        }
        let tmp = self.tmp.clone();
        let err = |e: parquet::errors::ParquetError| write_err(&tmp, e);
        let g = &mut self.group;
        let mut rg = self.writer.next_row_group().map_err(err)?;
        let mut col = 0usize;
        while let Some(mut c) = rg.next_column().map_err(err)? {
            let name = c_name(col, self.with_stream);
            let r = match (c.untyped(), name) {
                (ColumnWriter::Int64ColumnWriter(w), Some(Col::Ts)) => {
                    w.write_batch(&g.ts, None, None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Stream)) => {
                    w.write_batch(&g.stream, None, None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Topic)) => {
                    w.write_batch(&g.topic, None, None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Payload)) => {
                    w.write_batch(&g.payload, None, None)
                }
                (ColumnWriter::Int32ColumnWriter(w), Some(Col::Qos)) => {
                    w.write_batch(&g.qos, None, None)
                }
                (ColumnWriter::BoolColumnWriter(w), Some(Col::Retain)) => {
                    w.write_batch(&g.retain, None, None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Properties)) => {
                    w.write_batch(&g.properties.values, Some(&g.properties.defs), None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Value)) => {
                    w.write_batch(&g.value.values, Some(&g.value.defs), None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Some(Col::Error)) => {
                    w.write_batch(&g.error.values, Some(&g.error.defs), None)
                }
                (w, Some(Col::Field(i))) => match (w, g.fields.get(i)) {
                    (ColumnWriter::DoubleColumnWriter(w), Some(FieldColumn::F64(v, d))) => {
                        w.write_batch(v, Some(d), None)
                    }
                    (ColumnWriter::Int64ColumnWriter(w), Some(FieldColumn::I64(v, d))) => {
                        w.write_batch(v, Some(d), None)
                    }
                    (ColumnWriter::BoolColumnWriter(w), Some(FieldColumn::Bool(v, d))) => {
                        w.write_batch(v, Some(d), None)
                    }
                    (ColumnWriter::ByteArrayColumnWriter(w), Some(FieldColumn::Text(s))) => {
                        w.write_batch(&s.values, Some(&s.defs), None)
                    }
                    _ => return Err(write_err(&tmp, "internal: field column mismatch")),
                },
                _ => return Err(write_err(&tmp, "internal: column mismatch")),
            };
            r.map_err(err)?;
            c.close().map_err(err)?;
            col += 1;
        }
        rg.close().map_err(err)?;
        g.ts.clear();
        g.stream.clear();
        g.topic.clear();
        g.payload.clear();
        g.qos.clear();
        g.retain.clear();
        g.properties.clear();
        g.value.clear();
        g.error.clear();
        for f in &mut g.fields {
            f.clear();
        }
        g.bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer, then renames the file to
    /// its final name. Returns the final name.
    pub fn finish(mut self) -> Result<PathBuf, ExportError> {
        self.flush()?;
        let tmp = self.tmp.clone();
        let file = self.writer.into_inner().map_err(|e| write_err(&tmp, e))?;
        file.sync_all().map_err(|source| ExportError::Write {
            path: tmp.display().to_string(),
            source,
        })?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|source| ExportError::Write {
            path: self.path.display().to_string(),
            source,
        })?;
        Ok(self.path)
    }

    /// Removes the temporary file of an export that failed.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Which column the `i`-th is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Ts,
    Stream,
    Topic,
    Payload,
    Qos,
    Retain,
    Properties,
    Value,
    Error,
    Field(usize),
}

fn c_name(i: usize, with_stream: bool) -> Option<Col> {
    let mut order = vec![Col::Ts];
    if with_stream {
        order.push(Col::Stream);
    }
    order.extend([
        Col::Topic,
        Col::Payload,
        Col::Qos,
        Col::Retain,
        Col::Properties,
        Col::Value,
        Col::Error,
    ]);
    match order.get(i) {
        Some(c) => Some(*c),
        None => Some(Col::Field(i - order.len())),
    }
}

/// `--format parquet --output FILE`: one file with a `stream` column.
struct SingleFile(Option<ParquetFile>);

impl Sink for SingleFile {
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        match &mut self.0 {
            Some(f) => {
                let r = f.push(row, stream, dec);
                if r.is_err()
                    && let Some(f) = self.0.take()
                {
                    f.abandon();
                }
                r
            }
            None => Ok(()),
        }
    }

    fn finish(mut self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        match self.0.take() {
            Some(f) => f.finish().map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The Parquet sink of `opts`: one file, or hive partitions under
/// `--output-dir`.
pub fn open(
    opts: &ExportOptions,
    decoding: bool,
    fields: &[Field],
) -> Result<Box<dyn Sink>, ExportError> {
    if let Some(dir) = &opts.output_dir {
        return Ok(Box::new(super::hive::Partitions::new(
            dir.clone(),
            opts.selection.window(),
            decoding,
            fields.to_vec(),
        )));
    }
    let path = opts
        .output
        .clone()
        .filter(|p| p != Path::new("-"))
        .ok_or_else(|| {
            ExportError::Usage("--format parquet needs --output FILE or --output-dir DIR".into())
        })?;
    Ok(Box::new(SingleFile(Some(ParquetFile::create(
        path, true, decoding, fields,
    )?))))
}
