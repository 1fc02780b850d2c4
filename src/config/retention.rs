//! The `retention:` section: at the top level (every stream's default, plus
//! `min-free-mb`) and in each stream (its keys replace the top-level ones).
//!
//! Owns: the three keys, their checks (a number above 0, or `unlimited` to
//! lift a top-level limit for one stream), the resolution of a stream's
//! limits from both levels, and the `attic check` line. Must not: look at
//! the file system or delete anything (that is `store::retention`).

use super::checker::{Checker, Fields};
use super::yaml::Yaml;
use super::{Seg, key};
use crate::store::retention::{Limits as Retention, MB};
use std::time::Duration;

/// The keys of a `retention:` mapping.
const KEYS: &[&str] = &["max-age-days", "max-size-mb", "min-free-mb"];

/// Largest `max-age-days` accepted (a bound that keeps the arithmetic exact).
const MAX_DAYS: f64 = 1_000_000.0;
/// Largest `max-size-mb` / `min-free-mb` accepted (one exbibyte).
const MAX_MB: f64 = 1_099_511_627_776.0;

/// One key of a `retention:` block as written.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Setting {
    /// Not set here: the top level's value (or none) applies.
    #[default]
    Inherit,
    /// `unlimited`: no limit, whatever the top level says.
    Unlimited,
    /// A limit (days or MB as written).
    Limit(f64),
}

/// A `retention:` block as written, checked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Block {
    max_age_days: Setting,
    max_size_mb: Setting,
    /// `min-free-mb` in bytes (top level only).
    pub(super) min_free_bytes: Option<u64>,
}

impl Block {
    /// The stream's limits: its own keys where set, else the top level's.
    pub(super) fn resolve(&self, top: &Block) -> Retention {
        let pick = |own: Setting, top: Setting| match own {
            Setting::Inherit => top,
            set => set,
        };
        let limit = |s: Setting| match s {
            Setting::Limit(x) => Some(x),
            Setting::Inherit | Setting::Unlimited => None,
        };
        Retention {
            max_age: limit(pick(self.max_age_days, top.max_age_days))
                .and_then(|d| Duration::try_from_secs_f64(d * 86_400.0).ok()),
            max_size_bytes: limit(pick(self.max_size_mb, top.max_size_mb)).map(mb_to_bytes),
        }
    }
}

fn mb_to_bytes(mb: f64) -> u64 {
    // Checked to be in (0, MAX_MB]: the product fits; `as` saturates anyway.
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a positive value checked to be at most 2^60, rounded up"
    )]
    let bytes = (mb * MB).ceil() as u64;
    bytes.max(1)
}

