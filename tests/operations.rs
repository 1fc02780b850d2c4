//! Operations against a real mosquitto: the JSON performance report, the
//! metrics file, the systemd notifications, the units in `deploy/`, and the
//! log format under journald; passwords never reach logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::count_rows;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A config with one stream `ops` on `t/#` (excluding `t/skip/#`), a 0.5 s
/// report period, and `extra` appended at the top level.
fn config(data: &Path, port: u16, extra: &str) -> String {
    format!(
        "console-feedback-period-seconds: 0.5\n\
         data-folder: \"{}\"\n\
         streams:\n\
         \x20 - mqtt-broker-address: \"127.0.0.1\"\n\
         \x20   mqtt-broker-port: {port}\n\
         \x20   topic: \"t/#\"\n\
         \x20   exclude: [\"t/skip/#\"]\n\
         \x20   prefix: \"ops\"\n\
         \x20   file-rotation-time-seconds: 300\n\
         \x20   commit-interval-ms: 50\n\
         {extra}",
        data.display()
    )
}

fn performance(port: u16, topic: &str) -> String {
    format!(
        "log-performance: true\n\
         log-performance-stream:\n\
         \x20 topic: \"{topic}\"\n\
         \x20 mqtt-broker-address: \"127.0.0.1\"\n\
         \x20 mqtt-broker-port: {port}\n\
         \x20 qos: 1\n"
    )
}

fn wait_subscribed(a: &mut Attic) {
    a.wait_ready(T);
}

/// Every leaf of a JSON document as `path -> JSON text`, decoded by
/// Python's `json` module (so the text is also proven to be valid JSON).
fn flatten_json(text: &str) -> BTreeMap<String, String> {
    const WALK: &str = r#"
import json, sys
def walk(p, v):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(p + ("." if p else "") + k, x)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            walk("%s[%d]" % (p, i), x)
    else:
        print("%s\t%s" % (p, json.dumps(v)))
walk("", json.load(sys.stdin))
"#;
    let mut child = Command::new("python3")
        .args(["-c", WALK])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to check the JSON report");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid JSON: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn num(m: &BTreeMap<String, String>, key: &str) -> f64 {
    m.get(key)
        .unwrap_or_else(|| panic!("{key} missing in {m:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} is not a number in {m:?}: {e}"))
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn the_json_report_carries_the_original_keys_with_the_right_values() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-json");
    let data = dir.join("data");
    let mut watcher = TestClient::connect(broker.port(), "perf-watcher");
    watcher.subscribe("attic/perf", 0);
    let yaml = config(
        &data,
        broker.port(),
        &performance(broker.port(), "attic/perf"),
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic);
    attic.wait_log_contains("published at QoS 0", T);

    let before = now_unix();
    let mut pubr = TestClient::connect(broker.port(), "ops-publisher");
    for i in 0..7 {
        pubr.publish(&format!("t/{i}"), b"0123456789", 1, false);
    }
    pubr.publish("t/skip/x", b"excluded", 1, false);
    let after = now_unix();
    wait_for_rows(&data, 7, T);

    // Reports come every 0.5 s; wait for one that counts all 8 messages.
    let m = wait_for(T, "a report counting 8 messages", || {
        let p = watcher.recv_timeout(Duration::from_millis(200))?;
        let m = flatten_json(std::str::from_utf8(&p.payload).unwrap());
        let all = num(&m, "performance_details[0].stored_total") == 7.0
            && num(&m, "totalMessageCount") == 8.0;
        all.then_some(m)
    });
    let hours = num(&m, "elapsed_time_hours");
    assert!(hours > 0.0 && hours < 0.1, "{m:?}");
    assert_eq!(num(&m, "totalMessageCount"), 8.0);
    let total_rate = num(&m, "messages_per_second_total");
    assert!((total_rate - 8.0 / (hours * 3600.0)).abs() < 1e-6 * total_rate.max(1.0));
    assert!(num(&m, "messages_per_second_recent") >= 0.0);
    assert_eq!(m["performance_details[0].stream_prefix"], "\"ops\"");
    assert_eq!(num(&m, "performance_details[0].stream_idx"), 0.0);
    let u = num(&m, "performance_details[0].utilisation_ratio");
    assert!((0.0..=1.0).contains(&u), "{m:?}");
    assert_eq!(num(&m, "performance_details[0].messages_this_channel"), 8.0);
    let last = num(&m, "performance_details[0].last_rx_timestamp_unix");
    assert!(
        last >= before - 1.0 && last <= after + 1.0,
        "{last} not in {before}..{after}"
    );
    let iso = &m["performance_details[0].last_rx_timestamp_iso"];
    assert!(iso.starts_with('"') && iso.ends_with("Z\""), "{iso}");
    assert_eq!(m["performance_details[0].is_connected"], "true");
    // The new figures beside them.
    assert_eq!(num(&m, "performance_details[0].excluded_total"), 1.0);
    assert_eq!(num(&m, "performance_details[0].stored_bytes_total"), 70.0);
    assert_eq!(num(&m, "stored_message_count"), 7.0);
    assert!(num(&m, "resident_memory_bytes") > 0.0);
    assert!(m.contains_key("cpu_percent") && m.contains_key("performance_details[0].current_file"));
    attic.stop_clean();
    // The report connection subscribes to nothing: it has no session to
    // resume and stores nothing, so its log must not say so.
    let log = attic.log();
    assert!(log.contains("[performance] connected to broker"), "{log}");
    assert!(!log.contains("[performance] session resumed"), "{log}");
}

