//! `mqtt-version`, `session-expiry-seconds` and `topic-alias-maximum`:
//! which MQTT a connection speaks, how long a broker keeps an MQTT 5
//! persistent session, and whether the broker may use topic aliases.
//!
//! Owns: the accepted spellings (`3.1.1` or `5`, as a number or a string)
//! and the rules tying the keys to `clean-session` and to MQTT 5. Must not:
//! touch the network.

use super::BrokerConfig;
use super::checker::{Checker, Fields};
use super::yaml::Yaml;
use crate::mqtt::session::v5::{DEFAULT_TOPIC_ALIAS_MAXIMUM, Mqtt5Options, SESSION_NEVER_EXPIRES};

/// Largest `topic-alias-maximum`: bounds the per-connection alias table
/// (each entry holds one topic).
pub(super) const MAX_TOPIC_ALIASES: u64 = 1024;

impl Checker<'_> {
    /// `mqtt-version` (default 3.1.1) and, for 5, `session-expiry-seconds`
    /// (default: never expires). `None` = MQTT 3.1.1.
    pub(super) fn mqtt5(&mut self, f: &Fields, clean_session: bool) -> Option<Mqtt5Options> {
        let k = "mqtt-version";
        let v5 = match f.get(k) {
            None => false,
            Some(Yaml::Int(5)) => true,
            Some(Yaml::Float(x)) if *x == 5.0 => true,
            Some(Yaml::Str(s)) if s == "5" || s == "5.0" => true,
            Some(Yaml::Str(s)) if s == "3.1.1" => false,
            Some(other) => {
                let found = match other {
                    Yaml::Int(i) => i.to_string(),
                    Yaml::Float(x) => x.to_string(),
                    Yaml::Str(s) => format!("`{s}`"),
                    other => other.kind().to_owned(),
                };
                self.report(&f.at(k), format!("must be 3.1.1 or 5; found {found}"));
                false
            }
        };
        let e = "session-expiry-seconds";
        let expiry = self
            .integer(f, e, 0, u64::from(u32::MAX))
            .and_then(|s| u32::try_from(s).ok());
        if f.get(e).is_some() {
            if !v5 {
                self.report(
                    &f.at(e),
                    "is an MQTT 5 setting: it needs `mqtt-version: 5`".to_owned(),
                );
            } else if clean_session {
                self.report(
                    &f.at(e),
                    "is used only with `clean-session: false` (a clean session ends with its connection)"
                        .to_owned(),
                );
            }
        }
        let a = "topic-alias-maximum";
        let aliases = self
            .integer(f, a, 0, MAX_TOPIC_ALIASES)
            .and_then(|n| u16::try_from(n).ok());
        if f.get(a).is_some() && !v5 {
            self.report(
                &f.at(a),
                "is an MQTT 5 setting: it needs `mqtt-version: 5`".to_owned(),
            );
        }
        v5.then(|| Mqtt5Options {
            session_expiry_s: expiry.unwrap_or(SESSION_NEVER_EXPIRES),
            topic_alias_maximum: aliases.unwrap_or(DEFAULT_TOPIC_ALIAS_MAXIMUM),
        })
    }
}

/// The `attic check` line: the version, for a persistent MQTT 5 session
/// how long the broker keeps it, and the topic aliases offered.
pub(super) fn describe(b: &BrokerConfig) -> String {
    let mut line = version_line(b);
    if let Some(o) = b.mqtt5 {
        match o.topic_alias_maximum {
            0 => line.push_str("\n    topic aliases:  off (the broker sends every topic in full)"),
            n => line.push_str(&format!("\n    topic aliases:  up to {n}")),
        }
    }
    line
}

