//! `attic run` in a script or benchmark harness, against a real mosquitto
//! (and the fake broker where a SUBACK must be held back): the ready file,
//! `--stop-after`, `--stop-after-messages` and the summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::broker::free_port;
use common::files::{count_rows, open_ro};
use common::*;
use mqttbytes::QoS;
use mqttbytes::v4::SubscribeReasonCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// One stream of a test config: `(prefix, port, topics, extra YAML lines)`.
type StreamSpec<'a> = (&'a str, u16, &'a [&'a str], &'a str);

fn config(data: &Path, streams: &[StreamSpec]) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n",
        data.display()
    );
    for (prefix, port, topics, extra) in streams {
        let topics: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
        y.push_str(&format!(
            "  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    \
             topic: [{}]\n    prefix: \"{prefix}\"\n    commit-interval-ms: 100\n    \
             keep-alive-seconds: 5\n",
            topics.join(", ")
        ));
        if !extra.contains("file-rotation-time-seconds") {
            y.push_str("    file-rotation-time-seconds: 3600\n");
        }
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            y.push_str(&format!("    {}\n", line.trim()));
        }
    }
    y
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text:?}", path.display()))
}

/// Waits for a clean exit (code 0) within `timeout`.
fn wait_clean_exit(attic: &mut Attic, timeout: Duration) {
    let status = attic.wait_exit(timeout).unwrap_or_else(|| {
        panic!(
            "attic did not stop by itself within {timeout:?}:\n{}",
            tail(&attic.log(), 30)
        )
    });
    assert_eq!(status.code(), Some(0), "{}", tail(&attic.log(), 30));
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a whole number: {v}"))
}

/// `(rows, min ts, max ts)` of one finished file.
fn file_figures(path: &Path) -> (u64, i64, i64) {
    let c = open_ro(path).unwrap();
    c.query_row(
        "SELECT count(*), min(reception_timestamp), max(reception_timestamp) FROM data",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Every `.sqlite` and `.sqlite.part` under `dir`.
/// The files of a stream's day folders (not its `attic.lock`).
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    list_files(dir)
        .into_iter()
        .filter(|p| p.parent() != Some(dir))
        .collect()
}

#[test]
fn a_message_published_the_moment_the_ready_file_appears_is_stored() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ready-mosquitto");
    let data = dir.join("data");
    let port = broker.port();
    let yaml = config(
        &data,
        &[
            ("plain", port, &["plain/#"], ""),
            ("sure", port, &["sure/#", "also/+"], "qos: 1"),
        ],
    );
    let mut attic = Attic::start(&yaml, &dir);
    let ready = attic.wait_ready(T);
    // At once, with no settling time: QoS 0, so nothing would redeliver a
    // message the broker sent before the subscription existed.
    let mut client = TestClient::connect(port, "ready-probe");
    client.publish("plain/first", b"one", 0, false);
    client.publish("sure/first", b"two", 0, false);
    client.publish("also/x", b"three", 0, false);
    client.disconnect();

    assert_eq!(u(&ready["pid"]), u64::from(attic.pid()));
    assert_eq!(ready["attic_version"], json!(env!("CARGO_PKG_VERSION")));
    let abs = |folder: &str| {
        std::path::absolute(data.join(folder))
            .unwrap()
            .display()
            .to_string()
    };
    assert_eq!(
        ready["streams"],
        json!([
            {"folder": "plain", "path": abs("plain"), "session_present": false,
             "subscriptions": [{"filter": "plain/#", "requested_qos": 0, "granted_qos": 0}]},
            {"folder": "sure", "path": abs("sure"), "session_present": false,
             "subscriptions": [
                {"filter": "sure/#", "requested_qos": 1, "granted_qos": 1},
                {"filter": "also/+", "requested_qos": 1, "granted_qos": 1}]},
        ])
    );

    wait_for_rows(&data, 3, T);
    attic.stop_clean();
    assert!(
        !attic.ready_path().exists(),
        "the ready file is still there after exit"
    );
    let mut stored: Vec<(String, Vec<u8>)> = all_rows(&data)
        .into_iter()
        .map(|r| (r.topic, r.payload))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("also/x".into(), b"three".to_vec()),
            ("plain/first".into(), b"one".to_vec()),
            ("sure/first".into(), b"two".to_vec()),
        ]
    );
}

