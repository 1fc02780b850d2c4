//! Avro payloads: the schema sources (`--avro-schema FILE`,
//! `--avro-schemas DIR`), the three framings, and the unwrapped Avro -> JSON
//! mapping. The only user of `apache_avro`.
//!
//! ```text
//!  Confluent wire format:   00 | schema id (4 bytes, BE) | datum      (DIR/<id>.avsc)
//!  single-object encoding:  C3 01 | CRC-64-AVRO fingerprint (8 bytes, LE) | datum
//!  bare datum:              datum                                      (--avro-schema)
//! ```
//!
//! Owns: loading and checking schema files, choosing the schema of one
//! payload, decoding it. Must not: read the data folder or write output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value as Avro;
use apache_avro::{Schema, from_avro_datum};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

/// One parsed schema with what decoding needs beside it.
#[derive(Debug)]
struct Loaded {
    /// The schema.
    schema: Schema,
    /// Named types inside it, for `Ref`s when mapping values.
    names: HashMap<Name, Schema>,
    /// Its file (for messages).
    file: PathBuf,
}

/// The schemas of `--avro-schema` or `--avro-schemas`.
#[derive(Debug)]
pub struct AvroSchemas {
    /// `--avro-schema FILE`: the index of its schema in `all`, for bare
    /// datums (single-object payloads must then carry its fingerprint,
    /// the only one in `by_fingerprint`).
    single: Option<usize>,
    /// `--avro-schemas DIR`: `<id>.avsc` by id.
    by_id: HashMap<u32, usize>,
    /// Every loaded schema (for `--avro-schema`, the one).
    all: Vec<Loaded>,
    /// CRC-64-AVRO fingerprint -> index into `all`.
    by_fingerprint: HashMap<[u8; 8], usize>,
    /// `--avro-schemas DIR`, for the message of a missing id.
    dir: Option<PathBuf>,
}

fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Avro schema {}: {e}", path.display()))?;
    let schema = Schema::parse_str(&text).map_err(|e| {
        let e = e.to_string();
        let first = e.lines().next().unwrap_or_default();
        format!("Avro schema {}: does not parse: {first}", path.display())
    })?;
    let names = ResolvedSchema::try_from(&schema)
        .map_err(|e| format!("Avro schema {}: {e}", path.display()))?
        .get_names()
        .iter()
        .map(|(n, s)| (n.clone(), (*s).clone()))
        .collect();
    Ok(Loaded {
        schema,
        names,
        file: path.to_path_buf(),
    })
}

/// The schema's CRC-64-AVRO fingerprint, as single-object encoding
/// writes it (little-endian).
///
/// Over apache-avro's Parsing Canonical Form with one correction: it
/// keeps a primitive with a stripped logical type as `{"type":"long"}`
/// where the specification's form (and fastavro, and Java) has `"long"`,
/// which would make every schema with a logical type unrecognisable.
fn fingerprint(schema: &Schema) -> [u8; 8] {
    let mut canonical = schema.canonical_form();
    for p in [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ] {
        canonical = canonical.replace(&format!("{{\"type\":\"{p}\"}}"), &format!("\"{p}\""));
    }
    crc64_avro(canonical.as_bytes()).to_le_bytes()
}

/// CRC-64-AVRO (the Rabin fingerprint of the Avro specification).
fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let mut table = [0u64; 256];
    for (i, t) in (0u64..).zip(table.iter_mut()) {
        let mut fp = i;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
        }
        *t = fp;
    }
    let mut fp = EMPTY;
    for &b in bytes {
        fp = (fp >> 8) ^ table[usize::from(fp.to_le_bytes()[0] ^ b)];
    }
    fp
}

impl AvroSchemas {
    /// `--avro-schema FILE`. Errors are one line (exit 2).
    pub fn from_file(path: &Path) -> Result<AvroSchemas, String> {
        let l = load(path)?;
        let fp = fingerprint(&l.schema);
        Ok(AvroSchemas {
            single: Some(0),
            by_id: HashMap::new(),
            all: vec![l],
            by_fingerprint: HashMap::from([(fp, 0)]),
            dir: None,
        })
    }