fn version_line(b: &BrokerConfig) -> String {
    match b.mqtt5 {
        None => "    mqtt version:   3.1.1".to_owned(),
        Some(_) if b.clean_session => "    mqtt version:   5".to_owned(),
        Some(o) if o.session_expiry_s == SESSION_NEVER_EXPIRES => {
            "    mqtt version:   5 (session never expires)".to_owned()
        }
        Some(o) => format!(
            "    mqtt version:   5 (session expires {} s after a disconnect)",
            o.session_expiry_s
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    fn stream(extra: &str) -> String {
        format!("data-folder: /tmp/x\nstreams:\n  - topic: \"#\"\n    prefix: p\n{extra}")
    }

    fn problems(extra: &str) -> Vec<String> {
        match parse(&stream(extra), Path::new("c.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| format!("{} line {:?}: {}", p.key, p.line, p.message))
                .collect(),
        }
    }

    fn mqtt5(extra: &str) -> Option<crate::mqtt::session::v5::Mqtt5Options> {
        parse(&stream(extra), Path::new("c.yaml")).unwrap().streams[0]
            .broker
            .mqtt5
    }

    #[test]
    fn attic_check_shows_the_version_and_the_session_expiry() {
        let c = parse(
            &stream(
                "    mqtt-version: 5\n    clean-session: false\n    session-expiry-seconds: 60\n",
            ),
            Path::new("c.yaml"),
        )
        .unwrap();
        assert!(
            c.describe()
                .contains("mqtt version:   5 (session expires 60 s after a disconnect)"),
            "{}",
            c.describe()
        );
        let c = parse(&stream(""), Path::new("c.yaml")).unwrap();
        assert!(c.describe().contains("mqtt version:   3.1.1"));
    }

    #[test]
    fn topic_aliases_are_off_by_default_and_shown_by_attic_check() {
        assert_eq!(
            mqtt5("    mqtt-version: 5\n").unwrap().topic_alias_maximum,
            0
        );
        let c = parse(&stream("    mqtt-version: 5\n"), Path::new("c.yaml")).unwrap();
        assert!(
            c.describe()
                .contains("topic aliases:  off (the broker sends every topic in full)"),
            "{}",
            c.describe()
        );
        let o = mqtt5("    mqtt-version: 5\n    topic-alias-maximum: 16\n").unwrap();
        assert_eq!(o.topic_alias_maximum, 16);
        let c = parse(
            &stream("    mqtt-version: 5\n    topic-alias-maximum: 16\n"),
            Path::new("c.yaml"),
        )
        .unwrap();
        assert!(c.describe().contains("topic aliases:  up to 16"));
    }

    #[test]
    fn a_bad_topic_alias_maximum_is_refused_with_key_and_line() {
        let p = problems("    mqtt-version: 5\n    topic-alias-maximum: -1\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("streams[0].topic-alias-maximum line Some(6)"),
            "{p:?}"
        );
        let p = problems("    mqtt-version: 5\n    topic-alias-maximum: 70000\n");
        assert!(
            p[0].starts_with("streams[0].topic-alias-maximum line Some(6)"),
            "{p:?}"
        );
        let p = problems("    topic-alias-maximum: 8\n");
        assert!(p[0].contains("needs `mqtt-version: 5`"), "{p:?}");
    }

    #[test]
    fn the_default_is_mqtt_3_1_1() {
        assert_eq!(mqtt5(""), None);
        assert_eq!(mqtt5("    mqtt-version: 3.1.1\n"), None);
    }

    #[test]
    fn version_5_is_accepted_as_a_number_or_a_string() {
        for v in ["5", "\"5\"", "5.0"] {
            let o = mqtt5(&format!("    mqtt-version: {v}\n")).unwrap();
            assert_eq!(o.session_expiry_s, u32::MAX, "{v}");
        }
    }

    #[test]
    fn session_expiry_is_read_with_a_persistent_session() {
        let o = mqtt5(
            "    mqtt-version: 5\n    clean-session: false\n    session-expiry-seconds: 86400\n",
        );
        assert_eq!(o.unwrap().session_expiry_s, 86_400);
    }

    #[test]
    fn other_versions_are_refused_with_key_and_line() {
        let p = problems("    mqtt-version: 4\n");
        assert_eq!(
            p,
            vec!["streams[0].mqtt-version line Some(5): must be 3.1.1 or 5; found 4"]
        );
        let p = problems("    mqtt-version: \"3\"\n");
        assert!(p[0].contains("found `3`"), "{p:?}");
    }

    #[test]
    fn session_expiry_needs_version_5_and_a_persistent_session() {
        let p = problems("    session-expiry-seconds: 60\n");
        assert!(p[0].contains("needs `mqtt-version: 5`"), "{p:?}");
        let p = problems("    mqtt-version: 5\n    session-expiry-seconds: 60\n");
        assert!(p[0].contains("only with `clean-session: false`"), "{p:?}");
    }

    #[test]
    fn session_expiry_out_of_range_is_refused() {
        let p = problems(
            "    mqtt-version: 5\n    clean-session: false\n    session-expiry-seconds: -1\n",
        );
        assert!(
            p[0].starts_with("streams[0].session-expiry-seconds line Some(7)"),
            "{p:?}"
        );
        let p = problems(
            "    mqtt-version: 5\n    clean-session: false\n    session-expiry-seconds: 4294967296\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