#[test]
fn the_ready_file_appears_only_after_every_subscription_is_acknowledged() {
    let subscribe_seen = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let broker = {
        let (seen, release) = (Arc::clone(&subscribe_seen), Arc::clone(&release));
        FakeBroker::start(move |c| {
            c.handshake();
            let s = c.expect_subscribe();
            seen.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + T;
            while !release.load(Ordering::SeqCst) && Instant::now() < deadline && !c.is_closed() {
                c.silence(Duration::from_millis(10));
            }
            // The first filter granted at QoS 1, the second refused.
            c.send_suback(
                s.pkid,
                vec![
                    SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    SubscribeReasonCode::Failure,
                ],
            );
            c.serve_until_closed(|_, _| {});
        })
    };
    let up = Mosquitto::start();
    let dir = TempDir::new("ready-held");
    let data = dir.join("data");
    let yaml = config(
        &data,
        &[
            ("quick", up.port(), &["q/#"], ""),
            ("held", broker.port(), &["a/#", "b/#"], "qos: 2"),
        ],
    );
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("[quick] subscribed", T);
    wait_until(T, "SUBSCRIBE at the fake broker", || {
        subscribe_seen.load(Ordering::SeqCst)
    });
    // One stream is subscribed, the other has sent SUBSCRIBE and waits for
    // its SUBACK: for as long as it waits, there is no ready file.
    let watch_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < watch_until {
        assert!(
            !attic.ready_path().exists(),
            "the ready file appeared before the SUBACK"
        );
        assert!(attic.is_running(), "{}", tail(&attic.log(), 30));
        std::thread::sleep(Duration::from_millis(10));
    }
    release.store(true, Ordering::SeqCst);
    let ready = attic.wait_ready(T);
    assert_eq!(
        ready["streams"][1]["subscriptions"],
        json!([
            {"filter": "a/#", "requested_qos": 2, "granted_qos": 1},
            {"filter": "b/#", "requested_qos": 2, "granted_qos": null},
        ])
    );
    attic.stop_clean();
    assert!(!attic.ready_path().exists());
    broker.assert_scripts_ok();
}

#[test]
fn a_stale_ready_file_is_removed_at_start() {
    let dir = TempDir::new("ready-stale");
    let config_path = dir.join("attic.yaml");
    // No broker: this run is never ready, so only the start-up can have
    // removed the file an earlier run left.
    let yaml = config(&dir.join("data"), &[("s", free_port(), &["#"], "")]);
    std::fs::write(&config_path, yaml).unwrap();
    let stale = dir.join("ready.json");
    std::fs::write(&stale, "{\"pid\": 1}").unwrap();
    let out = run_attic_in(
        &dir,
        &[
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--ready-file",
            stale.to_str().unwrap(),
            "--stop-after",
            "300ms",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!stale.exists(), "the stale ready file survived the run");
    assert!(err.contains("removed the stale ready file"), "{err}");
}

#[test]
fn stop_after_stops_cleanly_at_the_deadline_and_loses_nothing() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-after");
    let data = dir.join("data");
    let summary = dir.join("summary.json");
    let yaml = config(&data, &[("s", broker.port(), &["load/#"], "qos: 1")]);
    let stop_after = Duration::from_secs(4);
    let mut attic = Attic::start_with_args(
        &yaml,
        &dir,
        &["--stop-after", "4s", "--summary", summary.to_str().unwrap()],
    );
    let started = Instant::now();
    attic.wait_ready(T);
    let n = 300;
    let mut client = TestClient::connect(broker.port(), "stop-after-load");
    client.publish_many_qos1(n, |i| {
        (format!("load/{}", i % 7), i.to_string().into_bytes())
    });
    client.disconnect();
    let published_by = started.elapsed();
    assert!(
        published_by < stop_after,
        "publishing took {published_by:?}, longer than --stop-after: the machine is too slow for this test"
    );
    wait_clean_exit(&mut attic, stop_after + T);
    let ran_for = started.elapsed();
    assert!(
        ran_for >= stop_after,
        "stopped after {ran_for:?}, before --stop-after"
    );
    assert!(part_files(&data).is_empty(), "a .part file was left");
    let rows: Vec<Row> = all_rows(&data);
    let got: BTreeSet<usize> = rows
        .iter()
        .map(|r| std::str::from_utf8(&r.payload).unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, (0..n).collect(), "some messages were lost");
    let s = read_json(&summary);
    assert_eq!(s["exit_reason"], json!("stop-after"));
    assert_eq!(s["exit_code"], json!(0));
    assert!(s["duration_s"].as_f64().unwrap() >= stop_after.as_secs_f64());
    assert_eq!(u(&s["stored"]), rows.len() as u64);
    assert_eq!(u(&s["streams"][0]["lost"]), 0);
}