    /// `--avro-schemas DIR`: every `*.avsc`; files named `<id>.avsc` also
    /// serve the Confluent wire format. One bad file fails them all.
    pub fn from_dir(dir: &Path) -> Result<AvroSchemas, String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("--avro-schemas {}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> = Vec::new();
        for e in entries {
            let e = e.map_err(|e| format!("--avro-schemas {}: {e}", dir.display()))?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "avsc") {
                paths.push(p);
            }
        }
        if paths.is_empty() {
            return Err(format!(
                "--avro-schemas {}: no .avsc file in it",
                dir.display()
            ));
        }
        paths.sort();
        let mut me = AvroSchemas {
            single: None,
            by_id: HashMap::new(),
            all: Vec::new(),
            by_fingerprint: HashMap::new(),
            dir: Some(dir.to_path_buf()),
        };
        for p in paths {
            let l = load(&p)?;
            let i = me.all.len();
            me.by_fingerprint.entry(fingerprint(&l.schema)).or_insert(i);
            if let Some(id) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
            {
                me.by_id.insert(id, i);
            }
            me.all.push(l);
        }
        Ok(me)
    }

    /// Decodes one payload to its JSON value, or says why not (one line).
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        let (loaded, datum) = self.pick(payload)?;
        let mut rest = datum;
        let value = from_avro_datum(&loaded.schema, &mut rest, None).map_err(|e| {
            let e = e.to_string();
            format!(
                "Avro ({}): {}",
                file_name(&loaded.file),
                e.lines().next().unwrap_or_default()
            )
        })?;
        if !rest.is_empty() {
            return Err(format!(
                "Avro ({}): {} bytes left after the datum",
                file_name(&loaded.file),
                rest.len()
            ));
        }
        Ok(to_json(value, Some(&loaded.schema), &loaded.names))
    }

    /// The schema and the datum's bytes of one payload.
    fn pick<'a>(&self, payload: &'a [u8]) -> Result<(&Loaded, &'a [u8]), String> {
        if let [0xC3, 0x01, rest @ ..] = payload
            && rest.len() >= 8
        {
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&rest[..8]);
            let found = self.by_fingerprint.get(&fp).and_then(|&i| self.all.get(i));
            return match found {
                Some(l) => Ok((l, &rest[8..])),
                None => Err(format!(
                    "Avro single-object fingerprint {} matches no schema",
                    hex(&fp)
                )),
            };
        }
        if let Some(s) = self.single.and_then(|i| self.all.get(i)) {
            return Ok((s, payload));
        }
        match payload {
            [0x00, a, b, c, d, datum @ ..] => {
                let id = u32::from_be_bytes([*a, *b, *c, *d]);
                match self.by_id.get(&id).and_then(|&i| self.all.get(i)) {
                    Some(l) => Ok((l, datum)),
                    None => Err(format!(
                        "Avro schema id {id}: no file {}",
                        self.dir
                            .as_deref()
                            .unwrap_or(Path::new("."))
                            .join(format!("{id}.avsc"))
                            .display()
                    )),
                }
            }
            _ => Err(
                "not an Avro framing --avro-schemas knows (Confluent 00 + id, or single-object C3 01)"
                    .to_owned(),
            ),
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The schema behind `s`, following a named reference.
fn resolve<'a>(s: Option<&'a Schema>, names: &'a HashMap<Name, Schema>) -> Option<&'a Schema> {
    match s {
        Some(Schema::Ref { name }) => names.get(name),
        other => other,
    }
}

/// Avro's JSON mapping, unwrapped: record and map -> object, array ->
/// array, union -> the branch's value, enum -> string, bytes and fixed ->
/// base64, decimal and uuid -> string, dates, times and timestamps -> the
/// stored integer. `schema` (when known) gives a decimal its scale.
fn to_json(v: Avro, schema: Option<&Schema>, names: &HashMap<Name, Schema>) -> Value {
    let schema = resolve(schema, names);
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => Value::from(i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => Value::from(i),
        Avro::Float(f) => Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        Avro::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(BASE64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Uuid(u) => Value::String(u.to_string()),
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Decimal(d) => {
            let scale = match schema {
                Some(Schema::Decimal(ds)) => ds.scale,
                _ => 0,
            };
            let bytes = Vec::<u8>::try_from(d).unwrap_or_default();
            Value::String(decimal_text(&bytes, scale))
        }
        Avro::Duration(d) => {
            let months = u32::from(d.months());
            let days = u32::from(d.days());
            let millis = u32::from(d.millis());
            serde_json::json!({"months": months, "days": days, "millis": millis})
        }
        Avro::Union(i, inner) => {
            let branch = match schema {
                Some(Schema::Union(u)) => usize::try_from(i).ok().and_then(|i| u.variants().get(i)),
                _ => None,
            };
            to_json(*inner, branch, names)
        }
        Avro::Array(items) => {
            let item = match schema {
                Some(Schema::Array(a)) => Some(a.items.as_ref()),
                _ => None,
            };
            Value::Array(items.into_iter().map(|x| to_json(x, item, names)).collect())
        }
        Avro::Map(m) => {
            let item = match schema {
                Some(Schema::Map(m)) => Some(m.types.as_ref()),
                _ => None,
            };
            let mut keys: Vec<(String, Avro)> = m.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                keys.into_iter()
                    .map(|(k, x)| (k, to_json(x, item, names)))
                    .collect::<Map<_, _>>(),
            )
        }
        Avro::Record(fields) => {
            let rs = match schema {
                Some(Schema::Record(r)) => Some(r),
                _ => None,
            };
            let mut out = Map::new();
            for (i, (k, x)) in fields.into_iter().enumerate() {
                let fs = rs.and_then(|r| r.fields.get(i)).map(|f| &f.schema);
                out.insert(k, to_json(x, fs, names));
            }
            Value::Object(out)
        }
    }
}

/// A two's-complement big-endian unscaled integer as decimal text with
/// `scale` digits after the point.
fn decimal_text(be: &[u8], scale: usize) -> String {
    let negative = be.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = be.to_vec();
    if negative {
        // Two's complement: invert and add one.
        for b in &mut mag {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (n, carry) = b.overflowing_add(1);
            *b = n;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10 of the big-endian magnitude.
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in &mut mag {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 10).unwrap_or(0);
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + u8::try_from(rem).unwrap_or(0)));
    }
    while digits.len() <= scale {
        digits.push('0');
    }
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    for (i, c) in digits.iter().rev().enumerate() {
        if scale > 0 && i == digits.len() - scale {
            s.push('.');
        }
        s.push(*c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale_and_sign() {
        assert_eq!(decimal_text(&[0x30, 0x39], 2), "123.45");
        assert_eq!(decimal_text(&[0xCF, 0xC7], 2), "-123.45");
        assert_eq!(decimal_text(&[0x05], 3), "0.005");
        assert_eq!(decimal_text(&[0x00], 0), "0");
        assert_eq!(decimal_text(&[0x7F], 0), "127");
    }

    #[test]
    fn the_fingerprint_of_a_primitive_schema_is_the_one_of_the_avro_specification() {
        // The Avro specification's CRC-64-AVRO of "int" is 0x7275d51a3f395c8f
        // (written little-endian in single-object encoding).
        let s = Schema::parse_str(r#""int""#).unwrap();
        assert_eq!(fingerprint(&s), 0x7275d51a3f395c8fu64.to_le_bytes());
    }

    #[test]
    fn a_logical_type_does_not_change_the_fingerprint_of_its_primitive() {
        let with = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#,
        )
        .unwrap();
        let without = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[{"name":"at","type":"long"}]}"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&with), fingerprint(&without));
    }

    #[test]
    fn unions_enums_bytes_and_maps_unwrap_to_plain_json() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"r","fields":[
                {"name":"u","type":["null","double"]},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
                {"name":"b","type":"bytes"},
                {"name":"m","type":{"type":"map","values":"long"}}]}"#,
        )
        .unwrap();
        let v = Avro::Record(vec![
            ("u".into(), Avro::Union(1, Box::new(Avro::Double(1.5)))),
            ("e".into(), Avro::Enum(1, "B".into())),
            ("b".into(), Avro::Bytes(vec![1, 2, 3])),
            (
                "m".into(),
                Avro::Map(HashMap::from([("k".to_owned(), Avro::Long(7))])),
            ),
        ]);
        assert_eq!(
            to_json(v, Some(&schema), &HashMap::new()),
            serde_json::json!({"u": 1.5, "e": "B", "b": "AQID", "m": {"k": 7}})
        );
    }
}
