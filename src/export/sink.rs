//! The text and SQLite output writers of `attic export` (Parquet is
//! [`super::parquet_file`]). Each takes rows one at a time and keeps no more
//! than a buffer; none reads the data folder.
//!
//! - jsonl: `{"reception_timestamp":..,"time":"..Z","stream":..,"topic":..,
//!   "payload":..|"payload_base64":..,"qos":..,"retain":..}` per line, then
//!   `"properties":{..}` for a row with MQTT 5 properties, and when
//!   decoding `"value":..`, `"decode_error":".."` (failed rows only) and
//!   one key per `--field`.
//! - csv: header `reception_timestamp,time,stream,topic,payload,
//!   payload_encoding,qos,retain,properties`; `payload_encoding` is `utf8`
//!   or `base64`; when decoding then `value,decode_error` and the fields.
//! - sqlite: the Attic `data` table plus `stream` and `properties`
//!   columns (and `value`, `decode_error`, the fields), the `topics`
//!   index, the application id and the selection in `attic_meta`; written
//!   to `<output>.incomplete` and renamed when complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use super::decode::Decoded;
use super::decode::fields::{Cell, Field, FieldType};
use super::{ExportError, ExportOptions, Format};
use crate::select::{Row, Selection};
use crate::store::export_file::{self, ColumnType, ExportFile};
use crate::time::{TimeFormatter, rfc3339_us};

/// Output buffer size for the text formats.
const BUFFER: usize = 256 << 10;

/// A writer of exported rows.
pub trait Sink {
    /// Writes one row of stream `stream`, with what decoding made of it.
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError>;
    /// Completes the output (`rows` written in total).
    fn finish(self: Box<Self>, rows: u64) -> Result<(), ExportError>;
}

/// The names of the decoding columns: `value`, `decode_error`, then the
/// fields (none when not decoding).
fn decoding_columns(decoding: bool, fields: &[Field]) -> Vec<&str> {
    if !decoding {
        return Vec::new();
    }
    let mut c = vec!["value", "decode_error"];
    c.extend(fields.iter().map(|f| f.name.as_str()));
    c
}

/// The sink for `opts`, writing to `--output` or stdout. `decoding`:
/// rows carry `value` and `decode_error`; `fields`: the `--field`
/// columns with their final types.
pub fn open(
    opts: &ExportOptions,
    streams: &[String],
    decoding: bool,
    fields: &[Field],
) -> Result<Box<dyn Sink>, ExportError> {
    match opts.format {
        Format::Parquet => super::parquet_file::open(opts, decoding, fields),
        Format::Sqlite => {
            let path = opts.output.clone().ok_or_else(|| {
                ExportError::Usage("--format sqlite needs --output FILE".to_owned())
            })?;
            Ok(Box::new(SqliteSink::create(
                path,
                &opts.selection,
                streams,
                decoding,
                fields,
            )?))
        }
        Format::Jsonl => Ok(Box::new(Jsonl {
            names: decoding_columns(decoding, fields)
                .iter()
                .map(|n| serde_json::to_string(n).unwrap_or_default())
                .collect(),
            out: Text::open(opts.output.as_deref())?,
            line: Vec::with_capacity(1024),
            time: TimeFormatter::default(),
            time_buf: String::new(),
            b64: String::new(),
        })),
        Format::Csv => {
            let text = Text::open(opts.output.as_deref())?;
            let name = text.name.clone();
            let mut w = csv::WriterBuilder::new().from_writer(text);
            let mut header = vec![
                "reception_timestamp",
                "time",
                "stream",
                "topic",
                "payload",
                "payload_encoding",
                "qos",
                "retain",
                "properties",
            ];
            header.extend(decoding_columns(decoding, fields));
            w.write_record(&header).map_err(|e| csv_err(&name, e))?;
            Ok(Box::new(Csv {
                record: Vec::new(),
                out: w,
                name,
                time: TimeFormatter::default(),
                time_buf: String::new(),
                b64: String::new(),
            }))
        }
    }
}

/// A buffered text output (`None` or `-` = stdout), for other line formats.
pub fn text_output(path: Option<&Path>) -> Result<Text, ExportError> {
    Text::open(path)
}

/// A buffered text output: a file or stdout.
pub struct Text {
    /// Where bytes go.
    out: BufWriter<Box<dyn Write>>,
    /// For messages: the file name, or `-` for stdout.
    name: String,
}

impl Text {
    fn open(path: Option<&Path>) -> Result<Text, ExportError> {
        let (out, name): (Box<dyn Write>, String) = match path {
            None => (Box::new(io::stdout().lock()), "-".to_owned()),
            Some(p) if p == Path::new("-") => (Box::new(io::stdout().lock()), "-".to_owned()),
            Some(p) => {
                let name = p.display().to_string();
                let f = File::create(p).map_err(|source| ExportError::Write {
                    path: name.clone(),
                    source,
                })?;
                (Box::new(f), name)
            }
        };
        Ok(Text {
            out: BufWriter::with_capacity(BUFFER, out),
            name,
        })
    }

