//! The YAML tree the checker walks, and the only use of the YAML crate.
//!
//! Owns: [`Yaml`], our own value type, and [`read_yaml`], the one function
//! that calls `serde_yaml`. Must not: check what a value means (that is
//! the checker's job), so that swapping the YAML crate stays one function.

/// A parsed YAML value, independent of the YAML crate.
#[derive(Debug)]
pub(super) enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
    Tagged(String),
}

impl Yaml {
    /// "a string", "an integer", ... for "expected X, found Y".
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Yaml::Null => "nothing",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a floating-point number",
            Yaml::Str(_) => "a string",
            Yaml::List(_) => "a list",
            Yaml::Map(_) => "a mapping",
            Yaml::Tagged(_) => "a tagged value",
        }
    }
}

/// True when the 1-based `line` and `column` of `text` hold a tab, or the
/// line's indentation does.
fn tab_at(text: &str, line: usize, column: usize) -> bool {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return false;
    };
    l.chars().nth(column.saturating_sub(1)) == Some('\t')
        || l.chars()
            .take_while(|c| c.is_whitespace())
            .any(|c| c == '\t')
}

/// Parses `text` as one YAML document (anchors and `<<` merges resolved).
/// The error is a message and, when known, its 1-based line and column.
pub(super) fn read_yaml(text: &str) -> Result<Yaml, (String, Option<(usize, usize)>)> {
    pub(super) fn convert(value: serde_yaml::Value) -> Yaml {
        use serde_yaml::Value;
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Yaml::Int(i.into()),
                (None, Some(u)) => Yaml::Int(u.into()),
                (None, None) => Yaml::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Yaml::Str(s),
            Value::Sequence(items) => Yaml::List(items.into_iter().map(convert).collect()),
            Value::Mapping(map) => Yaml::Map(
                map.into_iter()
                    .map(|(k, v)| (convert(k), convert(v)))
                    .collect(),
            ),
            Value::Tagged(tagged) => Yaml::Tagged(tagged.tag.to_string()),
        }
    }
    let error = |e: serde_yaml::Error| {
        let at = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        if let Some((line, column)) = at {
            message = message.replace(&format!(" at line {line} column {column}"), "");
        }
        // A tab where indentation is expected is the usual cause of this
        // scanner message: say so, with the word the user needs.
        if message.contains("cannot start any token")
            && at.is_some_and(|(line, column)| tab_at(text, line, column))
        {
            message = "a tab character: YAML indents with spaces only".to_owned();
        }
        (format!("YAML: {message}"), at)
    };
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(error)?;
    value.apply_merge().map_err(error)?;
    Ok(convert(value))
}
