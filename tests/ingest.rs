//! The main path against a real mosquitto: every message stored once with
//! the right bytes, the file layout and schema, rotation, stop, SIGHUP,
//! start-up errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::{open_ro, wait_for_finished_rows};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A config with one stream per `(prefix, topics, rotation_s)`.
fn config(data: &Path, port: u16, streams: &[(&str, &[&str], u64)]) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n",
        data.display()
    );
    for (prefix, topics, rot) in streams {
        y.push_str(&format!(
            "  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    user: \"\"\n    password: \"\"\n    topic: [{}]\n    prefix: \"{prefix}\"\n    suffix: \"\"\n    file-rotation-time-seconds: {rot}\n    commit-interval-ms: 100\n",
            topics.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
        ));
    }
    y.push_str("log-performance: false\n");
    y
}

/// Starts Attic and waits for its ready file: every stream has subscribed.
fn start(yaml: &str, dir: &TempDir, streams: usize) -> Attic {
    let mut a = Attic::start(yaml, dir);
    let ready = a.wait_ready(T);
    assert_eq!(
        ready["streams"].as_array().map(Vec::len),
        Some(streams),
        "{ready}"
    );
    a
}

type Key = (String, Vec<u8>, bool);

fn multiset(rows: &[Row]) -> BTreeMap<Key, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry((r.topic.clone(), r.payload.clone(), r.retain))
            .or_insert(0) += 1;
    }
    m
}

#[test]
fn a_mixed_workload_is_stored_exactly_once_per_stream_with_the_right_bytes() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("mixed");
    let data = dir.join("data");

    // A retained message published before Attic starts arrives with retain=1.
    let mut pre = TestClient::connect(broker.port(), "pre");
    pre.publish("sensors/kitchen/temp", b"21.5", 1, true);
    pre.disconnect();

    let yaml = config(
        &data,
        broker.port(),
        &[
            ("all", &["#"], 3600),
            ("sensors", &["sensors/+/temp", "bin/#"], 3600),
            ("other", &["other/#"], 3600),
        ],
    );
    let mut attic = start(&yaml, &dir, 3);

    let binary: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let deep = (0..40)
        .map(|i| format!("l{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let msgs: Vec<(String, Vec<u8>)> = vec![
        ("sensors/hall/temp".into(), b"19.0".to_vec()),
        ("bin/blob".into(), binary.clone()),
        ("bin/empty".into(), Vec::new()),
        ("bin/large".into(), large.clone()),
        (
            "other/capteurs/température/é".into(),
            "ünïcødé ✓".as_bytes().to_vec(),
        ),
        (format!("other/{deep}"), b"deep".to_vec()),
        ("sensors/hall/humidity".into(), b"40".to_vec()),
        ("emoji/🙂/x".into(), b"\0\0\0".to_vec()),
    ];
    let mut c = TestClient::connect(broker.port(), "pub");
    for (t, p) in &msgs {
        c.publish(t, p, 1, false);
    }
    c.disconnect();
    // everything received by "#": 8 messages + the retained one
    wait_for_rows(&data.join("all"), msgs.len() + 1, T);
    wait_for_rows(&data.join("other"), 2, T);
    attic.stop_clean();

    let retained: Key = ("sensors/kitchen/temp".into(), b"21.5".to_vec(), true);
    let mut want_all: BTreeMap<Key, usize> = msgs
        .iter()
        .map(|(t, p)| ((t.clone(), p.clone(), false), 1))
        .collect();
    want_all.insert(retained.clone(), 1);
    assert_eq!(multiset(&all_rows(&data.join("all"))), want_all);

    let mut want_sensors: BTreeMap<Key, usize> = msgs
        .iter()
        .filter(|(t, _)| t.starts_with("bin/") || t == "sensors/hall/temp")
        .map(|(t, p)| ((t.clone(), p.clone(), false), 1))
        .collect();
    want_sensors.insert(retained, 1);
    assert_eq!(multiset(&all_rows(&data.join("sensors"))), want_sensors);

    let want_other: BTreeMap<Key, usize> = msgs
        .iter()
        .filter(|(t, _)| t.starts_with("other/"))
        .map(|(t, p)| ((t.clone(), p.clone(), false), 1))
        .collect();
    assert_eq!(multiset(&all_rows(&data.join("other"))), want_other);

    // qos is what the message was delivered with (subscription QoS 0)
    assert!(all_rows(&data.join("all")).iter().all(|r| r.qos == 0));
}