#[test]
fn the_report_broker_being_down_does_not_disturb_the_streams() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-json-down");
    let data = dir.join("data");
    // Nothing listens on this port: the publisher keeps retrying.
    let dead = broker::free_port();
    let yaml = config(&data, broker.port(), &performance(dead, "attic/perf"));
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic);
    let mut pubr = TestClient::connect(broker.port(), "ops-publisher");
    for i in 0..5 {
        pubr.publish(&format!("t/{i}"), b"x", 1, false);
    }
    wait_for_rows(&data, 5, T);
    attic.wait_log_contains("[performance] cannot connect", T);
    attic.stop_clean();
}

/// One sample of a Prometheus text file.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

/// Parses the text exposition format: `# HELP name text`, `# TYPE name
/// counter|gauge`, `name{labels} value`; panics on anything else, on a
/// sample without TYPE, on a counter not ending in `_total`.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty());
            helps.insert(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} must end in _total"
                );
            }
            assert!(helps.contains(name), "TYPE before HELP for {name}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name {name}"
            );
            assert!(types.contains_key(name), "sample {name} without TYPE");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("{line}: value not numeric: {e}"));
            samples.push(Sample {
                name: name.to_owned(),
                labels: labels.to_owned(),
                value,
            });
        }
    }
    samples
}

fn metric(samples: &[Sample], name: &str, labels: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

#[test]
fn the_metrics_file_is_prometheus_text_and_counts_what_was_stored() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-metrics");
    let data = dir.join("data");
    let prom = dir.join("attic.prom");
    let yaml = config(
        &data,
        broker.port(),
        &format!("metrics-file: \"{}\"\n", prom.display()),
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic);
    let mut pubr = TestClient::connect(broker.port(), "ops-publisher");
    for i in 0..6 {
        pubr.publish(&format!("t/{i}"), b"abcd", 1, false);
    }
    pubr.publish("t/skip/1", b"no", 1, false);
    pubr.publish("t/skip/2", b"no", 1, false);
    wait_for_rows(&data, 6, T);

    let label = "stream=\"ops\"";
    let samples = wait_for(T, "metrics counting 6 stored messages", || {
        let text = std::fs::read_to_string(&prom).ok()?;
        let s = parse_prometheus(&text);
        (metric(&s, "attic_messages_stored_total", label) == Some(6.0)).then_some(s)
    });
    assert_eq!(
        metric(&samples, "attic_messages_received_total", label),
        Some(8.0)
    );
    assert_eq!(
        metric(&samples, "attic_messages_excluded_total", label),
        Some(2.0)
    );
    assert_eq!(
        metric(&samples, "attic_stored_bytes_total", label),
        Some(24.0)
    );
    assert_eq!(metric(&samples, "attic_connected", label), Some(1.0));
    assert!(metric(&samples, "attic_resident_memory_bytes", "").unwrap() > 0.0);
    assert!(metric(&samples, "attic_cpu_seconds_total", "").is_some());
    // The stored count matches the rows in the file.
    let part = common::part_files(&data.join("ops"));
    let rows: usize = part.iter().map(|p| count_rows(p).unwrap()).sum();
    assert_eq!(rows, 6);
    assert!(!dir.join("attic.prom.tmp").exists());
    attic.stop_clean();
    // Rewritten at the stop: not connected any more, the same totals.
    let after = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(metric(&after, "attic_connected", label), Some(0.0));
    assert_eq!(
        metric(&after, "attic_messages_stored_total", label),
        Some(6.0)
    );
}

/// Collects notify messages into `seen` until `done(seen)` holds; panics
/// (showing what arrived) at the deadline.
fn collect_until(
    sock: &UnixDatagram,
    seen: &mut Vec<String>,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {what}; got {seen:?}"
        );
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

fn count(seen: &[String], prefix: &str) -> usize {
    seen.iter().filter(|m| m.starts_with(prefix)).count()
}

