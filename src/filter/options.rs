//! A filter's options as written under its name in `filters:`, and the
//! typed getters a filter's `build` uses to read them.
//!
//! Owns: the option value tree (independent of the YAML crate), the getters
//! that record a problem and carry on, and the rule that every key nobody
//! asked for is unknown. Must not: know about any particular filter, or
//! about the rest of the configuration (`config` turns the problems found
//! here into key paths with lines).

use crate::mqtt::topic::topic_filter_problem;

/// An option value, as parsed from the YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Nothing (`changes-only:` with no options).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Value>),
    /// A mapping with string keys, in file order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// "a string", "an integer", ... for "expected X, found Y".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a floating-point number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// One step of a key path inside a filter's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Something wrong with a filter's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// Where, relative to the filter's entry (empty = the entry itself).
    pub path: Vec<Step>,
    /// What is wrong, for a person.
    pub message: String,
}

/// A filter's options, read by its `build` function.
///
/// The options are either a mapping (`{ topics: [..], seconds: 10 }`) or a
/// single value that stands for the filter's main option (declared with
/// [`Options::shorthand`]): `exclude: ["debug/#"]` means
/// `exclude: { topics: ["debug/#"] }`. Every key that `build` does not ask
/// for is reported as unknown.
#[derive(Debug)]
pub struct Options<'v> {
    value: &'v Value,
    /// The key a non-mapping value stands for, once declared.
    shorthand: Option<&'static str>,
    /// Keys `build` asked for, for the unknown-key check and suggestions.
    asked: Vec<&'static str>,
    problems: Vec<OptionProblem>,
}