    /// A write error, naming the output.
    pub fn err(&self, source: io::Error) -> ExportError {
        ExportError::Write {
            path: self.name.clone(),
            source,
        }
    }
}

impl Write for Text {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The payload as text, or its base64 form in `b64` (returns `None`).
fn payload_text<'a>(payload: &'a [u8], b64: &mut String) -> Option<&'a str> {
    match std::str::from_utf8(payload) {
        Ok(s) => Some(s),
        Err(_) => {
            b64.clear();
            BASE64.encode_string(payload, b64);
            None
        }
    }
}

/// The `time` field: RFC 3339 with microseconds (empty if out of range).
fn time_text<'a>(f: &mut TimeFormatter, t_us: i64, buf: &'a mut String) -> &'a str {
    buf.clear();
    f.write(t_us, buf);
    buf
}

/// JSON lines.
struct Jsonl {
    /// The decoding keys, JSON-quoted: `"value"`, `"decode_error"`, fields.
    names: Vec<String>,
    out: Text,
    /// One line, serialised here first: serde_json writes many small
    /// pieces, which cost far less into a `Vec` than through the writer.
    line: Vec<u8>,
    time: TimeFormatter,
    time_buf: String,
    b64: String,
}

/// One JSON line. Field order is the documented one.
#[derive(Serialize)]
struct JsonRow<'a> {
    reception_timestamp: i64,
    time: &'a str,
    stream: &'a str,
    topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<&'a str>,
    qos: u8,
    retain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a serde_json::value::RawValue>,
}

/// Appends `,"key":value` pairs to a serialised JSON object in `line`.
fn append_decoding(
    line: &mut Vec<u8>,
    names: &[String],
    dec: &Decoded,
) -> Result<(), serde_json::Error> {
    if !dec.active {
        return Ok(());
    }
    line.pop(); // the closing brace
    let key = |line: &mut Vec<u8>, i: usize| {
        line.push(b',');
        line.extend_from_slice(names.get(i).map_or("\"\"", String::as_str).as_bytes());
        line.push(b':');
    };
    key(line, 0);
    match &dec.value {
        // A JSON payload is its own value, unless a line break in it
        // would split the line.
        _ if !dec.text.is_empty() && !dec.text.contains(['\n', '\r']) => {
            line.extend_from_slice(dec.text.as_bytes());
        }
        Some(v) => serde_json::to_writer(&mut *line, v)?,
        None if !dec.text.is_empty() => {
            let v: serde_json::Value = serde_json::from_str(&dec.text)?;
            serde_json::to_writer(&mut *line, &v)?;
        }
        None => line.extend_from_slice(b"null"),
    }
    if let Some(e) = &dec.error {
        key(line, 1);
        serde_json::to_writer(&mut *line, e)?;
    }
    for (i, c) in dec.cells.iter().enumerate() {
        key(line, i + 2);
        match c {
            Cell::Null => line.extend_from_slice(b"null"),
            Cell::F64(f) => serde_json::to_writer(&mut *line, f)?,
            Cell::I64(n) => serde_json::to_writer(&mut *line, n)?,
            Cell::Bool(b) => serde_json::to_writer(&mut *line, b)?,
            Cell::Text(t) => serde_json::to_writer(&mut *line, t)?,
        }
    }
    line.push(b'}');
    Ok(())
}

/// Stored properties as raw JSON (skipped if the stored text is not JSON).
fn raw_properties(p: Option<&str>) -> Option<&serde_json::value::RawValue> {
    p.and_then(|t| serde_json::from_str(t).ok())
}

impl Sink for Jsonl {
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        let m = &row.message;
        let time = time_text(&mut self.time, m.timestamp_us, &mut self.time_buf);
        let text = payload_text(&m.payload, &mut self.b64);
        let json = JsonRow {
            reception_timestamp: m.timestamp_us,
            time,
            stream,
            topic: &m.topic,
            payload: text,
            payload_base64: text.is_none().then_some(self.b64.as_str()),
            qos: m.qos,
            retain: m.retain,
            properties: raw_properties(m.properties.as_deref()),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &json).map_err(|e| self.out.err(e.into()))?;
        append_decoding(&mut self.line, &self.names, dec).map_err(|e| self.out.err(e.into()))?;
        self.line.push(b'\n');
        self.out
            .out
            .write_all(&self.line)
            .map_err(|e| self.out.err(e))
    }

    fn finish(mut self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        self.out.flush().map_err(|e| self.out.err(e))
    }
}

/// CSV (RFC 4180: quoted where needed, CRLF-free `\n` line ends are fine
/// for every reader; the csv crate's default terminator is `\n`).
struct Csv {
    /// The decoding cells of the current row, as text.
    record: Vec<String>,
    out: csv::Writer<Text>,
    name: String,
    time: TimeFormatter,
    time_buf: String,
    b64: String,
}

