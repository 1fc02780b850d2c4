//! The filter chain against a real mosquitto: each built-in reduces its
//! topics exactly as configured, dropped QoS 1 messages are still
//! acknowledged, and the files hold exactly the expected rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn config(data: &Path, port: u16) -> String {
    format!(
        r##"console-feedback-period-seconds: 60
data-folder: "{}"
streams:
  - mqtt-broker-port: {port}
    topic: "#"
    prefix: "filtered"
    qos: 1
    commit-interval-ms: 100
    exclude: ["noise/#"]
    filters:
      - include: ["sensors/#", "chatty/#", "big/#", "noise/#"]
      - changes-only: {{ topics: ["sensors/#"] }}
      - min-interval: {{ topics: ["chatty/#"], seconds: 3600 }}
      - max-payload-bytes: 100
"##,
        data.display()
    )
}

#[test]
fn each_filter_reduces_its_topics_and_the_files_hold_exactly_the_rest() {
    // A small in-flight window: if dropped QoS 1 messages were not
    // acknowledged, mosquitto would stop delivering after 5 of them.
    let broker = Mosquitto::builder().max_inflight_messages(5).start();
    let dir = TempDir::new("filters");
    let data = dir.join("data");
    let mut attic = Attic::start(&config(&data, broker.port()), &dir);
    attic.wait_ready(T);

    let mut c = TestClient::connect(broker.port(), "pub");
    let mut sent: Vec<(String, Vec<u8>)> = Vec::new();
    let mut send = |c: &mut TestClient, t: &str, p: &[u8]| {
        c.publish(t, p, 1, false);
        sent.push((t.to_owned(), p.to_vec()));
    };
    // changes-only: 50 identical payloads and a change -> 2 rows.
    for _ in 0..50 {
        send(&mut c, "sensors/a", b"20.0");
    }
    send(&mut c, "sensors/a", b"20.5");
    // A payload that comes back after a change is a change -> 3 rows.
    for p in ["1", "1", "2", "2", "1"] {
        send(&mut c, "sensors/b", p.as_bytes());
    }
    // min-interval (one hour): a burst keeps its first message per topic.
    for i in 0..100 {
        send(&mut c, "chatty/x", format!("x{i}").as_bytes());
        send(&mut c, "chatty/y", format!("y{i}").as_bytes());
    }
    // stream-level exclude, include, max-payload-bytes.
    send(&mut c, "noise/z", b"excluded");
    send(&mut c, "other/x", b"not included");
    send(&mut c, "big/x", &[7u8; 101]);
    send(&mut c, "big/y", &[7u8; 100]);
    // Last: when this is stored, everything before it has been filtered.
    send(&mut c, "sensors/end", b"done");
    c.disconnect();

    let want: BTreeMap<(String, Vec<u8>), usize> = [
        ("sensors/a", b"20.0".to_vec()),
        ("sensors/a", b"20.5".to_vec()),
        ("sensors/b", b"1".to_vec()),
        ("sensors/b", b"2".to_vec()),
        ("chatty/x", b"x0".to_vec()),
        ("chatty/y", b"y0".to_vec()),
        ("big/y", vec![7u8; 100]),
        ("sensors/end", b"done".to_vec()),
    ]
    .into_iter()
    .map(|(t, p)| ((t.to_owned(), p), 1))
    .chain([(("sensors/b".to_owned(), b"1".to_vec()), 2)])
    .collect();
    let want_rows: usize = want.values().sum();
    assert_eq!(want_rows, 9);
    assert!(sent.len() > 250);

    wait_for_rows(&data, want_rows, T);
    attic.stop_clean();

    let rows = all_rows(&data);
    let mut got: BTreeMap<(String, Vec<u8>), usize> = BTreeMap::new();
    for r in &rows {
        *got.entry((r.topic.clone(), r.payload.clone())).or_insert(0) += 1;
    }
    assert_eq!(got, want);
    // Order per topic is arrival order.
    let b: Vec<_> = rows
        .iter()
        .filter(|r| r.topic == "sensors/b")
        .map(|r| r.payload.clone())
        .collect();
    assert_eq!(b, vec![b"1".to_vec(), b"2".to_vec(), b"1".to_vec()]);
}

#[test]
fn a_bad_filter_config_is_refused_with_key_paths_and_lines() {
    let dir = TempDir::new("filters-check");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "data-folder: d\nstreams:\n  - topic: \"#\"\n    prefix: p\n    filters:\n      - exclude: [\"a/#/b\"]\n      - changes-only: { heartbeat-secs: 600 }\n      - min-interval: 0\n      - no-such-filter: 1\n",
    )
    .unwrap();
    let out = run_attic(&["check", "--config", path.to_str().unwrap()]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{err}");
    for expected in [
        ":6:9: streams[0].filters[0].exclude[0]: invalid topic filter",
        ":7:9: streams[0].filters[1].changes-only.heartbeat-secs: unknown key `heartbeat-secs`; did you mean `heartbeat-seconds`?",
        ":8:9: streams[0].filters[2].min-interval: `seconds` must be between 1 and",
        ":9:9: streams[0].filters[3].no-such-filter: unknown filter `no-such-filter`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
