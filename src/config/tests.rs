//! Unit tests for the configuration parser and validator.

use super::sections::{PERFORMANCE_KEYS, STREAM_KEYS, TOP_KEYS};
use super::*;

const ORIGINAL: &str = r##"console-feedback-period-seconds: 3
data-folder: "/var/attic/data"
streams:
  - mqtt-broker-address: "127.0.0.1"
    mqtt-broker-port: 1883
    user: ""
    password: ""
    topic: "#"
    prefix: "everything"
    suffix: ""
    file-rotation-time-seconds: 300
log-performance: true
log-performance-stream:
  topic: "attic/performance"
  mqtt-broker-address: "127.0.0.1"
  mqtt-broker-port: 1883
  user: ""
  password: ""
"##;

fn parse_ok(text: &str) -> Config {
    match parse_with_host(text, Path::new("test.yaml"), "node") {
        Ok(config) => config,
        Err(e) => panic!("unexpected problems:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse_with_host(text, Path::new("test.yaml"), "node") {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(e) => e.problems,
    }
}

fn minimal(stream_extra: &str) -> String {
    format!("data-folder: d\nstreams:\n  - topic: a/b\n    prefix: p\n{stream_extra}")
}

/// A scratch folder unique to one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("attic-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_python_original_config_loads_unchanged() {
    let c = parse_ok(ORIGINAL);
    assert_eq!(c.data_folder, PathBuf::from("/var/attic/data"));
    assert_eq!(c.feedback_period, Duration::from_secs(3));
    assert_eq!(c.streams.len(), 1);
    let s = &c.streams[0];
    assert_eq!(s.folder_name, "everything");
    assert_eq!(s.topics, vec!["#".to_owned()]);
    assert_eq!(s.rotation, Duration::from_secs(300));
    assert_eq!(s.broker.host, "127.0.0.1");
    assert_eq!(s.broker.port, 1883);
    assert_eq!(s.broker.user, None);
    assert_eq!(s.broker.password, None);
    let p = c.performance.unwrap();
    assert_eq!(p.topic, "attic/performance");
    assert_eq!(p.broker.port, 1883);
    assert_eq!(
        p.broker.client_id,
        format!(
            "attic-node-performance-{}",
            crate::mqtt::identity::instance_tag(Path::new("/var/attic/data"))
        )
    );
}

#[test]
fn the_example_config_parses_without_problems() {
    let c = parse_ok(include_str!("../../config.example.yaml"));
    assert_eq!(c.data_folder, PathBuf::from("./data"));
    assert_eq!(c.streams[0].folder_name, "everything");
    assert_eq!(c.streams[0].topics, vec!["#".to_owned()]);
    assert_eq!(c.performance, None);
}

#[test]
fn the_example_config_mentions_every_key() {
    let text = include_str!("../../config.example.yaml");
    for k in TOP_KEYS.iter().chain(STREAM_KEYS).chain(PERFORMANCE_KEYS) {
        assert!(
            text.contains(&format!("{k}:")),
            "config.example.yaml lacks `{k}`"
        );
    }
}

#[test]
fn defaults_fill_in_every_optional_key() {
    let c = parse_ok("data-folder: d\nstreams:\n  - topic: a\n    prefix: p\n");
    assert_eq!(c.feedback_period, Duration::from_secs(3));
    assert_eq!(c.log_level, log::LevelFilter::Info);
    assert_eq!(c.metrics_file, None);
    assert_eq!(c.performance, None);
    let s = &c.streams[0];
    assert_eq!(s.broker.host, "127.0.0.1");
    assert_eq!(s.broker.port, 1883);
    // The default id ends with the data folder's tag: two instances with
    // different folders never share it.
    let tag = crate::mqtt::identity::instance_tag(Path::new("d"));
    assert_eq!(s.broker.client_id, format!("attic-node-p-{tag}"));
    assert!(s.broker.clean_session);
    assert_eq!(s.broker.keep_alive, Duration::from_secs(30));
    assert_eq!(s.rotation, Duration::from_secs(300));
    assert_eq!(s.qos, 0);
    assert_eq!(s.commit_interval, Duration::from_millis(1000));
    assert_eq!(s.max_payload_bytes, 16 * 1024 * 1024);
    assert!(s.exclude.is_empty());
    assert_eq!(s.durability, Durability::Normal);
}

