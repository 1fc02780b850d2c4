//! The three output writers of `attic export`. Each takes rows one at a
//! time and keeps no more than a buffer; none reads the data folder.
//!
//! - jsonl: `{"reception_timestamp":..,"time":"..Z","stream":..,"topic":..,
//!   "payload":..|"payload_base64":..,"qos":..,"retain":..}` per line.
//! - csv: header `reception_timestamp,time,stream,topic,payload,
//!   payload_encoding,qos,retain`; `payload_encoding` is `utf8` or `base64`.
//! - sqlite: the Attic `data` table plus a `stream` column, the `topics`
//!   index, the application id and the selection in `attic_meta`; written
//!   to `<output>.incomplete` and renamed when complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use super::{ExportError, ExportOptions, Format};
use crate::select::time::{TimeFormatter, rfc3339_us};
use crate::select::{Row, Selection};
use crate::store::export_file::ExportFile;

/// Output buffer size for the text formats.
const BUFFER: usize = 256 << 10;

/// A writer of exported rows.
pub trait Sink {
    /// Writes one row of stream `stream`.
    fn row(&mut self, row: &Row, stream: &str) -> Result<(), ExportError>;
    /// Completes the output (`rows` written in total).
    fn finish(self: Box<Self>, rows: u64) -> Result<(), ExportError>;
}

/// The sink for `opts`, writing to `--output` or stdout.
pub fn open(opts: &ExportOptions, streams: &[String]) -> Result<Box<dyn Sink>, ExportError> {
    match opts.format {
        Format::Sqlite => {
            let path = opts.output.clone().ok_or_else(|| {
                ExportError::Usage("--format sqlite needs --output FILE".to_owned())
            })?;
            Ok(Box::new(SqliteSink::create(
                path,
                &opts.selection,
                streams,
            )?))
        }
        Format::Jsonl => Ok(Box::new(Jsonl {
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
            w.write_record([
                "reception_timestamp",
                "time",
                "stream",
                "topic",
                "payload",
                "payload_encoding",
                "qos",
                "retain",
            ])
            .map_err(|e| csv_err(&name, e))?;
            Ok(Box::new(Csv {
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
}

impl Sink for Jsonl {
    fn row(&mut self, row: &Row, stream: &str) -> Result<(), ExportError> {
        let time = time_text(&mut self.time, row.timestamp_us, &mut self.time_buf);
        let text = payload_text(&row.payload, &mut self.b64);
        let json = JsonRow {
            reception_timestamp: row.timestamp_us,
            time,
            stream,
            topic: &row.topic,
            payload: text,
            payload_base64: text.is_none().then_some(self.b64.as_str()),
            qos: row.qos,
            retain: row.retain,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &json).map_err(|e| self.out.err(e.into()))?;
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

impl Sink for Csv {
    fn row(&mut self, row: &Row, stream: &str) -> Result<(), ExportError> {
        let time = time_text(&mut self.time, row.timestamp_us, &mut self.time_buf);
        let (payload, encoding) = match payload_text(&row.payload, &mut self.b64) {
            Some(t) => (t, "utf8"),
            None => (self.b64.as_str(), "base64"),
        };
        let ts = row.timestamp_us.to_string();
        let qos = [b'0' + row.qos.min(9)];
        let retain: &[u8] = if row.retain { b"true" } else { b"false" };
        self.out
            .write_record([
                ts.as_bytes(),
                time.as_bytes(),
                stream.as_bytes(),
                row.topic.as_bytes(),
                payload.as_bytes(),
                encoding.as_bytes(),
                &qos,
                retain,
            ])
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
        Ok(SqliteSink(ExportFile::create(path, &meta)?))
    }
}

impl Sink for SqliteSink {
    fn row(&mut self, row: &Row, stream: &str) -> Result<(), ExportError> {
        self.0.insert(
            row.timestamp_us,
            &row.topic,
            &row.payload,
            row.qos,
            row.retain,
            stream,
        )?;
        Ok(())
    }

    fn finish(self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        self.0.finish()?;
        Ok(())
    }
}