#[test]
fn files_have_the_documented_layout_schema_and_metadata() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("layout");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("pre", &["t/#"], 3600)])
        .replace("suffix: \"\"", "suffix: \"-fix\"");
    let mut attic = start(&yaml, &dir, 1);
    let before = now_us();
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("t/1", b"x", 0, false);
    c.flush();
    wait_for_rows(&data.join("pre-fix"), 1, T);
    let after = now_us();
    attic.stop_clean();

    // Beside the day folders, the stream folder holds only its lock file.
    let (locks, files): (Vec<_>, Vec<_>) = list_files(&data)
        .into_iter()
        .partition(|f| f.file_name().is_some_and(|n| n == "attic.lock"));
    assert_eq!(locks, [data.join("pre-fix").join("attic.lock")]);
    assert_eq!(
        files.len(),
        1,
        "exactly one complete file, no -wal/-shm/.part: {files:?}"
    );
    let f = &files[0];
    let rel = f.strip_prefix(&data).unwrap();
    let parts: Vec<_> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    assert_eq!(parts[0], "pre-fix");
    let created: i64 = parts[2].strip_suffix(".sqlite").unwrap().parse().unwrap();
    assert!(
        created >= before && created <= after,
        "file name is the creation time in µs"
    );
    assert_eq!(parts[1], utc_day(created));

    let con = open_ro(f).unwrap();
    let table: String = con
        .query_row("select sql from sqlite_master where name='data'", [], |r| {
            r.get(0)
        })
        .unwrap();
    for col in [
        "reception_timestamp INTEGER NOT NULL",
        "topic TEXT NOT NULL",
        "payload BLOB NOT NULL",
        "qos INTEGER NOT NULL",
        "retain INTEGER NOT NULL",
    ] {
        assert!(table.contains(col), "{col} missing from {table}");
    }
    let index: String = con
        .query_row(
            "select sql from sqlite_master where name='topics'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        index.contains("ON data (topic)") || index.contains("ON data(topic)"),
        "{index}"
    );
    let app_id: i64 = con
        .query_row("pragma application_id", [], |r| r.get(0))
        .unwrap();
    assert_ne!(app_id, 0);
    let mode: String = con
        .query_row("pragma journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a finished file needs no -wal");
    let meta: BTreeMap<String, String> = con
        .prepare("select key, value from attic_meta")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        meta.get("row_count").map(String::as_str),
        Some("1"),
        "{meta:?}"
    );
    assert_eq!(
        meta.get("stream_folder").map(String::as_str),
        Some("pre-fix")
    );
    for key in [
        "format_version",
        "attic_version",
        "topic_filters",
        "broker",
        "host",
        "opened_at_us",
        "closed_at_us",
    ] {
        assert!(meta.contains_key(key), "attic_meta lacks {key}: {meta:?}");
    }
    let ts: i64 = con
        .query_row("select reception_timestamp from data", [], |r| r.get(0))
        .unwrap();
    assert!(
        ts >= before && ts <= after,
        "reception_timestamp is unix µs of reception"
    );
}

#[test]
fn rotation_every_second_under_steady_traffic_loses_and_duplicates_nothing() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("rotation");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("rot", &["seq/#"], 1)]);
    let mut attic = start(&yaml, &dir, 1);

    let n = 1500;
    let mut c = TestClient::connect(broker.port(), "pub");
    let start = Instant::now();
    for i in 0..n {
        c.publish("seq/x", format!("{i}").as_bytes(), 0, false);
        // ~500 msg/s for 3 s, spread over at least three periods
        let due = start + Duration::from_millis(i as u64 * 2);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    c.flush();
    wait_for_rows(&data.join("rot"), n, T);
    attic.stop_clean();

    let files = finished_files(&data);
    assert!(
        files.len() >= 3,
        "expected a file per second, got {files:?}"
    );
    let mut seen = vec![0u32; n];
    for f in &files {
        let created: i64 = f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".sqlite")
            .unwrap()
            .parse()
            .unwrap();
        let period_start = created.div_euclid(1_000_000) * 1_000_000;
        for r in read_rows(f) {
            assert!(
                r.ts >= created && r.ts < period_start + 1_000_000,
                "{} holds a row from {} outside its period [{created}, {})",
                f.display(),
                r.ts,
                period_start + 1_000_000
            );
            let i: usize = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
            seen[i] += 1;
        }
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c != 1).collect();
    assert!(
        wrong.is_empty(),
        "messages stored other than once: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    assert!(part_files(&data).is_empty());
}