#[test]
fn every_new_key_is_read() {
    let c = parse_ok(
        "data-folder: d\nlog-level: debug\nmetrics-file: m.prom\n\
         console-feedback-period-seconds: 0.5\nstreams:\n  - topic: [a, b/+]\n    prefix: p\n    \
         suffix: s\n    qos: 2\n    client-id: me\n    clean-session: false\n    \
         keep-alive-seconds: 10\n    commit-interval-ms: 50\n    max-payload-bytes: 100\n    \
         exclude: [a/secret/#]\n    durability: power-safe\n    user: u\n    password: pw\n",
    );
    assert_eq!(c.log_level, log::LevelFilter::Debug);
    assert_eq!(c.metrics_file, Some(PathBuf::from("m.prom")));
    assert_eq!(c.feedback_period, Duration::from_millis(500));
    let s = &c.streams[0];
    assert_eq!(s.topics, vec!["a".to_owned(), "b/+".to_owned()]);
    assert_eq!(s.folder_name, "ps");
    assert_eq!(s.qos, 2);
    assert_eq!(s.broker.client_id, "me");
    assert!(!s.broker.clean_session);
    assert_eq!(s.broker.keep_alive, Duration::from_secs(10));
    assert_eq!(s.commit_interval, Duration::from_millis(50));
    assert_eq!(s.max_payload_bytes, 100);
    assert_eq!(s.exclude, vec!["a/secret/#".to_owned()]);
    assert_eq!(s.durability, Durability::PowerSafe);
    assert_eq!(s.broker.user.as_deref(), Some("u"));
    assert_eq!(s.broker.password.as_deref(), Some("pw"));
}

