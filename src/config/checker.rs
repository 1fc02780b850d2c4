//! The checker's typed getters: read a value of the expected kind or
//! record a [`Problem`] with its key path, line and column, and go on.
//!
//! Owns: [`Checker`] and [`Fields`] and the getters shared by every
//! section (strings, choices, integers in a range, topic filters). Must
//! not: know which keys a section has (that is `sections`).

use super::locate;
use super::yaml::Yaml;
use super::{Problem, Seg, child, key, path_string};
use crate::mqtt::topic::topic_filter_problem;
use crate::suggest::suggestion;
use std::path::{Path, PathBuf};

/// A mapping's known, non-null entries, with the path that leads to it.
pub(super) struct Fields<'v> {
    pub(super) path: Vec<Seg>,
    pub(super) entries: Vec<(&'v str, &'v Yaml)>,
}

impl<'v> Fields<'v> {
    pub(super) fn get(&self, k: &str) -> Option<&'v Yaml> {
        self.entries
            .iter()
            .find(|(name, _)| *name == k)
            .map(|e| e.1)
    }

    pub(super) fn at(&self, k: &str) -> Vec<Seg> {
        key(&self.path, k)
    }
}

pub(super) struct Checker<'t> {
    pub(super) locator: locate::Locator<'t>,
    pub(super) problems: Vec<Problem>,
    /// Host name for default client ids.
    pub(super) host: &'t str,
    /// The data folder's instance tag, for default client ids (empty
    /// until `data-folder` is read).
    pub(super) tag: String,
    /// The config file's folder, for relative `password-file` paths.
    pub(super) dir: &'t Path,
}

impl Checker<'_> {
    /// Records a problem for `path`, positioned at `at` (usually the same).
    pub(super) fn report_at(&mut self, path: &[Seg], at: &[Seg], message: String) {
        let pos = self.locator.find_nearest(at);
        self.problems.push(Problem {
            key: path_string(path),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message,
        });
    }

    pub(super) fn report(&mut self, path: &[Seg], message: String) {
        self.report_at(path, path, message);
    }

    /// Like `report`, but positioned at the deepest part of `path` the
    /// locator finds: filter options are usually in flow style
    /// (`{ seconds: 10 }`), which it does not walk into; the entry's line
    /// is then still right.
    pub(super) fn report_near(&mut self, path: &[Seg], message: String) {
        let mut at = path.len();
        while at > 0 && self.locator.find(&path[..at]).is_none() {
            at -= 1;
        }
        self.report_at(path, &path[..at], message);
    }

    pub(super) fn wrong_type(&mut self, path: &[Seg], expected: &str, found: &Yaml) {
        let found = match found {
            Yaml::Tagged(tag) => format!("a value tagged `{tag}` (tags are not supported)"),
            other => other.kind().to_owned(),
        };
        self.report(path, format!("expected {expected}, found {found}"));
    }

    /// Reports a missing key, positioned at the mapping that should hold it.
    pub(super) fn missing(&mut self, f: &Fields, k: &str, why: &str) {
        let path = f.at(k);
        if self.locator.value_is_a_comment(&path) {
            self.report(
                &path,
                format!(
                    "has no value: `#` after a blank starts a YAML comment; quote a topic \
                     filter that starts with it (`{k}: \"#\"`)"
                ),
            );
            return;
        }
        let parent = f.path.clone();
        self.report_at(&path, &parent, format!("is required{why}"));
    }

    /// Checks that `value` is a mapping with string keys, all of them known;
    /// `null` values count as absent.
    pub(super) fn mapping<'v>(
        &mut self,
        value: &'v Yaml,
        path: &[Seg],
        known: &[&str],
    ) -> Option<Fields<'v>> {
        let Yaml::Map(pairs) = value else {
            self.wrong_type(path, "a mapping (`key: value` lines)", value);
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in pairs {
            let Yaml::Str(name) = k else {
                let kind = k.kind();
                self.report(path, format!("keys must be strings, found {kind}"));
                continue;
            };
            if !known.contains(&name.as_str()) {
                let mut message = format!("unknown key `{name}`");
                if let Some(close) = suggestion(name, known) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.report(&key(path, name), message);
            } else if !matches!(v, Yaml::Null) {
                entries.push((name.as_str(), v));
            }
        }
        Some(Fields {
            path: path.to_vec(),
            entries,
        })
    }

    pub(super) fn string(&mut self, f: &Fields, k: &str) -> Option<String> {
        match f.get(k)? {
            Yaml::Str(s) => Some(s.clone()),
            other => {
                self.wrong_type(&f.at(k), "a string", other);
                None
            }
        }
    }

    /// A string that must be one of `choices`.
    pub(super) fn choice(&mut self, f: &Fields, k: &str, choices: &[&str]) -> Option<String> {
        let s = self.string(f, k)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            let list = choices.join(", ");
            self.report(&f.at(k), format!("must be one of {list}; found `{s}`"));
            None
        }
    }

    /// A non-empty path with no NUL.
    pub(super) fn path(&mut self, f: &Fields, k: &str) -> Option<PathBuf> {
        let s = self.string(f, k)?;
        if s.is_empty() || s.contains('\0') {
            self.report(&f.at(k), "must be a non-empty path".to_owned());
            return None;
        }
        Some(PathBuf::from(s))
    }

    pub(super) fn boolean(&mut self, f: &Fields, k: &str) -> Option<bool> {
        match f.get(k)? {
            Yaml::Bool(b) => Some(*b),
            other => {
                self.wrong_type(&f.at(k), "true or false", other);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub(super) fn integer(&mut self, f: &Fields, k: &str, min: u64, max: u64) -> Option<u64> {
        let value = f.get(k)?;
        let Yaml::Int(i) = value else {
            self.wrong_type(&f.at(k), "an integer", value);
            return None;
        };
        match u64::try_from(*i) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.report(
                    &f.at(k),
                    format!("must be between {min} and {max}; found {i}"),
                );
                None
            }
        }
    }

    /// `qos`: 0, 1 or 2.
    pub(super) fn qos(&mut self, f: &Fields) -> u8 {
        self.integer(f, "qos", 0, 2)
            .and_then(|q| u8::try_from(q).ok())
            .unwrap_or(0)
    }

    /// One filter or a list of them, each checked.
    pub(super) fn filters(&mut self, f: &Fields, k: &str) -> Vec<String> {
        let path = f.at(k);
        let mut out = Vec::new();
        let mut check = |me: &mut Self, s: &str, at: &[Seg]| {
            if let Some(p) = topic_filter_problem(s) {
                me.report(at, format!("invalid topic filter: {p}"));
            }
            out.push(s.to_owned());
        };
        match f.get(k) {
            None => {}
            Some(Yaml::Str(s)) => check(self, s, &path),
            Some(Yaml::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = child(&path, Seg::Index(i));
                    match item {
                        Yaml::Str(s) => check(self, s, &at),
                        other => self.wrong_type(&at, "a topic filter string", other),
                    }
                }
            }
            Some(other) => self.wrong_type(&path, "a topic filter or a list of them", other),
        }
        out
    }
}