#[test]
fn a_quiet_streams_file_is_finalised_on_time_without_another_message() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("quiet");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("quiet", &["q"], 2)]);
    let mut attic = start(&yaml, &dir, 1);
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("q", b"only", 0, false);
    c.flush();
    let sent = Instant::now();
    // the period ends at most 2 s after the message; allow 1.5 s slack
    wait_for_finished_rows(&data, 1, Duration::from_millis(3500));
    assert!(sent.elapsed() < Duration::from_millis(3500));
    assert!(part_files(&data).is_empty());
    assert!(attic.is_running());
    attic.stop_clean();
    assert_eq!(
        finished_files(&data).len(),
        1,
        "a quiet stream leaves no empty files"
    );
}

#[test]
fn stop_is_fast_and_clean_when_idle() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-idle");
    let yaml = config(&dir.join("data"), broker.port(), &[("idle", &["#"], 3600)]);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut attic = start(&yaml, &dir, 1);
        let t = Instant::now();
        attic.signal(sig);
        let status = attic
            .wait_exit(Duration::from_secs(2))
            .expect("exit within 2 s");
        assert!(status.success(), "{status:?}\n{}", attic.log());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}

#[test]
fn stop_under_traffic_is_fast_and_leaves_only_finished_files() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("stop-busy");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("busy", &["load/#"], 3600)]);
    let mut attic = start(&yaml, &dir, 1);
    let port = broker.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let publisher = std::thread::spawn(move || {
        let mut c = TestClient::connect(port, "load");
        let mut i = 0usize;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            c.publish_many(200, |k| {
                ("load/x".into(), format!("{}", i + k).into_bytes())
            });
            i += 200;
            // faster than a debug build stores: commits must still happen
            std::thread::sleep(Duration::from_millis(2));
        }
        i
    });
    wait_for_rows(&data, 2000, T);
    let t = Instant::now();
    attic.signal(libc::SIGTERM);
    let status = attic
        .wait_exit(Duration::from_secs(2))
        .expect("exit within 2 s under load");
    assert!(status.success());
    assert!(t.elapsed() < Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(part_files(&data).is_empty(), "{:?}", list_files(&data));
    assert!(
        list_files(&data)
            .iter()
            .filter(|f| f.file_name().is_none_or(|n| n != "attic.lock"))
            .all(|f| f.to_string_lossy().ends_with(".sqlite"))
    );
    let rows = all_rows(&data);
    assert!(rows.len() >= 2000);
    let mut payloads: Vec<usize> = rows
        .iter()
        .map(|r| std::str::from_utf8(&r.payload).unwrap().parse().unwrap())
        .collect();
    payloads.sort_unstable();
    payloads.dedup();
    assert_eq!(payloads.len(), rows.len(), "no duplicates");
}

#[test]
fn sighup_finalises_the_current_file_and_a_new_one_follows() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("hup");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("hup", &["h"], 3600)]);
    let mut attic = start(&yaml, &dir, 1);
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("h", b"1", 0, false);
    c.flush();
    wait_for_rows(&data, 1, T);
    attic.signal(libc::SIGHUP);
    wait_for_finished_rows(&data, 1, T);
    c.publish("h", b"2", 0, false);
    c.flush();
    wait_for_rows(&data, 2, T);
    attic.stop_clean();
    assert_eq!(finished_files(&data).len(), 2);
}

#[test]
fn a_bad_config_exits_78_names_key_and_line_and_creates_nothing() {
    let dir = TempDir::new("badcfg");
    let data = dir.join("data");
    let yaml = config(&data, 1883, &[("x", &["a/#/b"], 0)]).replace(
        "commit-interval-ms: 100",
        "commit-interval-ms: 100\n    qos: 3\n    colour: blue",
    );
    let path = dir.join("bad.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = run_attic(&["run", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    let line_of = |needle: &str| yaml.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (key, needle) in [
        ("streams[0].qos", "qos: 3"),
        ("streams[0].colour", "colour"),
        ("streams[0].file-rotation-time-seconds", "file-rotation"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(key) && l.contains(&format!(":{}:", line_of(needle)))),
            "no line naming {key} at line {}:\n{err}",
            line_of(needle)
        );
    }
    assert!(err.contains("streams[0].topic"), "{err}");
    assert!(!data.exists(), "nothing is created for a bad config");
}

#[test]
fn check_accepts_the_example_config_and_hides_passwords() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let out = run_attic(&["check", "--config", example.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("everything"), "{text}");
}