#[test]
fn every_problem_is_reported_with_key_and_line() {
    let p = problems(
        "data-folder: d\nstreams:\n  - topic: a\n    prefix: p\n    qos: 3\n  \
         - topic: b\n    prefix: q\n    mqtt-broker-port: \"1883\"\n    colour: red\n",
    );
    let found: Vec<(&str, Option<usize>, Option<usize>)> = p
        .iter()
        .map(|p| (p.key.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        found,
        vec![
            ("streams[0].qos", Some(5), Some(5)),
            ("streams[1].mqtt-broker-port", Some(8), Some(5)),
            ("streams[1].colour", Some(9), Some(5)),
        ]
    );
}

#[test]
fn missing_keys_point_at_the_mapping_that_lacks_them() {
    let p = problems("data-folder: d\nstreams:\n  - prefix: p\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "streams[0].topic");
    assert_eq!((p[0].line, p[0].column), (Some(3), Some(3)));
    let p = problems("log-level: info\n");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, vec!["data-folder", "streams"]);
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let p = problems(&minimal("    keep_alive_seconds: 5\n    wibble: 1\n"));
    assert_eq!(
        p[0].message,
        "unknown key `keep_alive_seconds`; did you mean `keep-alive-seconds`?"
    );
    assert_eq!(p[1].message, "unknown key `wibble`");
    let p = problems("data-folder: d\nstreams: [{topic: a, prefix: p}]\nfilters: []\n");
    assert_eq!(p[0].key, "filters");
    assert_eq!(p[0].line, Some(3));
}

#[test]
fn numbers_written_as_strings_or_floats_are_type_errors() {
    let p = problems(&minimal("    mqtt-broker-port: \"1883\"\n    qos: 1.0\n"));
    assert_eq!(p[0].message, "expected an integer, found a string");
    assert_eq!(
        p[1].message,
        "expected an integer, found a floating-point number"
    );
    let p = problems(&minimal("    clean-session: \"yes\"\n    suffix: 7\n"));
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn ranges_are_checked() {
    for bad in [
        "    mqtt-broker-port: 0\n",
        "    mqtt-broker-port: 65536\n",
        "    keep-alive-seconds: 0\n",
        "    file-rotation-time-seconds: 0\n",
        "    file-rotation-time-seconds: -5\n",
        "    commit-interval-ms: 0\n",
        "    max-payload-bytes: 268435456\n",
        "    qos: -1\n",
    ] {
        assert_eq!(problems(&minimal(bad)).len(), 1, "{bad}");
    }
    for bad in ["0", "-1", ".nan", ".inf", "1e300", "\"3\""] {
        let text = format!("console-feedback-period-seconds: {bad}\n{}", minimal(""));
        assert_eq!(problems(&text).len(), 1, "{bad}");
    }
}

#[test]
fn share_filters_are_valid() {
    for good in [
        "$share/g/#",
        "$share/group/a/+/c",
        "$share/g/a",
        "#",
        "+",
        "a/+/#",
        "+/+",
        "/",
        "a//b",
        "$SYS/#",
    ] {
        assert_eq!(topic_filter_problem(good), None, "{good}");
    }
    for bad in [
        "$share/g",
        "$share//a",
        "$share/g+/a",
        "$share/g#/a",
        "$share/g/",
        "$share/g/a#",
    ] {
        assert!(topic_filter_problem(bad).is_some(), "{bad}");
    }
}

#[test]
fn a_hash_inside_a_filter_is_rejected() {
    for bad in ["a/#/b", "a#", "a/b#", "#/a", "##"] {
        assert!(topic_filter_problem(bad).is_some(), "{bad}");
    }
    let p = problems(
        "data-folder: d\nstreams:\n  - prefix: p\n    topic:\n      - ok\n      - a/#/b\n",
    );
    assert_eq!(p[0].key, "streams[0].topic[1]");
    assert_eq!((p[0].line, p[0].column), (Some(6), Some(7)));
}

#[test]
fn a_plus_must_be_a_whole_level_and_filters_are_not_empty() {
    for bad in ["a+", "a/+b/c", "", "a\0b"] {
        assert!(topic_filter_problem(bad).is_some(), "{bad:?}");
    }
    assert_eq!(problems(&minimal("    exclude: [\"a+\"]\n")).len(), 1);
    assert_eq!(
        problems("data-folder: d\nstreams:\n  - prefix: p\n    topic: []\n").len(),
        1
    );
}

#[test]
fn binary_input_is_an_error_not_a_panic() {
    let dir = scratch("binary");
    let file = dir.join("config.yaml");
    std::fs::write(&file, b"data-folder: d\nstreams: \xff\xfe\x00\x01").unwrap();
    let e = load(&file).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(e.problems[0].message.contains("not UTF-8 text"));
    assert_eq!(
        (e.problems[0].line, e.problems[0].column),
        (Some(2), Some(10))
    );
    for text in [
        "\0\0\0",
        "\u{1}\u{2}: \u{7f}",
        "a: \"\\xff",
        "- [",
        "{{{{",
        "&a [*a]",
    ] {
        assert!(!problems(text).is_empty(), "{text:?}");
    }
}

#[test]
fn empty_and_comment_only_files_are_clear_problems() {
    for text in ["", "\n\n", "# only a comment\n   # another\n", "---\n"] {
        let p = problems(text);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].message.contains("the file is empty"),
            "{text:?}: {p:?}"
        );
    }
}

#[test]
fn a_top_level_that_is_not_a_mapping_is_a_problem() {
    for (text, kind) in [
        ("- a\n- b\n", "a list"),
        ("hello\n", "a string"),
        ("42\n", "an integer"),
    ] {
        let p = problems(text);
        assert!(p[0].message.ends_with(&format!("found {kind}")), "{p:?}");
    }
    let p = problems("data-folder: d\nstreams:\n  - just-a-string\n");
    assert_eq!(p[0].key, "streams[0]");
    assert_eq!(p[0].line, Some(3));
}

#[test]
fn yaml_syntax_errors_carry_line_and_column() {
    let e = parse_with_host(
        "data-folder: d\nstreams:\n  - a: 1\n   b: 2\n",
        Path::new("c.yaml"),
        "n",
    )
    .unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].line, Some(4));
    assert!(e.problems[0].column.is_some());
    // The position is in the line/column fields, not repeated in the text.
    let message = &e.problems[0].message;
    assert!(!message.contains(" at line 4 "), "{message}");
    let e = parse_with_host("a: 1\na: 2\n", Path::new("c.yaml"), "n").unwrap_err();
    assert!(e.problems[0].message.contains("duplicate"), "{e}");
}