#[test]
fn systemd_receives_ready_status_watchdog_and_stopping() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-notify");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let yaml = config(&dir.join("data"), broker.port(), "");
    let mut attic = Attic::start_with_env(
        &yaml,
        &dir,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    collect_until(
        &sock,
        &mut seen,
        "READY=1, STATUS= and 3 x WATCHDOG=1",
        |s| count(s, "READY=1") == 1 && count(s, "STATUS=") >= 1 && count(s, "WATCHDOG=1") >= 3,
    );
    assert_eq!(seen[0], "READY=1", "READY=1 comes first: {seen:?}");
    let status = seen.iter().find(|m| m.starts_with("STATUS=")).unwrap();
    assert!(status.contains("streams connected"), "{status}");
    assert!(!status.contains('\n'));
    attic.signal(libc::SIGTERM);
    collect_until(&sock, &mut seen, "STOPPING=1", |s| {
        count(s, "STOPPING=1") == 1
    });
    assert_eq!(attic.wait_exit(T).and_then(|s| s.code()), Some(0));
}

#[test]
fn no_watchdog_for_another_pid_and_without_a_socket_all_works() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-notify-pid");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let yaml = config(&dir.join("data"), broker.port(), "");
    let mut attic = Attic::start_with_env(
        &yaml,
        &dir,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let mut seen = Vec::new();
    // Three reports (1.5 s) span many 100 ms watchdog intervals.
    collect_until(&sock, &mut seen, "READY=1 and 3 x STATUS=", |s| {
        count(s, "READY=1") == 1 && count(s, "STATUS=") >= 3
    });
    assert_eq!(count(&seen, "WATCHDOG=1"), 0, "{seen:?}");
    attic.stop_clean();

    // No NOTIFY_SOCKET at all: runs, reports and stops as usual.
    let mut plain = Attic::start(&yaml, &dir);
    wait_subscribed(&mut plain);
    plain.wait_log_contains("process: cpu", T);
    plain.stop_clean();
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(out.status.success());
    let dir = TempDir::new("ops-units");
    let exe = dir.join("attic");
    std::fs::copy(common::attic::ATTIC_EXE, &exe).unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut units = Vec::new();
    for unit in ["attic.service", "attic@.service"] {
        let text = std::fs::read_to_string(deploy.join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/attic run --config /etc/attic/"));
        let path = dir.join(unit);
        std::fs::write(&path, text.replace("/usr/bin/attic", exe.to_str().unwrap())).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_ours: Vec<&str> = stderr.lines().filter(|l| l.contains("attic")).collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    // The unit's config is valid and points at the StateDirectory.
    let config = deploy.join("config.yaml");
    let check = run_attic(&["check", "--config", config.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("/var/lib/attic"));
}

/// A config whose stream and report broker need a password.
fn config_with_password(data: &Path, port: u16, secret: &str) -> String {
    format!(
        "console-feedback-period-seconds: 0.5\n\
         data-folder: \"{}\"\n\
         streams:\n\
         \x20 - mqtt-broker-address: \"127.0.0.1\"\n\
         \x20   mqtt-broker-port: {port}\n\
         \x20   user: \"someone\"\n\
         \x20   password: \"{secret}\"\n\
         \x20   topic: \"t/#\"\n\
         \x20   prefix: \"ops\"\n\
         log-performance: true\n\
         log-performance-stream:\n\
         \x20 topic: \"attic/perf\"\n\
         \x20 mqtt-broker-address: \"127.0.0.1\"\n\
         \x20 mqtt-broker-port: {port}\n\
         \x20 user: \"someone\"\n\
         \x20 password: \"{secret}\"\n",
        data.display()
    )
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp_and_no_password() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-journal");
    let secret = "Sup3r-s3cret-pw";
    let yaml = config_with_password(&dir.join("data"), broker.port(), secret);
    let mut attic = Attic::start_with_env(&yaml, &dir, &[("JOURNAL_STREAM", "8:12345")]);
    wait_subscribed(&mut attic);
    attic.wait_log_contains("[performance] connected", T);
    attic.wait_log_contains("process: cpu", T);
    attic.stop_clean();
    let log = attic.log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        let rest = line
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .filter(|(n, _)| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
            .unwrap_or_else(|| panic!("no <N> prefix: {line:?}"))
            .1;
        assert!(
            !rest.starts_with(|c: char| c.is_ascii_digit()),
            "timestamp under journald: {line:?}"
        );
    }
    assert!(log.contains("<6>attic "), "{log}");
    assert!(!log.contains(secret), "password in the log:\n{log}");

    let config = attic.config_path().to_str().unwrap().to_owned();
    let check = run_attic(&["check", "--config", &config]);
    assert!(check.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(printed.contains("someone"), "{printed}");
    assert!(
        !printed.contains(secret),
        "password in `attic check`:\n{printed}"
    );
}

#[test]
fn on_a_plain_pipe_lines_are_timestamped_and_carry_no_password() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ops-plain");
    let secret = "An0ther-s3cret-pw";
    let yaml = config_with_password(&dir.join("data"), broker.port(), secret);
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic);
    attic.wait_log_contains("process: cpu", T);
    attic.stop_clean();
    let log = attic.log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        // RFC 3339: 2026-11-27T13:05:09...
        let b = line.as_bytes();
        assert!(
            b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T',
            "no timestamp: {line:?}"
        );
        assert!(!line.starts_with('<'));
    }
    assert!(!log.contains(secret), "password in the log:\n{log}");
}