#[test]
fn an_uncreatable_data_folder_exits_1_with_one_clear_line() {
    let dir = TempDir::new("nofolder");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let yaml = config(&blocker.join("data"), 1883, &[("x", &["#"], 60)]);
    let path = dir.join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run_attic(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("cannot create data folder"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn pandas_reads_a_finished_file_with_the_original_query() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("pandas");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), &[("pd", &["p/#"], 3600)]);
    let mut attic = start(&yaml, &dir, 1);
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("p/a", b"1.5", 0, false);
    c.publish("p/b", &[0, 1, 2], 0, true);
    c.flush();
    wait_for_rows(&data, 2, T);
    attic.stop_clean();
    let file = &finished_files(&data)[0];
    let script = "import sys, sqlite3, pandas\n\
        con = sqlite3.connect(sys.argv[1])\n\
        df = pandas.read_sql('select * from data', con)\n\
        assert list(df.columns) == ['reception_timestamp', 'topic', 'payload', 'qos', 'retain'], list(df.columns)\n\
        assert len(df) == 2\n\
        assert sorted(df.topic) == ['p/a', 'p/b']\n\
        assert bytes(df[df.topic == 'p/b'].payload.iloc[0]) == bytes([0, 1, 2])\n\
        print('ok', len(df))\n";
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .args(["-c", "import pandas"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("pandas is needed for this test: pip install pandas (or apt-get install python3-pandas)");
    let out = std::process::Command::new(python)
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok 2"));
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        .try_into()
        .unwrap()
}

/// The UTC date of a unix-µs time, computed independently of the code under test.
fn utc_day(us: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", us.div_euclid(1_000_000)),
            "+%Y-%m-%d",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn qos_1_and_2_subscriptions_store_each_message_once_with_its_qos() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("qos2");
    let data = dir.join("data");
    let yaml = config(
        &data,
        broker.port(),
        &[("q1", &["q/#"], 3600), ("q2", &["q/#"], 3600)],
    )
    .replacen(
        "commit-interval-ms: 100\n",
        "commit-interval-ms: 100\n    qos: 1\n",
        1,
    )
    .replacen("prefix: \"q2\"", "prefix: \"q2\"\n    qos: 2", 1);
    let mut attic = start(&yaml, &dir, 2);
    let mut c = TestClient::connect(broker.port(), "pub");
    for i in 0..200 {
        c.publish("q/x", format!("{i}").as_bytes(), 2, false);
    }
    c.disconnect();
    wait_for_rows(&data.join("q1"), 200, T);
    wait_for_rows(&data.join("q2"), 200, T);
    attic.stop_clean();
    for (folder, qos) in [("q1", 1), ("q2", 2)] {
        let rows = all_rows(&data.join(folder));
        assert_eq!(rows.len(), 200, "{folder}");
        assert!(
            rows.iter().all(|r| r.qos == qos),
            "{folder} stored with QoS {qos}"
        );
        let distinct: std::collections::BTreeSet<_> =
            rows.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(distinct.len(), 200, "{folder}: each once");
    }
}

#[test]
fn coalesce_ms_reads_light_traffic_in_batches_and_zero_reads_each_message_at_once() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("coalesce");
    let data = dir.join("data");
    let yaml = config(
        &data,
        broker.port(),
        &[("slow", &["c/slow"], 3600), ("fast", &["c/fast"], 3600)],
    )
    .replacen(
        "commit-interval-ms: 100\n",
        "commit-interval-ms: 100\n    coalesce-ms: 1000\n",
        1,
    )
    .replacen(
        "prefix: \"fast\"",
        "prefix: \"fast\"\n    coalesce-ms: 0",
        1,
    );
    let mut attic = start(&yaml, &dir, 2);
    let mut c = TestClient::connect(broker.port(), "pub");
    for i in 0..5 {
        c.publish("c/slow", format!("{i}").as_bytes(), 0, false);
        c.publish("c/fast", format!("{i}").as_bytes(), 0, false);
        c.flush();
        std::thread::sleep(Duration::from_millis(100)); // the spacing is the point (wide, for a loaded machine)
    }
    wait_for_rows(&data.join("slow"), 5, T);
    wait_for_rows(&data.join("fast"), 5, T);
    attic.stop_clean();
    let distinct = |folder: &str| {
        all_rows(&data.join(folder))
            .iter()
            .map(|r| r.ts)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    // the first message is read at once, the next four together after 1000 ms
    assert!(
        distinct("slow") <= 2,
        "coalesced reads share timestamps: {}",
        distinct("slow")
    );
    assert_eq!(
        distinct("fast"),
        5,
        "coalesce-ms: 0 reads each message as it comes"
    );
}