impl<'v> Options<'v> {
    /// Options over `value` (what follows the filter's name in the YAML).
    pub fn new(value: &'v Value) -> Self {
        Options {
            value,
            shorthand: None,
            asked: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Declares that a value which is not a mapping means `{ key: value }`.
    pub fn shorthand(&mut self, key: &'static str) {
        self.shorthand = Some(key);
    }

    /// The value of `key` (null counts as absent), and the path to report
    /// its problems at.
    fn get(&mut self, key: &'static str) -> Option<(&'v Value, Vec<Step>)> {
        self.asked.push(key);
        match self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .filter(|(_, v)| !matches!(v, Value::Null))
                .map(|(k, v)| (v, vec![Step::Key(k.clone())])),
            Value::Null => None,
            other if self.shorthand == Some(key) => Some((other, Vec::new())),
            _ => None,
        }
    }

    /// Records a problem at `path` (relative to the filter's entry).
    pub fn report(&mut self, path: Vec<Step>, message: String) {
        self.problems.push(OptionProblem { path, message });
    }

    fn wrong_type(&mut self, path: Vec<Step>, expected: &str, found: &Value) {
        let found = found.kind();
        self.report(path, format!("expected {expected}, found {found}"));
    }

    /// Reports that `key` is missing (at the filter's entry).
    pub fn missing(&mut self, key: &str) {
        self.report(Vec::new(), format!("`{key}` is required"));
    }

    /// An optional integer in `min..=max`; `None` when absent or invalid
    /// (the latter is recorded).
    pub fn integer(&mut self, key: &'static str, min: u64, max: u64) -> Option<u64> {
        let (value, path) = self.get(key)?;
        let Value::Int(i) = value else {
            self.wrong_type(path, "an integer", value);
            return None;
        };
        match u64::try_from(*i) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let k = key;
                self.report(
                    path,
                    format!("`{k}` must be between {min} and {max}; found {i}"),
                );
                None
            }
        }
    }

    /// An optional `true` / `false`.
    pub fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let (value, path) = self.get(key)?;
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, "true or false", other);
                None
            }
        }
    }

    /// A required integer in `min..=max`.
    pub fn required_integer(&mut self, key: &'static str, min: u64, max: u64) -> Option<u64> {
        let present = self.get(key).is_some();
        if !present {
            self.missing(key);
            return None;
        }
        self.integer(key, min, max)
    }

    /// An optional topic filter or list of them, each checked; `[]` when
    /// absent. `$share/...` is a subscription form, not a topic pattern,
    /// and is refused.
    pub fn topics(&mut self, key: &'static str) -> Vec<String> {
        let Some((value, path)) = self.get(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut check = |me: &mut Self, s: &str, at: Vec<Step>| {
            let why = topic_filter_problem(s).or_else(|| {
                s.starts_with("$share/")
                    .then(|| "`$share/...` names a subscription, not topics".to_owned())
            });
            match why {
                Some(why) => me.report(at, format!("invalid topic filter: {why}")),
                None => out.push(s.to_owned()),
            }
        };
        match value {
            Value::Str(s) => check(self, s, path),
            Value::List(items) if items.is_empty() => {
                self.report(path, "needs at least one topic filter".to_owned());
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mut at = path.clone();
                    at.push(Step::Index(i));
                    match item {
                        Value::Str(s) => check(self, s, at),
                        other => self.wrong_type(at, "a topic filter string", other),
                    }
                }
            }
            other => self.wrong_type(path, "a topic filter or a list of them", other),
        }
        out
    }

    /// Required topic filters (at least one).
    pub fn required_topics(&mut self, key: &'static str) -> Vec<String> {
        let present = self.get(key).is_some();
        if !present {
            self.missing(key);
            return Vec::new();
        }
        self.topics(key)
    }

    /// Ends reading: reports unknown keys (with a suggestion) and a
    /// non-mapping value where no shorthand was declared. Returns every
    /// problem recorded.
    pub fn finish(mut self) -> Vec<OptionProblem> {
        match self.value {
            Value::Map(entries) => {
                for (k, _) in entries {
                    if !self.asked.contains(&k.as_str()) {
                        let mut message = format!("unknown key `{k}`");
                        if let Some(close) = crate::suggest::suggestion(k, &self.asked) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        self.problems.push(OptionProblem {
                            path: vec![Step::Key(k.clone())],
                            message,
                        });
                    }
                }
            }
            Value::Null => {}
            other if self.shorthand.is_none() => {
                let found = other.kind();
                let keys = self.asked.join(", ");
                self.problems.push(OptionProblem {
                    path: Vec::new(),
                    message: format!("expected a mapping of options (keys: {keys}), found {found}"),
                });
            }
            _ => {}
        }
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn keys_nobody_asked_for_are_unknown_with_a_suggestion() {
        let v = map(&[("heartbeat-secs", Value::Int(5))]);
        let mut o = Options::new(&v);
        assert_eq!(o.integer("heartbeat-seconds", 1, 10), None);
        let p = o.finish();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, vec![Step::Key("heartbeat-secs".into())]);
        assert!(
            p[0].message.contains("did you mean `heartbeat-seconds`"),
            "{p:?}"
        );
    }

    #[test]
    fn a_shorthand_value_stands_for_the_main_key_and_problems_point_at_the_entry() {
        let v = Value::Int(0);
        let mut o = Options::new(&v);
        o.shorthand("seconds");
        assert_eq!(o.integer("seconds", 1, 10), None);
        let p = o.finish();
        assert_eq!(p.len(), 1);
        assert!(p[0].path.is_empty());
        assert!(p[0].message.contains("between 1 and 10"));
    }

    #[test]
    fn a_scalar_without_a_shorthand_is_a_type_problem() {
        let v = Value::Int(3);
        let mut o = Options::new(&v);
        let _ = o.topics("topics");
        let p = o.finish();
        assert!(
            p[0].message.starts_with("expected a mapping of options"),
            "{p:?}"
        );
    }

    #[test]
    fn topics_are_checked_one_by_one() {
        let v = map(&[(
            "topics",
            Value::List(vec![
                Value::Str("a/#".into()),
                Value::Str("a/#/b".into()),
                Value::Int(1),
                Value::Str("$share/g/x".into()),
            ]),
        )]);
        let mut o = Options::new(&v);
        assert_eq!(o.topics("topics"), vec!["a/#".to_owned()]);
        let p = o.finish();
        let at: Vec<_> = p.iter().map(|p| p.path.clone()).collect();
        let step = |i| vec![Step::Key("topics".into()), Step::Index(i)];
        assert_eq!(at, vec![step(1), step(2), step(3)]);
    }

    #[test]
    fn required_keys_are_reported_at_the_entry() {
        let v = Value::Null;
        let mut o = Options::new(&v);
        assert_eq!(o.required_integer("seconds", 1, 5), None);
        assert!(o.required_topics("topics").is_empty());
        let p = o.finish();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].message, "`seconds` is required");
    }
}
