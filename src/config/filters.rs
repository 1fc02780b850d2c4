//! The `filters:` list of a stream: each entry a one-key mapping `name:
//! options`, its name registered and its options accepted by the filter's
//! own `build` (so `attic check` reports a bad option with its key path).
//!
//! Owns: reading that list into [`filter::Spec`]s. Must not: run a filter,
//! or know any one filter's options (the filters check their own).

use super::checker::Checker;
use super::checker::Fields;
use super::yaml::Yaml;
use super::{Seg, child, key};
use crate::filter::{self, options::Step};
use crate::suggest::suggestion;

impl Checker<'_> {
    /// `filters`: a list of one-key mappings `name: options`, each name
    /// registered and its options accepted by the filter's `build`.
    pub(super) fn filter_specs(&mut self, f: &Fields) -> Vec<filter::Spec> {
        let path = f.at("filters");
        let items = match f.get("filters") {
            None => return Vec::new(),
            Some(Yaml::List(items)) => items,
            Some(other) => {
                self.wrong_type(&path, "a list of filters (`- name: options`)", other);
                return Vec::new();
            }
        };
        let registry = filter::Registry::builtin();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = child(&path, Seg::Index(i));
            let pairs = match item {
                Yaml::Map(pairs) if pairs.len() == 1 => pairs,
                Yaml::Map(pairs) => {
                    let n = pairs.len();
                    self.report_near(
                        &at,
                        format!("each filter is a one-key mapping `name: options`; found {n} keys"),
                    );
                    continue;
                }
                Yaml::Str(name) if registry.contains(name) => {
                    self.report_near(
                        &at,
                        format!("write `- {name}: <options>` (a filter is a one-key mapping)"),
                    );
                    continue;
                }
                other => {
                    let found = other.kind();
                    self.report_near(
                        &at,
                        format!(
                            "expected a one-key mapping such as `- exclude: [\"debug/#\"]`, found {found}"
                        ),
                    );
                    continue;
                }
            };
            let Some((Yaml::Str(name), value)) = pairs.first() else {
                self.report_near(&at, "a filter name must be a string".to_owned());
                continue;
            };
            let at = key(&at, name);
            if !registry.contains(name) {
                let names = registry.names();
                let mut message = format!("unknown filter `{name}`");
                match suggestion(name, &names) {
                    Some(close) => message.push_str(&format!("; did you mean `{close}`?")),
                    None => message.push_str(&format!(" (known: {})", names.join(", "))),
                }
                self.report_near(&at, message);
                continue;
            }
            let options = self.option_value(value, &at);
            let spec = filter::Spec::new(name, options);
            if let Err(problems) = registry.build(&spec) {
                for p in problems {
                    let mut full = at.clone();
                    full.extend(p.path.into_iter().map(|step| match step {
                        Step::Key(k) => Seg::Key(k),
                        Step::Index(i) => Seg::Index(i),
                    }));
                    self.report_near(&full, p.message);
                }
            }
            out.push(spec);
        }
        out
    }

    /// Converts a filter's options to [`filter::Value`]; tags and non-string
    /// keys are problems (and become `Null` / are left out).
    pub(super) fn option_value(&mut self, value: &Yaml, path: &[Seg]) -> filter::Value {
        use filter::Value;
        match value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Int(i) => Value::Int(*i),
            Yaml::Float(x) => Value::Float(*x),
            Yaml::Str(s) => Value::Str(s.clone()),
            Yaml::List(items) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.option_value(v, &child(path, Seg::Index(i))))
                    .collect(),
            ),
            Yaml::Map(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let Yaml::Str(name) = k else {
                        let kind = k.kind();
                        self.report_near(path, format!("keys must be strings, found {kind}"));
                        continue;
                    };
                    out.push((name.clone(), self.option_value(v, &key(path, name))));
                }
                Value::Map(out)
            }
            Yaml::Tagged(tag) => {
                self.report_near(
                    path,
                    format!("expected a value, found one tagged `{tag}` (tags are not supported)"),
                );
                Value::Null
            }
        }
    }
}