impl Checker<'_> {
    /// The top-level `retention:` block (absent = keep everything).
    pub(super) fn top_retention(&mut self, top: &Fields) -> Block {
        match top.get("retention") {
            Some(value) => self.retention_block(value, &top.at("retention"), true),
            None => Block::default(),
        }
    }

    /// A stream's limits: its own `retention:` (in the raw stream mapping
    /// `item` at `path`) over the top-level `top`.
    pub(super) fn stream_retention(&mut self, item: &Yaml, path: &[Seg], top: &Block) -> Retention {
        let own = match item {
            Yaml::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
                Yaml::Str(name) if name == "retention" && !matches!(v, Yaml::Null) => Some(v),
                _ => None,
            }),
            _ => None,
        };
        let block = match own {
            Some(value) => self.retention_block(value, &key(path, "retention"), false),
            None => Block::default(),
        };
        block.resolve(top)
    }

    fn retention_block(&mut self, value: &Yaml, path: &[Seg], top_level: bool) -> Block {
        let Some(f) = self.mapping(value, path, KEYS) else {
            return Block::default();
        };
        let max_age_days = self.retention_setting(&f, "max-age-days", MAX_DAYS, "days");
        let max_size_mb = self.retention_setting(&f, "max-size-mb", MAX_MB, "MB");
        let mut min_free_bytes = None;
        if f.get("min-free-mb").is_some() {
            if top_level {
                min_free_bytes = match self.retention_setting(&f, "min-free-mb", MAX_MB, "MB") {
                    Setting::Limit(mb) => Some(mb_to_bytes(mb)),
                    Setting::Inherit | Setting::Unlimited => None,
                };
            } else {
                self.report(
                    &f.at("min-free-mb"),
                    "is a top-level `retention:` key only (free space belongs to the \
                     data folder's file system, not to one stream)"
                        .to_owned(),
                );
            }
        }
        Block {
            max_age_days,
            max_size_mb,
            min_free_bytes,
        }
    }

    /// A number above 0 and at most `max`, or `unlimited`.
    fn retention_setting(&mut self, f: &Fields, k: &str, max: f64, unit: &str) -> Setting {
        let Some(value) = f.get(k) else {
            return Setting::Inherit;
        };
        let x = match value {
            Yaml::Int(i) => *i as f64,
            Yaml::Float(x) => *x,
            Yaml::Str(s) if s == "unlimited" && k != "min-free-mb" => return Setting::Unlimited,
            other => {
                let expected = if k == "min-free-mb" {
                    format!("a number of {unit}")
                } else {
                    format!("a number of {unit} or `unlimited`")
                };
                self.wrong_type(&f.at(k), &expected, other);
                return Setting::Inherit;
            }
        };
        if x.is_finite() && x > 0.0 && x <= max {
            Setting::Limit(x)
        } else {
            let hint = if k == "min-free-mb" {
                "leave the key out to keep no free space".to_owned()
            } else {
                "leave the key out, or write `unlimited`, for no limit".to_owned()
            };
            self.report(
                &f.at(k),
                format!("must be above 0 and at most {max} {unit} ({hint}); found {x}"),
            );
            Setting::Inherit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    fn yaml(top: &str, stream: &str) -> String {
        format!(
            "data-folder: /tmp/x\n{top}streams:\n  - topic: \"#\"\n    prefix: a\n{stream}  - topic: \"#\"\n    prefix: b\n"
        )
    }

    #[test]
    fn no_retention_keeps_everything() {
        let c = parse(&yaml("", ""), Path::new("c.yaml")).unwrap();
        assert_eq!(c.min_free_bytes, None);
        assert!(
            c.streams
                .iter()
                .all(|s| s.retention == Retention::default())
        );
    }

    #[test]
    fn the_top_level_is_every_streams_default_and_a_streams_keys_replace_it() {
        let top = "retention:\n  max-age-days: 30\n  max-size-mb: 2048\n  min-free-mb: 500\n";
        let own = "    retention:\n      max-age-days: 1.5\n";
        let c = parse(&yaml(top, own), Path::new("c.yaml")).unwrap();
        assert_eq!(c.min_free_bytes, Some(500 * 1_048_576));
        let a = c.streams[0].retention;
        assert_eq!(a.max_age, Some(Duration::from_secs(129_600)));
        assert_eq!(a.max_size_bytes, Some(2048 * 1_048_576));
        let b = c.streams[1].retention;
        assert_eq!(b.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(b.max_size_bytes, Some(2048 * 1_048_576));
    }

    #[test]
    fn unlimited_lifts_a_top_level_limit_for_one_stream() {
        let top = "retention:\n  max-age-days: 30\n";
        let own = "    retention: { max-age-days: unlimited, max-size-mb: 0.5 }\n";
        let c = parse(&yaml(top, own), Path::new("c.yaml")).unwrap();
        assert_eq!(c.streams[0].retention.max_age, None);
        assert_eq!(c.streams[0].retention.max_size_bytes, Some(524_288));
        assert_eq!(
            c.streams[0].retention.describe(),
            "max-age-days unlimited, max-size-mb 0.5 MB"
        );
        assert_eq!(
            c.streams[1].retention.describe(),
            "max-age-days 30 days, max-size-mb unlimited"
        );
    }

    #[test]
    fn zero_negative_and_unknown_keys_are_reported_with_key_path_and_line() {
        let top = "retention:\n  max-age-days: 0\n  max-size-mb: -5\n  max-age-day: 1\n";
        let own = "    retention:\n      min-free-mb: 10\n      max-size-mb: lots\n";
        let e = parse(&yaml(top, own), Path::new("c.yaml")).unwrap_err();
        let shown: Vec<(String, Option<usize>)> =
            e.problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            shown,
            [
                ("retention.max-age-days".to_owned(), Some(3)),
                ("retention.max-size-mb".to_owned(), Some(4)),
                ("retention.max-age-day".to_owned(), Some(5)),
                ("streams[0].retention.min-free-mb".to_owned(), Some(10)),
                ("streams[0].retention.max-size-mb".to_owned(), Some(11)),
            ]
        );
        let text = e.to_string();
        assert!(text.contains("must be above 0"), "{text}");
        assert!(text.contains("did you mean `max-age-days`"), "{text}");
        assert!(text.contains("top-level `retention:` key only"), "{text}");
        assert!(
            text.contains("expected a number of MB or `unlimited`"),
            "{text}"
        );
    }

    #[test]
    fn retention_must_be_a_mapping() {
        let e = parse(&yaml("retention: 30\n", ""), Path::new("c.yaml")).unwrap_err();
        assert_eq!(e.problems[0].key, "retention");
    }
}