#[test]
fn stop_after_messages_stops_cleanly_once_that_many_are_stored() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-after-messages");
    let data = dir.join("data");
    let summary = dir.join("summary.json");
    let port = broker.port();
    let yaml = config(
        &data,
        &[
            ("one", port, &["one/#"], "qos: 1"),
            ("two", port, &["two/#"], "qos: 2"),
        ],
    );
    let mut attic = Attic::start_with_args(
        &yaml,
        &dir,
        &[
            "--stop-after-messages",
            "400",
            "--summary",
            summary.to_str().unwrap(),
        ],
    );
    attic.wait_ready(T);
    let mut client = TestClient::connect(port, "count-load");
    client.publish_many_qos1(300, |i| (format!("one/{i}"), i.to_string().into_bytes()));
    assert!(attic.is_running(), "stopped before 400 messages");
    client.publish_many_qos1(100, |i| (format!("two/{i}"), i.to_string().into_bytes()));
    client.disconnect();
    wait_clean_exit(&mut attic, T);
    assert!(part_files(&data).is_empty(), "a .part file was left");
    assert_eq!(all_rows(&data.join("one")).len(), 300);
    assert_eq!(all_rows(&data.join("two")).len(), 100);
    let s = read_json(&summary);
    assert_eq!(s["exit_reason"], json!("stop-after-messages"));
    assert_eq!(u(&s["stored"]), 400);
    assert_eq!(u(&s["streams"][0]["stored"]), 300);
    assert_eq!(u(&s["streams"][1]["stored"]), 100);
    assert!(attic.log().contains("--stop-after-messages 400"));
}

