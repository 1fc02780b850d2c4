//! Payloads decoded on the way out (`--decode json|avro`, `--field`): the
//! stored bytes are never changed and a row is never dropped; a payload
//! that does not decode gets a one-line `decode_error` and a null value.
//!
//! ```text
//!  payload --Decoder (json | avro::AvroSchemas)--> serde_json::Value --fields::Field--> Cell per --field
//! ```
//!
//! [`avro`] owns the schemas and framings, [`fields`] the `--field` columns
//! (pointers, types, inference) and [`Tally`] the stderr summary. Must not:
//! read the data folder or write output.

pub mod avro;
pub mod fields;

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::Value;

use fields::{Cell, Field};

/// `--decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// `--decode json`.
    Json,
    /// `--decode avro`.
    Avro,
}

/// Where the Avro schemas come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    /// `--avro-schema FILE`.
    File(PathBuf),
    /// `--avro-schemas DIR`.
    Dir(PathBuf),
}

/// The DECODING arguments as parsed (files not yet read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// `--decode`; `None` without it (and without `--field`).
    pub kind: Option<DecodeKind>,
    /// `--avro-schema` / `--avro-schemas`.
    pub schemas: Option<SchemaSource>,
    /// `--field NAME=POINTER[:TYPE]`, in order.
    pub fields: Vec<Field>,
}

impl DecodeOptions {
    /// Checks the combination (one line for exit 2): `--field` implies
    /// `--decode json`; Avro needs a schema source and a schema source
    /// needs Avro.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.kind.is_none() && !self.fields.is_empty() {
            self.kind = Some(DecodeKind::Json);
        }
        match (self.kind, &self.schemas) {
            (Some(DecodeKind::Avro), None) => {
                Err("--decode avro needs --avro-schema FILE or --avro-schemas DIR".to_owned())
            }
            (Some(DecodeKind::Avro), Some(_)) => Ok(()),
            (_, Some(_)) => Err("--avro-schema and --avro-schemas need --decode avro".to_owned()),
            _ => Ok(()),
        }
    }

    /// True if rows get `value` and `decode_error`.
    pub fn active(&self) -> bool {
        self.kind.is_some()
    }
}

/// Turns payloads into JSON values.
#[derive(Debug)]
pub enum Decoder {
    /// UTF-8 JSON.
    Json,
    /// Avro binary.
    Avro(Box<avro::AvroSchemas>),
}

impl Decoder {
    /// Reads the schema files (one line for exit 2 when one is bad).
    /// `None`: no decoding asked for.
    pub fn open(opts: &DecodeOptions) -> Result<Option<Decoder>, String> {
        Ok(match (opts.kind, &opts.schemas) {
            (None, _) => None,
            (Some(DecodeKind::Json), _) => Some(Decoder::Json),
            (Some(DecodeKind::Avro), Some(SchemaSource::File(f))) => {
                Some(Decoder::Avro(Box::new(avro::AvroSchemas::from_file(f)?)))
            }
            (Some(DecodeKind::Avro), Some(SchemaSource::Dir(d))) => {
                Some(Decoder::Avro(Box::new(avro::AvroSchemas::from_dir(d)?)))
            }
            (Some(DecodeKind::Avro), None) => {
                return Err("--decode avro needs --avro-schema FILE or --avro-schemas DIR".into());
            }
        })
    }

    /// The payload's value, or why it has none.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        match self {
            Decoder::Json => serde_json::from_slice(payload).map_err(|e| format!("JSON: {e}")),
            Decoder::Avro(s) => s.decode(payload),
        }
    }
}

/// What decoding made of one row, handed to every sink.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoding is on: the row has `value` and `decode_error`.
    pub active: bool,
    /// The decoded value (`None` when it did not decode, or when it is
    /// only in `text`).
    pub value: Option<Value>,
    /// A JSON payload that decoded: its own text is the value's JSON text
    /// (no need to write the value out again). Empty otherwise.
    pub text: String,
    /// Why it did not decode.
    pub error: Option<String>,
    /// One cell per `--field`.
    pub cells: Vec<Cell>,
}

impl Decoded {
    /// `value` as JSON text, or `None`.
    pub fn value_text(&self) -> Option<Cow<'_, str>> {
        if !self.text.is_empty() {
            return Some(Cow::Borrowed(&self.text));
        }
        self.value.as_ref().map(|v| Cow::Owned(v.to_string()))
    }

    /// True if the row's payload decoded.
    pub fn decoded(&self) -> bool {
        self.active && self.error.is_none()
    }
}

/// Decodes rows and counts what happened, for the summary line.
#[derive(Debug)]
pub struct RowDecoder {
    /// `None`: decoding is off.
    decoder: Option<Decoder>,
    /// The `--field` columns with their final types.
    fields: Vec<Field>,
    /// The counts.
    pub tally: Tally,
}

/// Counts for the summary line.
#[derive(Debug, Default)]
pub struct Tally {
    /// Rows written.
    pub rows: u64,
    /// Rows whose payload decoded.
    pub decoded: u64,
    /// Rows whose payload did not.
    pub failed: u64,
    /// The first failure: when (RFC 3339), topic and reason.
    pub first_failure: Option<String>,
    /// Nulls per `--field`, in order.
    pub nulls: Vec<u64>,
}

