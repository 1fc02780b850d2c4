//! `--field NAME=POINTER[:TYPE]`: a column holding the part of the decoded
//! value at an RFC 6901 JSON Pointer, typed `f64`, `i64`, `str`, `bool` or
//! `json`, or inferred over the whole selection.
//!
//! Owns: parsing the argument, picking a value and fitting it to its type
//! ([`Field::cell`]), and the inference ([`Inference`]). A missing value
//! (or JSON `null`) and one that does not fit are null. `str` takes a
//! string as itself and any other value as its JSON text (so a column
//! inferred `str` because its values are mixed loses none of them).
//! Must not: read files or write output.

use serde_json::Value;

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// DOUBLE.
    F64,
    /// INT64.
    I64,
    /// A string.
    Str,
    /// BOOLEAN.
    Bool,
    /// The value as JSON text.
    Json,
}

impl FieldType {
    /// The name used in `--field` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::F64 => "f64",
            FieldType::I64 => "i64",
            FieldType::Str => "str",
            FieldType::Bool => "bool",
            FieldType::Json => "json",
        }
    }

    fn from_name(s: &str) -> Option<FieldType> {
        Some(match s {
            "f64" => FieldType::F64,
            "i64" => FieldType::I64,
            "str" => FieldType::Str,
            "bool" => FieldType::Bool,
            "json" => FieldType::Json,
            _ => return None,
        })
    }
}

/// One `--field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column name.
    pub name: String,
    /// The JSON Pointer (`""` = the whole value).
    pub pointer: String,
    /// Given or inferred; `None` until inferred.
    pub ty: Option<FieldType>,
}

/// Column names every export already has (a field may not take one).
pub const RESERVED: [&str; 13] = [
    "reception_timestamp",
    "time",
    "stream",
    "topic",
    "payload",
    "payload_base64",
    "payload_encoding",
    "qos",
    "retain",
    "properties",
    "value",
    "decode_error",
    "date",
];

/// Parses `NAME=POINTER[:TYPE]` (one line for exit 2).
pub fn parse_field(arg: &str) -> Result<Field, String> {
    let Some((name, rest)) = arg.split_once('=') else {
        return Err(format!("--field {arg:?}: expected NAME=POINTER[:TYPE]"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(format!(
            "--field {arg:?}: the name must be letters, digits, '_', '-' or '.'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "--field {arg:?}: {name:?} is already a column of the export"
        ));
    }
    // A `:TYPE` suffix only when it names a type: `:` may be part of a key.
    let (pointer, ty) = match rest.rsplit_once(':') {
        Some((p, t)) => match FieldType::from_name(t) {
            Some(ty) => (p, Some(ty)),
            None if t.chars().all(|c| c.is_ascii_alphanumeric()) && !t.is_empty() => {
                return Err(format!(
                    "--field {arg:?}: unknown type {t:?} (f64, i64, str, bool or json)"
                ));
            }
            None => (rest, None),
        },
        None => (rest, None),
    };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "--field {arg:?}: {pointer:?} is not a JSON Pointer (RFC 6901: \"\" or starting with '/', like /t or /sensors/0/v)"
        ));
    }
    if let Some(bad) = bad_escape(pointer) {
        return Err(format!(
            "--field {arg:?}: bad escape {bad:?} in the JSON Pointer (RFC 6901 has only ~0 and ~1)"
        ));
    }
    Ok(Field {
        name: name.to_owned(),
        pointer: pointer.to_owned(),
        ty,
    })
}

/// The first `~` not followed by `0` or `1`, if any.
fn bad_escape(p: &str) -> Option<String> {
    let b = p.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'~' && !matches!(b.get(i + 1), Some(b'0' | b'1')) {
            return Some(p[i..].chars().take(2).collect());
        }
    }
    None
}

/// One `--field` value of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Missing or not fitting.
    Null,
    /// `f64`.
    F64(f64),
    /// `i64`.
    I64(i64),
    /// `bool`.
    Bool(bool),
    /// `str` or `json` (JSON text).
    Text(String),
}

impl Field {
    /// The field's value in `v`, fitted to its type (`str` if still
    /// untyped).
    pub fn cell(&self, v: &Value) -> Cell {
        let Some(x) = v.pointer(&self.pointer) else {
            return Cell::Null;
        };
        match (self.ty.unwrap_or(FieldType::Str), x) {
            (_, Value::Null) => Cell::Null,
            (FieldType::F64, Value::Number(n)) => n.as_f64().map_or(Cell::Null, Cell::F64),
            (FieldType::I64, Value::Number(n)) => n.as_i64().map_or(Cell::Null, Cell::I64),
            (FieldType::Bool, Value::Bool(b)) => Cell::Bool(*b),
            (FieldType::Str, Value::String(s)) => Cell::Text(s.clone()),
            (FieldType::Str | FieldType::Json, other) => Cell::Text(other.to_string()),
            _ => Cell::Null,
        }
    }
}