#[test]
fn the_summary_counts_equal_the_rows_in_the_files_and_it_is_written_on_sigterm() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("summary");
    let data = dir.join("data");
    let summary = dir.join("out").join("summary.json");
    std::fs::create_dir_all(summary.parent().unwrap()).unwrap();
    let port = broker.port();
    let yaml = config(
        &data,
        &[
            (
                "rotating",
                port,
                &["r/#"],
                "file-rotation-time-seconds: 1\nexclude: [\"r/noise/#\"]\nmax-payload-bytes: 1000",
            ),
            ("quiet", port, &["nobody/#"], ""),
            ("busy", port, &["b/#"], "qos: 1"),
        ],
    );
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_ready(T);
    let mut client = TestClient::connect(port, "summary-load");
    // Two batches in different 1-second periods of the rotating stream,
    // with excluded and oversize messages among them.
    for batch in 0..2 {
        for i in 0..50 {
            client.publish(&format!("r/{batch}/{i}"), b"keep", 1, false);
        }
        client.publish("r/noise/1", b"dropped", 1, false);
        client.publish("r/big", &[b'x'; 2000], 1, false);
        if batch == 0 {
            wait_for_rows(&data.join("rotating"), 50, T);
            wait_until(T, "the first rotating file to be finished", || {
                !finished_files(&data.join("rotating")).is_empty()
            });
        }
    }
    client.publish_many_qos1(200, |i| (format!("b/{i}"), vec![b'p'; i % 50]));
    client.disconnect();
    wait_for_rows(&data, 300, T);
    attic.stop_clean();

    let s = read_json(&summary);
    assert_eq!(s["exit_reason"], json!("signal"));
    assert_eq!(s["exit_code"], json!(0));
    assert_eq!(s["error"], Value::Null);
    assert_eq!(u(&s["pid"]), u64::from(attic.pid()));
    assert!(s["cpu_s"].as_f64().unwrap() > 0.0);
    let rss = u(&s["peak_rss_bytes"]);
    assert!(rss > 1 << 20 && rss < 1 << 30, "peak RSS {rss}");
    assert!(u(&s["end_us"]) >= u(&s["start_us"]));
    for key in ["start_time", "end_time"] {
        let t = s[key].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 27, "{key}: {t}");
    }

    let streams = s["streams"].as_array().unwrap();
    assert_eq!(
        streams
            .iter()
            .map(|e| e["folder"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["rotating", "quiet", "busy"]
    );
    let mut total = 0;
    for e in streams {
        let folder = data.join(e["folder"].as_str().unwrap());
        let listed: BTreeSet<PathBuf> = e["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| PathBuf::from(f.as_str().unwrap()))
            .collect();
        let on_disk: BTreeSet<PathBuf> = files_under(&folder)
            .into_iter()
            .map(|p| std::path::absolute(p).unwrap())
            .collect();
        assert_eq!(listed, on_disk, "files of {}", folder.display());
        let (mut rows, mut lo, mut hi) = (0u64, i64::MAX, i64::MIN);
        for f in &listed {
            let (n, a, b) = file_figures(f);
            assert_eq!(n, count_rows(f).unwrap() as u64);
            rows += n;
            lo = lo.min(a);
            hi = hi.max(b);
        }
        assert_eq!(
            u(&e["stored"]),
            rows,
            "stored vs rows of {}",
            folder.display()
        );
        assert_eq!(
            u(&e["received"]),
            u(&e["stored"]) + u(&e["filtered"]) + u(&e["skipped"]),
            "{e}"
        );
        assert_eq!(u(&e["lost"]), 0);
        if rows == 0 {
            assert_eq!(e["first_reception_timestamp"], Value::Null);
        } else {
            assert_eq!(e["first_reception_timestamp"], json!(lo));
            assert_eq!(e["last_reception_timestamp"], json!(hi));
        }
        total += rows;
    }
    let rotating = &streams[0];
    assert_eq!(u(&rotating["stored"]), 100);
    assert_eq!(u(&rotating["filtered"]), 2);
    assert_eq!(u(&rotating["skipped"]), 2);
    assert!(
        rotating["files"].as_array().unwrap().len() >= 2,
        "{rotating}"
    );
    assert_eq!(u(&streams[1]["received"]), 0);
    assert_eq!(u(&streams[2]["stored"]), 200);
    assert_eq!(u(&s["stored"]), total);
    assert_eq!(total, 300);
}

#[test]
fn the_summary_stays_exact_when_messages_keep_arriving_across_rotations() {
    // Under steady load, messages of the next period arrive before the
    // loop's rotation deadline is handled; the file they close must be
    // counted like one closed on time.
    let broker = Mosquitto::start();
    let dir = TempDir::new("summary-rotating-load");
    let data = dir.join("data");
    let summary = dir.join("summary.json");
    let yaml = config(
        &data,
        &[(
            "r",
            broker.port(),
            &["r/#"],
            "file-rotation-time-seconds: 1",
        )],
    );
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_ready(T);
    let mut client = TestClient::connect(broker.port(), "rotating-load");
    let deadline = Instant::now() + T;
    let mut sent = 0;
    while finished_files(&data).len() < 3 {
        assert!(Instant::now() < deadline, "no third rotation within {T:?}");
        client.publish_many(200, |i| {
            (format!("r/{}", (sent + i) % 10), b"0123456789".to_vec())
        });
        client.flush();
        sent += 200;
        std::thread::sleep(Duration::from_millis(5)); // steady load is the point
    }
    client.disconnect();
    wait_for_rows(&data, sent, T);
    attic.stop_clean();
    let s = read_json(&summary);
    let e = &s["streams"][0];
    let listed: BTreeSet<PathBuf> = e["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect();
    let on_disk: BTreeSet<PathBuf> = finished_files(&data)
        .into_iter()
        .map(|p| std::path::absolute(p).unwrap())
        .collect();
    assert_eq!(listed, on_disk);
    let rows: u64 = listed.iter().map(|f| file_figures(f).0).sum();
    assert_eq!(rows, sent as u64, "QoS 0 on loopback while Attic keeps up");
    assert_eq!(u(&e["received"]), rows);
    assert_eq!(u(&e["stored"]), rows, "{e}");
}

#[test]
fn the_summary_can_go_to_stdout_as_one_json_line() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("summary-stdout");
    let data = dir.join("data");
    let config_path = dir.join("attic.yaml");
    std::fs::write(
        &config_path,
        config(&data, &[("s", broker.port(), &["#"], "")]),
    )
    .unwrap();
    let out = run_attic_in(
        &dir,
        &[
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--stop-after",
            "500ms",
            "--summary",
            "-",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["exit_reason"], json!("stop-after"));
    assert_eq!(s["streams"][0]["folder"], json!("s"));
}

#[test]
fn a_broker_that_is_down_keeps_the_ready_file_away_while_attic_retries() {
    let mut down = Mosquitto::start();
    down.stop();
    let up = Mosquitto::start();
    let dir = TempDir::new("ready-down");
    let data = dir.join("data");
    let summary = dir.join("summary.json");
    let yaml = config(
        &data,
        &[
            ("up", up.port(), &["#"], ""),
            ("down", down.port(), &["#"], ""),
        ],
    );
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_log_contains("[up] subscribed", T);
    wait_until(T, "two failed attempts to reach the stopped broker", || {
        attic.log().matches("[down] cannot connect").count() >= 2
    });
    assert!(!attic.ready_path().exists(), "ready while a broker is down");
    // The broker comes back on the same port: Attic, still retrying,
    // subscribes and only now says it is ready.
    down.restart();
    let ready = attic.wait_ready(T);
    assert_eq!(ready["streams"][1]["folder"], json!("down"));
    attic.stop_clean();
    assert!(!attic.ready_path().exists());
    assert_eq!(read_json(&summary)["exit_reason"], json!("signal"));
}

#[test]
fn a_stop_works_while_a_broker_is_down_and_the_summary_is_still_written() {
    let dir = TempDir::new("stop-down");
    let data = dir.join("data");
    let summary = dir.join("summary.json");
    let yaml = config(&data, &[("down", free_port(), &["#"], "")]);
    let mut attic = Attic::start_with_args(
        &yaml,
        &dir,
        &[
            "--stop-after",
            "1500ms",
            "--summary",
            summary.to_str().unwrap(),
        ],
    );
    wait_clean_exit(&mut attic, T);
    assert!(!attic.ready_path().exists(), "ready without a broker");
    let s = read_json(&summary);
    assert_eq!(s["exit_reason"], json!("stop-after"));
    assert_eq!(u(&s["streams"][0]["received"]), 0);
    assert_eq!(s["streams"][0]["files"], json!([]));
}

#[test]
fn bad_values_exit_2_with_one_line() {
    for (args, expect) in [
        (
            &["run", "--stop-after", "90"][..],
            "--stop-after \"90\": needs a unit",
        ),
        (
            &["run", "--stop-after", "soon"][..],
            "--stop-after \"soon\": not a duration",
        ),
        (
            &["run", "--stop-after-messages", "-3"][..],
            "--stop-after-messages \"-3\"",
        ),
        (&["run", "--summary"][..], "--summary needs a value"),
        (&["check", "--summary", "-"][..], "belong to `attic run`"),
    ] {
        let out = run_attic(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn a_ready_file_in_a_missing_folder_is_a_start_up_error() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("ready-missing-folder");
    let config_path = dir.join("attic.yaml");
    std::fs::write(
        &config_path,
        config(&dir.join("data"), &[("s", broker.port(), &["#"], "")]),
    )
    .unwrap();
    let missing = dir.join("no-such-folder").join("ready.json");
    let out = run_attic_in(
        &dir,
        &[
            "run",
            "--config",
            config_path.to_str().unwrap(),
            "--ready-file",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-folder"));
}