impl RowDecoder {
    /// A decoder for these fields (their types final).
    pub fn new(decoder: Option<Decoder>, fields: Vec<Field>) -> RowDecoder {
        let nulls = vec![0; fields.len()];
        RowDecoder {
            decoder,
            fields,
            tally: Tally {
                nulls,
                ..Tally::default()
            },
        }
    }

    /// The fields (names and types: the sinks' columns).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// True if rows get `value` and `decode_error`.
    pub fn active(&self) -> bool {
        self.decoder.is_some()
    }

    /// Decodes one row's payload into `out`, counting it.
    pub fn decode(&mut self, payload: &[u8], at: &dyn Fn() -> String, out: &mut Decoded) {
        self.tally.rows += 1;
        out.cells.clear();
        out.text.clear();
        out.active = self.decoder.is_some();
        let Some(d) = &self.decoder else {
            out.value = None;
            out.error = None;
            return;
        };
        // JSON without fields needs no value: checking the syntax is enough,
        // and the payload is its own JSON text.
        let result = match d {
            Decoder::Json if self.fields.is_empty() => {
                serde_json::from_slice::<serde::de::IgnoredAny>(payload)
                    .map(|_| None)
                    .map_err(|e| format!("JSON: {e}"))
            }
            _ => d.decode(payload).map(Some),
        };
        match result {
            Ok(v) => {
                self.tally.decoded += 1;
                if matches!(d, Decoder::Json) {
                    // Valid JSON is valid UTF-8.
                    out.text
                        .push_str(std::str::from_utf8(payload).unwrap_or_default());
                }
                out.value = v;
                out.error = None;
            }
            Err(e) => {
                self.tally.failed += 1;
                if self.tally.first_failure.is_none() {
                    self.tally.first_failure = Some(format!("{}: {e}", at()));
                }
                out.value = None;
                out.error = Some(e);
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            let cell = out.value.as_ref().map_or(Cell::Null, |v| f.cell(v));
            if cell == Cell::Null {
                self.tally.nulls[i] += 1;
            }
            out.cells.push(cell);
        }
    }

    /// The summary line (without the program's name).
    pub fn summary(&self) -> String {
        let t = &self.tally;
        let mut s = format!(
            "{}, {} decoded, {} failed",
            crate::progress::count(t.rows, "row written", "rows written"),
            t.decoded,
            t.failed
        );
        if let Some(first) = &t.first_failure {
            s.push_str(&format!(" (first: {first})"));
        }
        if !self.fields.is_empty() {
            let nulls: Vec<String> = self
                .fields
                .iter()
                .zip(&t.nulls)
                .map(|(f, n)| format!("{}={n}", f.name))
                .collect();
            s.push_str(&format!("; nulls: {}", nulls.join(", ")));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_without_fields_is_checked_and_kept_as_its_own_text() {
        let mut d = RowDecoder::new(Some(Decoder::Json), Vec::new());
        let mut out = Decoded::default();
        d.decode(b"[1, 2]", &|| "a".into(), &mut out);
        assert!(out.decoded());
        assert_eq!(out.value_text().as_deref(), Some("[1, 2]"));
        d.decode(b"[1, ", &|| "b".into(), &mut out);
        assert!(!out.decoded() && out.value_text().is_none());
        assert_eq!(d.tally.failed, 1);
    }

    #[test]
    fn a_field_implies_json_and_a_schema_needs_avro() {
        let mut o = DecodeOptions {
            fields: vec![fields::parse_field("t=/t").unwrap()],
            ..DecodeOptions::default()
        };
        o.validate().unwrap();
        assert_eq!(o.kind, Some(DecodeKind::Json));
        let mut o = DecodeOptions {
            schemas: Some(SchemaSource::Dir("x".into())),
            ..DecodeOptions::default()
        };
        assert!(o.validate().unwrap_err().contains("need --decode avro"));
        let mut o = DecodeOptions {
            kind: Some(DecodeKind::Avro),
            ..DecodeOptions::default()
        };
        assert!(o.validate().unwrap_err().contains("needs --avro-schema"));
    }

    #[test]
    fn a_payload_that_does_not_decode_keeps_its_row_with_a_reason_and_null_cells() {
        let f = fields::parse_field("t=/t:f64").unwrap();
        let mut d = RowDecoder::new(Some(Decoder::Json), vec![f]);
        let mut out = Decoded::default();
        d.decode(br#"{"t": 21.5}"#, &|| "a".into(), &mut out);
        assert_eq!(out.cells, [Cell::F64(21.5)]);
        assert_eq!(out.value_text().as_deref(), Some(r#"{"t": 21.5}"#));
        d.decode(b"{not json", &|| "b".into(), &mut out);
        assert!(out.value.is_none() && out.value_text().is_none());
        assert!(out.error.as_deref().unwrap().starts_with("JSON: "));
        assert_eq!(out.cells, [Cell::Null]);
        let s = d.summary();
        assert!(
            s.starts_with("2 rows written, 1 decoded, 1 failed (first: b: JSON: "),
            "{s}"
        );
        assert!(s.ends_with("; nulls: t=1"), "{s}");
    }
}