#[test]
fn two_streams_in_one_folder_are_rejected() {
    let p = problems(
        "data-folder: d\nstreams:\n  - topic: a\n    prefix: x\n    suffix: y\n  \
         - topic: b\n    prefix: xy\n",
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "streams[1].prefix");
    assert_eq!(p[0].line, Some(7));
    assert!(p[0].message.contains("already used by streams[0]"));
}

#[test]
fn two_connections_with_one_client_id_to_one_broker_are_rejected() {
    let p = problems(
        "data-folder: d\nstreams:\n  - topic: a\n    prefix: x\n    client-id: me\n  \
         - topic: b\n    prefix: y\n    client-id: me\n",
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "streams[1].client-id");
    assert_eq!(p[0].line, Some(8));
}

#[test]
fn unsafe_folder_names_are_rejected() {
    for bad in [
        "prefix: \"\"",
        "prefix: \".\"",
        "prefix: \"..\"",
        "prefix: a/b",
        "prefix: \"a\\0b\"",
    ] {
        let text = format!("data-folder: d\nstreams:\n  - topic: a\n    {bad}\n");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{bad}");
        assert_eq!(p[0].key, "streams[0].prefix");
    }
    let p = problems("data-folder: d\nstreams:\n  - topic: a\n");
    assert_eq!(p[0].key, "streams[0].prefix");
    assert_eq!(p[0].line, Some(3));
}

#[test]
fn password_file_is_read_and_trimmed() {
    let dir = scratch("password");
    std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
    let text = minimal("    user: u\n    password-file: secret\n");
    let c = parse_with_host(&text, &dir.join("config.yaml"), "n").unwrap();
    assert_eq!(c.streams[0].broker.password.as_deref(), Some("s3cret"));

    let file = dir.join("config.yaml");
    std::fs::write(&file, &text).unwrap();
    assert_eq!(
        load(&file).unwrap().streams[0].broker.password.as_deref(),
        Some("s3cret")
    );
}

#[test]
fn an_unreadable_password_file_names_the_key() {
    let dir = scratch("nopassword");
    let text = minimal("    user: u\n    password-file: missing\n");
    let e = parse_with_host(&text, &dir.join("config.yaml"), "n").unwrap_err();
    assert_eq!(e.problems[0].key, "streams[0].password-file");
    assert!(e.problems[0].message.contains("cannot read"));
    assert_eq!(e.problems[0].line, Some(6));
}

#[test]
fn password_and_password_file_together_are_rejected() {
    let p = problems(&minimal(
        "    user: u\n    password: a\n    password-file: b\n",
    ));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "streams[0].password-file");
}

#[test]
fn a_password_without_a_user_is_rejected() {
    let p = problems(&minimal("    password: a\n"));
    assert_eq!(p[0].key, "streams[0].password");
}

#[test]
fn passwords_never_appear_in_describe_or_debug() {
    let text = format!(
        "{}log-performance: true\nlog-performance-stream:\n  topic: t\n  user: u\n  password: hunter2\n",
        minimal("    user: u\n    password: hunter2\n")
    );
    let c = parse_ok(&text);
    let described = c.describe();
    assert!(!described.contains("hunter2"));
    assert!(described.contains("password:       (set)"));
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:#?}").contains("hunter2"));
    assert!(
        parse_ok(&minimal(""))
            .describe()
            .contains("password:       (none)")
    );
}

#[test]
fn describe_shows_the_resolved_streams() {
    let d = parse_ok(ORIGINAL).describe();
    for part in [
        "data folder:      /var/attic/data",
        "folder:         /var/attic/data/everything",
        "broker:         127.0.0.1:1883",
        "client id:      attic-node-everything",
        "topics:         #",
        "rotation:       300s",
        "commit within:  1s",
        "topic:          attic/performance",
    ] {
        assert!(d.contains(part), "missing {part:?} in\n{d}");
    }
}

#[test]
fn clean_session_false_with_qos_0_is_allowed_with_a_note() {
    let c = parse_ok(&minimal("    clean-session: false\n"));
    assert!(c.describe().contains("note: clean-session is false"));
}