/// What the present values of one untyped field have been so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inference {
    /// A value was present.
    seen: bool,
    /// Every present value is an integer that fits `i64`.
    all_i64: bool,
    /// Every present value is a number.
    all_number: bool,
    /// Every present value is a boolean.
    all_bool: bool,
}

impl Inference {
    /// Nothing seen yet.
    pub fn new() -> Inference {
        Inference {
            seen: false,
            all_i64: true,
            all_number: true,
            all_bool: true,
        }
    }

    /// Takes the field's value in one decoded row.
    pub fn see(&mut self, field: &Field, v: &Value) {
        let x = match v.pointer(&field.pointer) {
            None | Some(Value::Null) => return,
            Some(x) => x,
        };
        self.seen = true;
        self.all_i64 &= x.as_i64().is_some();
        self.all_number &= x.is_number();
        self.all_bool &= x.is_boolean();
    }

    /// `i64` if every present value is an integer, `f64` if every one is
    /// a number, `bool` if every one is a boolean, else (and with none
    /// present) `str`.
    pub fn result(&self) -> FieldType {
        match *self {
            Inference { seen: false, .. } => FieldType::Str,
            Inference { all_i64: true, .. } => FieldType::I64,
            Inference {
                all_number: true, ..
            } => FieldType::F64,
            Inference { all_bool: true, .. } => FieldType::Bool,
            _ => FieldType::Str,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_is_a_name_a_pointer_and_an_optional_type() {
        let f = parse_field("t=/sensors/0/v:f64").unwrap();
        assert_eq!(
            (f.name.as_str(), f.pointer.as_str(), f.ty),
            ("t", "/sensors/0/v", Some(FieldType::F64))
        );
        let f = parse_field("all=").unwrap();
        assert_eq!((f.pointer.as_str(), f.ty), ("", None));
        // A colon that names no type belongs to the key.
        let f = parse_field("c=/a:b/c").unwrap();
        assert_eq!((f.pointer.as_str(), f.ty), ("/a:b/c", None));
    }

    #[test]
    fn bad_fields_are_one_line_errors() {
        for (arg, needle) in [
            ("t", "expected NAME=POINTER"),
            ("t=t", "is not a JSON Pointer"),
            ("t=/a~2", "bad escape"),
            ("t=/a:float", "unknown type"),
            ("topic=/t", "already a column"),
            ("a b=/t", "the name must be"),
        ] {
            let e = parse_field(arg).unwrap_err();
            assert!(e.contains(needle), "{arg}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn values_that_do_not_fit_their_type_are_null() {
        let v = json!({"i": 3, "f": 2.5, "b": true, "s": "x", "o": {"k": [1]}, "n": null});
        let cell = |spec: &str| parse_field(spec).unwrap().cell(&v);
        assert_eq!(cell("a=/i:i64"), Cell::I64(3));
        assert_eq!(cell("a=/f:i64"), Cell::Null);
        assert_eq!(cell("a=/i:f64"), Cell::F64(3.0));
        assert_eq!(cell("a=/s:f64"), Cell::Null);
        assert_eq!(cell("a=/b:bool"), Cell::Bool(true));
        assert_eq!(cell("a=/s:str"), Cell::Text("x".into()));
        assert_eq!(cell("a=/i:str"), Cell::Text("3".into()));
        assert_eq!(cell("a=/o:json"), Cell::Text(r#"{"k":[1]}"#.into()));
        assert_eq!(cell("a=/o/k/0:i64"), Cell::I64(1));
        assert_eq!(cell("a=/n:i64"), Cell::Null);
        assert_eq!(cell("a=/missing:str"), Cell::Null);
    }

    #[test]
    fn inference_takes_the_narrowest_type_of_every_present_value() {
        let f = parse_field("a=/a").unwrap();
        let infer = |vals: &[Value]| {
            let mut i = Inference::new();
            for v in vals {
                i.see(&f, v);
            }
            i.result()
        };
        assert_eq!(
            infer(&[json!({"a": 1}), json!({}), json!({"a": 2})]),
            FieldType::I64
        );
        assert_eq!(infer(&[json!({"a": 1}), json!({"a": 2.5})]), FieldType::F64);
        assert_eq!(
            infer(&[json!({"a": true}), json!({"a": null})]),
            FieldType::Bool
        );
        assert_eq!(infer(&[json!({"a": 1}), json!({"a": "x"})]), FieldType::Str);
        assert_eq!(infer(&[json!({})]), FieldType::Str);
    }
}