fn csv_err(name: &str, e: csv::Error) -> ExportError {
    let source = match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    };
    ExportError::Write {
        path: name.to_owned(),
        source,
    }
}

/// A `--field` cell as CSV text (empty = null).
fn cell_text(c: &Cell, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    let _ = match c {
        Cell::Null => Ok(()),
        Cell::F64(f) => write!(out, "{f}"),
        Cell::I64(n) => write!(out, "{n}"),
        Cell::Bool(b) => write!(out, "{b}"),
        Cell::Text(t) => out.write_str(t),
    };
}

impl Sink for Csv {
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        let m = &row.message;
        let time = time_text(&mut self.time, m.timestamp_us, &mut self.time_buf);
        let (payload, encoding) = match payload_text(&m.payload, &mut self.b64) {
            Some(t) => (t, "utf8"),
            None => (self.b64.as_str(), "base64"),
        };
        let ts = m.timestamp_us.to_string();
        let qos = [b'0' + m.qos.min(9)];
        let retain: &[u8] = if m.retain { b"true" } else { b"false" };
        let props = m.properties.as_deref().unwrap_or_default();
        if dec.active {
            self.record.resize(dec.cells.len() + 2, String::new());
            let (head, cells) = self.record.split_at_mut(2);
            head[0] = dec.value_text().map(|t| t.into_owned()).unwrap_or_default();
            head[1] = dec.error.clone().unwrap_or_default();
            for (c, out) in dec.cells.iter().zip(cells) {
                cell_text(c, out);
            }
        } else {
            self.record.clear();
        }
        let fixed: [&[u8]; 9] = [
            ts.as_bytes(),
            time.as_bytes(),
            stream.as_bytes(),
            m.topic.as_bytes(),
            payload.as_bytes(),
            encoding.as_bytes(),
            &qos,
            retain,
            props.as_bytes(),
        ];
        self.out
            .write_record(
                fixed
                    .into_iter()
                    .chain(self.record.iter().map(String::as_bytes)),
            )
            .map_err(|e| csv_err(&self.name, e))
    }

    fn finish(mut self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        self.out.flush().map_err(|source| ExportError::Write {
            path: self.name.clone(),
            source,
        })
    }
}

/// One SQLite file.
struct SqliteSink(ExportFile);

impl SqliteSink {
    fn create(
        path: PathBuf,
        sel: &Selection,
        streams: &[String],
        decoding: bool,
        fields: &[Field],
    ) -> Result<SqliteSink, ExportError> {
        let from = sel.from_us.and_then(rfc3339_us).unwrap_or_default();
        let to = sel.to_us.and_then(rfc3339_us).unwrap_or_default();
        let exported = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .to_string();
        let streams = streams.join("\n");
        let topics = sel.topics.join("\n");
        let include_open = if sel.include_open { "true" } else { "false" };
        let meta = [
            ("exported_at_us", exported.as_str()),
            ("selection_streams", streams.as_str()),
            ("selection_from", from.as_str()),
            ("selection_to", to.as_str()),
            ("selection_topics", topics.as_str()),
            ("selection_include_open", include_open),
        ];
        let mut extra = Vec::new();
        if decoding {
            extra.push(("value", ColumnType::Text));
            extra.push(("decode_error", ColumnType::Text));
            for f in fields {
                let ty = match f.ty.unwrap_or(FieldType::Str) {
                    FieldType::F64 => ColumnType::Real,
                    FieldType::I64 | FieldType::Bool => ColumnType::Integer,
                    FieldType::Str | FieldType::Json => ColumnType::Text,
                };
                extra.push((f.name.as_str(), ty));
            }
        }
        Ok(SqliteSink(ExportFile::create(path, &meta, &extra)?))
    }
}

impl Sink for SqliteSink {
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        if !dec.active {
            self.0.insert(&row.message, stream, &[])?;
            return Ok(());
        }
        let value = dec.value_text();
        let mut cells = vec![
            value
                .as_deref()
                .map_or(export_file::Cell::Null, export_file::Cell::Text),
            dec.error
                .as_deref()
                .map_or(export_file::Cell::Null, export_file::Cell::Text),
        ];
        cells.extend(dec.cells.iter().map(|c| match c {
            Cell::Null => export_file::Cell::Null,
            Cell::F64(f) => export_file::Cell::Real(*f),
            Cell::I64(n) => export_file::Cell::Int(*n),
            Cell::Bool(b) => export_file::Cell::Int(i64::from(*b)),
            Cell::Text(t) => export_file::Cell::Text(t),
        }));
        self.0.insert(&row.message, stream, &cells)?;
        Ok(())
    }

    fn finish(self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        self.0.finish()?;
        Ok(())
    }
}