#[test]
fn log_performance_stream_is_required_only_when_enabled() {
    let p = problems(&format!("{}log-performance: true\n", minimal("")));
    assert_eq!(p[0].key, "log-performance-stream");
    let p = problems(&format!(
        "{}log-performance: true\nlog-performance-stream:\n  qos: 1\n",
        minimal("")
    ));
    assert_eq!(p[0].key, "log-performance-stream.topic");
    let c = parse_ok(&format!(
        "{}log-performance: false\nlog-performance-stream:\n  qos: 1\n  password-file: nowhere\n  user: u\n",
        minimal("")
    ));
    assert_eq!(c.performance, None);
    let p = problems(&format!(
        "{}log-performance-stream:\n  clean-session: true\n",
        minimal("")
    ));
    assert_eq!(p[0].key, "log-performance-stream.clean-session");
    let p = problems(&format!(
        "{}log-performance: true\nlog-performance-stream:\n  topic: a/#\n",
        minimal("")
    ));
    assert_eq!(p[0].key, "log-performance-stream.topic");
}

#[test]
fn empty_values_mean_the_default() {
    let c = parse_ok(&minimal("    user:\n    password:\n    qos:\n"));
    assert_eq!(c.streams[0].broker.user, None);
    assert_eq!(c.streams[0].qos, 0);
}

#[test]
fn anchors_and_merge_keys_are_resolved() {
    let c = parse_ok(
        "data-folder: d\nstreams:\n  - &base\n    topic: a\n    prefix: one\n    qos: 1\n  \
         - <<: *base\n    prefix: two\n",
    );
    assert_eq!(c.streams[1].qos, 1);
    assert_eq!(c.streams[1].folder_name, "two");
}

#[test]
fn error_display_is_file_line_column_key_message() {
    let e = ConfigError {
        file: PathBuf::from("c.yaml"),
        problems: vec![
            Problem {
                key: "streams[1].qos".into(),
                line: Some(7),
                column: Some(5),
                message: "bad".into(),
            },
            Problem {
                key: String::new(),
                line: None,
                column: None,
                message: "worse".into(),
            },
            Problem {
                key: "data-folder".into(),
                line: None,
                column: None,
                message: "is required".into(),
            },
        ],
    };
    assert_eq!(
        e.to_string(),
        "c.yaml:7:5: streams[1].qos: bad\nc.yaml: worse\nc.yaml: data-folder: is required"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_the_file() {
    let file = scratch("missing").join("nope.yaml");
    let e = load(&file).unwrap_err();
    assert_eq!(e.file, file);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the file", file.display()))
    );
}

#[test]
fn the_host_name_is_never_empty() {
    assert!(!host_name().is_empty());
    let c = parse(&minimal(""), Path::new("c.yaml")).unwrap();
    assert_eq!(
        c.streams[0].broker.client_id,
        format!(
            "attic-{}-p-{}",
            host_name(),
            crate::mqtt::identity::instance_tag(Path::new("d"))
        )
    );
}

#[test]
fn tags_and_non_string_keys_are_problems() {
    let p = problems(&minimal("    qos: !int 1\n"));
    assert!(p[0].message.contains("tags are not supported"), "{p:?}");
    let p = problems(&minimal("    1: a\n"));
    assert!(p[0].message.contains("keys must be strings"), "{p:?}");
}

#[test]
fn filters_are_read_in_order_with_their_options() {
    let c = parse_ok(&minimal(
        "    filters:\n      - exclude: [\"$SYS/#\", \"debug/#\"]\n      - changes-only: { topics: [\"sensors/#\"], heartbeat-seconds: 600 }\n      - min-interval: { topics: [\"chatty/#\"], seconds: 10 }\n      - max-payload-bytes: 65536\n      - include:\n          topics: a/#\n",
    ));
    let names: Vec<_> = c.streams[0]
        .filters
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "exclude",
            "changes-only",
            "min-interval",
            "max-payload-bytes",
            "include"
        ]
    );
    assert_eq!(c.streams[0].filters[3].options, filter::Value::Int(65536));
    assert!(
        c.describe()
            .contains("      - min-interval: { topics: [\"chatty/#\"], seconds: 10 }")
    );
    assert!(parse_ok(&minimal("")).streams[0].filters.is_empty());
}

#[test]
fn filter_problems_are_all_reported_with_key_path_and_line() {
    let p = problems(&minimal(
        "    filters:\n      - changes-only: { heartbeat-secs: 600 }\n      - min-interval: { seconds: 0 }\n      - include:\n          topics: [\"a/#/b\"]\n          max-topics: 3\n      - exclude: 5\n      - min-interval: {}\n      - nope: 1\n      - changes-only\n      - { exclude: a, include: b }\n",
    ));
    let got: Vec<(String, Option<usize>)> = p.iter().map(|p| (p.key.clone(), p.line)).collect();
    let f = |i: usize, rest: &str| format!("streams[0].filters[{i}]{rest}");
    assert_eq!(
        got,
        vec![
            (f(0, ".changes-only.heartbeat-secs"), Some(6)),
            (f(1, ".min-interval.seconds"), Some(7)),
            (f(2, ".include.topics[0]"), Some(9)),
            (f(2, ".include.max-topics"), Some(10)),
            (f(3, ".exclude"), Some(11)),
            (f(4, ".min-interval"), Some(12)),
            (f(5, ".nope"), Some(13)),
            (f(6, ""), Some(14)),
            (f(7, ""), Some(15)),
        ],
        "{p:#?}"
    );
    assert!(p[0].message.contains("did you mean `heartbeat-seconds`"));
    assert!(p[1].message.contains("between 1 and"));
    assert!(p[4].message.contains("expected a topic filter or a list"));
    assert_eq!(p[5].message, "`seconds` is required");
    assert!(p[6].message.starts_with("unknown filter `nope`"));
    assert!(p[7].message.contains("`- changes-only: <options>`"));
}

#[test]
fn filters_must_be_a_list_and_zero_intervals_are_refused() {
    let p = problems(&minimal("    filters: { exclude: a }\n"));
    assert_eq!(p[0].key, "streams[0].filters");
    assert!(p[0].message.starts_with("expected a list of filters"));
    let p = problems(&minimal(
        "    filters:\n      - min-interval: 0\n      - changes-only: { heartbeat-seconds: 0 }\n",
    ));
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn configs_that_differ_only_in_the_data_folder_get_different_default_client_ids() {
    let a = parse_ok("data-folder: /srv/a\nstreams:\n  - topic: a\n    prefix: p\n");
    let b = parse_ok("data-folder: /srv/b\nstreams:\n  - topic: a\n    prefix: p\n");
    assert_ne!(a.streams[0].broker.client_id, b.streams[0].broker.client_id);
    let again = parse_ok("data-folder: /srv/a\nstreams:\n  - topic: a\n    prefix: p\n");
    assert_eq!(
        a.streams[0].broker.client_id,
        again.streams[0].broker.client_id
    );
}

#[test]
fn a_tiny_report_period_and_a_tiny_commit_interval_are_refused() {
    let e = parse_err_text(
        "data-folder: d\nconsole-feedback-period-seconds: 0.001\nstreams:\n  - topic: a\n    prefix: p\n",
    );
    assert!(
        e.contains("console-feedback-period-seconds: must be a number of seconds from 0.1"),
        "{e}"
    );
    let e = parse_err_text(&minimal("    commit-interval-ms: 1\n"));
    assert!(
        e.contains("commit-interval-ms: must be between 10 and"),
        "{e}"
    );
}

fn parse_err_text(text: &str) -> String {
    problems(text)
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_unquoted_hash_topic_says_it_became_a_comment() {
    let p = problems("data-folder: d\nstreams:\n  - topic: #\n    prefix: p\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message.contains("starts a YAML comment"),
        "{}",
        p[0].message
    );
    assert!(
        p[0].message.contains(r##"`topic: "#"`"##),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].line, Some(3));
}

#[test]
fn a_tab_in_the_indentation_is_named() {
    let p = problems("data-folder: d\nstreams:\n\t- topic: a\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("a tab character"), "{}", p[0].message);
}
