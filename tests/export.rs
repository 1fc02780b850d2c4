//! `attic export` against what a real Attic recorded from a real mosquitto:
//! two streams with 1 s rotation (binary, empty, UTF-8 and retained
//! messages), exported whole and by windows, topic filters and streams, in
//! all three formats, each compared row by row with the files; an export
//! with `--include-open` while Attic keeps storing; and the exit codes of
//! bad arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// One exported (or expected) row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    ts: i64,
    stream: String,
    topic: String,
    payload: Vec<u8>,
    qos: i64,
    retain: bool,
}

fn config(data: &Path, port: u16, rotation_s: u64) -> String {
    format!(
        r##"console-feedback-period-seconds: 60
data-folder: "{data}"
streams:
  - mqtt-broker-port: {port}
    topic: "a/#"
    prefix: "alpha"
    qos: 1
    file-rotation-time-seconds: {rotation_s}
    commit-interval-ms: 50
  - mqtt-broker-port: {port}
    topic: ["b/#"]
    prefix: "be"
    suffix: "ta"
    file-rotation-time-seconds: {rotation_s}
    commit-interval-ms: 50
"##,
        data = data.display()
    )
}

fn start_attic(dir: &TempDir, data: &Path, port: u16, rotation_s: u64) -> Attic {
    let attic = Attic::start(&config(data, port, rotation_s), dir);
    wait_until(T, "both streams subscribed", || {
        attic.log().matches("subscribed; storing").count() >= 2
    });
    attic
}

/// The rows of the stored files, merged as the spec orders them: by
/// timestamp, equal timestamps in config order (alpha before beta).
fn expected(data: &Path) -> Vec<Out> {
    let mut rows = Vec::new();
    for stream in ["alpha", "beta"] {
        for r in all_rows(&data.join(stream)) {
            rows.push(Out {
                ts: r.ts,
                stream: stream.to_owned(),
                topic: r.topic,
                payload: r.payload,
                qos: r.qos,
                retain: r.retain,
            });
        }
    }
    rows.sort_by_key(|r| r.ts); // stable: alpha's rows first on ties
    rows
}

/// Rows matching the SQL condition `cond` in every file under `data`,
/// finished or not (a file that cannot be read right now counts 0).
fn stored_with(data: &Path, cond: &str) -> i64 {
    list_files(data)
        .iter()
        .filter(|p| {
            p.to_str()
                .is_some_and(|s| s.ends_with(".sqlite") || s.ends_with(".part"))
        })
        .filter_map(|p| {
            let c = common::files::open_ro(p).ok()?;
            c.query_row(
                &format!("SELECT count(*) FROM data WHERE {cond}"),
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
        })
        .sum::<i64>()
}

fn export(dir: &TempDir, cfg: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["export", "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_attic_in(dir, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "attic {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn check_time(time: &str, ts: i64) {
    assert_eq!(time.len(), 27, "{time}");
    assert!(time.ends_with('Z') && &time[19..20] == ".", "{time}");
    let parsed: jiff::Timestamp = time.parse().unwrap();
    assert_eq!(parsed.as_microsecond(), ts, "{time}");
}

fn parse_jsonl(text: &[u8]) -> Vec<Out> {
    use base64::Engine;
    let text = std::str::from_utf8(text).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let o = v.as_object().unwrap();
            let keys: Vec<&str> = o.keys().map(String::as_str).collect();
            let ts = o["reception_timestamp"].as_i64().unwrap();
            check_time(o["time"].as_str().unwrap(), ts);
            let payload = match (o.get("payload"), o.get("payload_base64")) {
                (Some(p), None) => p.as_str().unwrap().as_bytes().to_vec(),
                (None, Some(b)) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b.as_str().unwrap())
                        .unwrap();
                    assert!(
                        std::str::from_utf8(&bytes).is_err(),
                        "base64 only for non-UTF-8"
                    );
                    bytes
                }
                _ => panic!("exactly one of payload / payload_base64 in {line}"),
            };
            assert_eq!(keys.len(), 7, "{line}");
            Out {
                ts,
                stream: o["stream"].as_str().unwrap().to_owned(),
                topic: o["topic"].as_str().unwrap().to_owned(),
                payload,
                qos: o["qos"].as_i64().unwrap(),
                retain: o["retain"].as_bool().unwrap(),
            }
        })
        .collect()
}

fn parse_csv(text: &[u8]) -> Vec<Out> {
    use base64::Engine;
    let mut r = csv::Reader::from_reader(text);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "reception_timestamp",
            "time",
            "stream",
            "topic",
            "payload",
            "payload_encoding",
            "qos",
            "retain",
            "properties"
        ]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let ts: i64 = rec[0].parse().unwrap();
            check_time(&rec[1], ts);
            let payload = match &rec[5] {
                "utf8" => rec[4].as_bytes().to_vec(),
                "base64" => base64::engine::general_purpose::STANDARD
                    .decode(&rec[4])
                    .unwrap(),
                other => panic!("payload_encoding {other}"),
            };
            Out {
                ts,
                stream: rec[2].to_owned(),
                topic: rec[3].to_owned(),
                payload,
                qos: rec[6].parse().unwrap(),
                retain: match &rec[7] {
                    "true" => true,
                    "false" => false,
                    other => panic!("retain {other}"),
                },
            }
        })
        .collect()
}

fn read_sqlite(path: &Path) -> Vec<Out> {
    let c = rusqlite::Connection::open(path).unwrap();
    let app: i64 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, 0x4154_5443);
    let index: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'topics'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("data (topic)"), "{index}");
    let rows: i64 = c
        .query_row(
            "SELECT value FROM attic_meta WHERE key = 'row_count'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
        .parse()
        .unwrap();
    let mut stmt = c
        .prepare("SELECT reception_timestamp, stream, topic, payload, qos, retain FROM data ORDER BY rowid")
        .unwrap();
    let out: Vec<Out> = stmt
        .query_map([], |r| {
            Ok(Out {
                ts: r.get(0)?,
                stream: r.get(1)?,
                topic: r.get(2)?,
                payload: r.get(3)?,
                qos: r.get(4)?,
                retain: r.get::<_, i64>(5)? != 0,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows, i64::try_from(out.len()).unwrap());
    out
}

/// Exports `args` in all three formats and checks each against `want`.
fn check_all_formats(dir: &TempDir, cfg: &Path, args: &[&str], want: &[Out], label: &str) {
    let out = export(dir, cfg, args);
    assert_rows(&parse_jsonl(&out.stdout), want, &format!("{label} jsonl"));

    let csv_path = dir.join(format!("{label}.csv"));
    let mut a = args.to_vec();
    a.extend(["--output", csv_path.to_str().unwrap()]);
    export(dir, cfg, &a);
    assert_rows(
        &parse_csv(&std::fs::read(&csv_path).unwrap()),
        want,
        &format!("{label} csv"),
    );

    let db: PathBuf = dir.join(format!("{label}.db"));
    let mut a = args.to_vec();
    a.extend(["--format", "sqlite", "--output", db.to_str().unwrap()]);
    export(dir, cfg, &a);
    assert_rows(&read_sqlite(&db), want, &format!("{label} sqlite"));
}

fn assert_rows(got: &[Out], want: &[Out], label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{label}: row {i}");
    }
}

#[test]
fn exports_of_a_two_stream_recording_match_the_files_row_by_row() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("export");
    let data = dir.join("data");
    // Retained before Attic subscribes, so they are stored with retain = 1.
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("a/retained", b"kept", 1, true);
    c.publish("b/retained", &[0xff, 0xfe, 0x00], 1, true);
    // 80 rounds 40 ms apart span more than three 1 s files. Attic stops
    // by itself once every message is committed, so nothing polls the
    // files while it writes them.
    let rounds = 80u32;
    let total = 2 + 6 * rounds + 2;
    let mut attic = Attic::start_with_args(
        &config(&data, broker.port(), 1),
        &dir,
        &["--stop-after-messages", &total.to_string()],
    );
    attic.wait_ready(T);
    for round in 0..rounds {
        c.publish(
            "a/text",
            format!("é \"{round}\", x\ny").as_bytes(),
            1,
            false,
        );
        c.publish(
            "a/bin",
            &[0x80, 0x00, u8::try_from(round % 256).unwrap(), 0xff],
            0,
            false,
        );
        c.publish("a/empty", b"", 1, false);
        c.publish("b/x/1", format!("{round}").as_bytes(), 0, false);
        c.publish("b/x/2", &[0xc3, 0x28], 1, false);
        c.publish("b/y", b"{\"v\":1}", 0, false);
        std::thread::sleep(Duration::from_millis(40)); // spreading rows over files is the point
    }
    c.publish("a/end", b"end", 1, false);
    c.publish("b/end", b"end", 1, false);
    let status = attic
        .wait_exit(T)
        .expect("attic stops after the last message");
    assert!(status.success(), "{}", attic.log());
    for stream in ["alpha", "beta"] {
        assert!(
            finished_files(&data.join(stream)).len() >= 3,
            "{stream}: several 1 s files"
        );
        assert!(
            part_files(&data.join(stream)).is_empty(),
            "{stream}: all finalised"
        );
    }

    let all = expected(&data);
    assert_eq!(all.len(), total as usize, "every message stored");
    assert!(all.iter().any(|r| r.retain) && all.iter().any(|r| r.payload.is_empty()));
    assert_eq!(all.iter().filter(|r| r.topic.ends_with("end")).count(), 2);
    let cfg = attic.config_path().to_path_buf();

    // Everything.
    check_all_formats(&dir, &cfg, &[], &all, "all");

    // A window in RFC 3339 (from, inclusive) and unix seconds (to, exclusive).
    let from = all[all.len() / 4].ts;
    let to = all[3 * all.len() / 4].ts;
    let from_text = jiff::Timestamp::from_microsecond(from)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    let to_text = format!("{}.{:06}", to / 1_000_000, to % 1_000_000);
    let want: Vec<Out> = all
        .iter()
        .filter(|r| r.ts >= from && r.ts < to)
        .cloned()
        .collect();
    assert!(!want.is_empty() && want.len() < all.len());
    check_all_formats(
        &dir,
        &cfg,
        &["--from", &from_text, "--to", &to_text],
        &want,
        "window",
    );

    // Relative times: the whole recording is within the last hour, none of
    // it older than an hour; a date far back is an empty end.
    assert_rows(
        &parse_jsonl(&export(&dir, &cfg, &["--from", "-1h"]).stdout),
        &all,
        "relative",
    );
    assert_rows(
        &parse_jsonl(&export(&dir, &cfg, &["--to", "-1h"]).stdout),
        &[],
        "relative to",
    );
    assert_rows(
        &parse_jsonl(&export(&dir, &cfg, &["--to", "2000-01-01"]).stdout),
        &[],
        "date",
    );

    // Topic filters and stream choice.
    let want: Vec<Out> = all
        .iter()
        .filter(|r| r.topic.starts_with("b/x/") || r.topic == "a/empty")
        .cloned()
        .collect();
    check_all_formats(
        &dir,
        &cfg,
        &["--topic", "b/x/+", "--topic", "a/empty"],
        &want,
        "topics",
    );
    let want: Vec<Out> = all.iter().filter(|r| r.stream == "beta").cloned().collect();
    check_all_formats(&dir, &cfg, &["--stream", "beta"], &want, "stream");
    // Whole unix seconds as --from.
    let from_s = from / 1_000_000;
    let want: Vec<Out> = all
        .iter()
        .filter(|r| r.stream == "alpha" && r.topic == "a/bin" && r.ts >= from_s * 1_000_000)
        .cloned()
        .collect();
    assert!(!want.is_empty());
    let from_s = from_s.to_string();
    let args = ["--stream", "alpha", "--topic", "a/bin", "--from", &from_s];
    check_all_formats(&dir, &cfg, &args, &want, "stream-topic");

    // The output extension picks the format.
    let db = dir.join("by-extension.sqlite");
    export(&dir, &cfg, &["--output", db.to_str().unwrap()]);
    assert_rows(&read_sqlite(&db), &all, "by extension");
    assert!(!dir.join("by-extension.sqlite.incomplete").exists());
}

#[test]
fn include_open_reads_committed_rows_while_attic_keeps_storing() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("export-open");
    let data = dir.join("data");
    // One-hour files: everything stays in `.part` files while Attic runs.
    let mut attic = start_attic(&dir, &data, broker.port(), 3_600);
    let cfg = attic.config_path().to_path_buf();
    let port = broker.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // Under emulation (Raspberry Pi targets in CI) a debug build exports a
    // few thousand rows a second: a gentler load keeps each export short.
    let batch = if std::env::var_os("ATTIC_TEST_RUNNER").is_some() {
        2
    } else {
        20
    };
    let publisher = std::thread::spawn(move || {
        let mut c = TestClient::connect(port, "pub-open");
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            c.publish("a/n", n.to_string().as_bytes(), 1, false);
            c.publish("b/n", n.to_string().as_bytes(), 0, false);
            n += 1;
            if n % batch == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        c.publish("a/n", b"last", 1, false);
        n
    });
    wait_for_rows(&data, 200, T);

    // Without --include-open there is nothing finished yet.
    let none = export(&dir, &cfg, &[]);
    assert!(none.stdout.is_empty());
    // ... and it says so, and what to do.
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("attic export: 0 rows written; ")
            && err.contains("skipped (being written; --include-open adds their committed rows)"),
        "{err}"
    );
    let mut seen = Vec::new();
    for _ in 0..5 {
        let out = export(&dir, &cfg, &["--include-open"]);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("skipped"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = parse_jsonl(&out.stdout);
        assert!(
            rows.len() >= seen.len(),
            "each export sees at least as much as the one before"
        );
        seen = rows;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = publisher.join().unwrap();
    wait_until(T, "the last message stored", || {
        stored_with(&data, "payload = CAST('last' AS BLOB)") == 1
    });
    attic.stop_clean();
    assert!(
        !attic.log().contains("WARN") && !attic.log().contains("ERROR"),
        "{}",
        attic.log()
    );

    // Everything is stored, and what the last export saw is exactly the
    // stored rows of each stream up to some point (committed rows only).
    let all = expected(&data);
    let alpha = all.iter().filter(|r| r.stream == "alpha").count();
    assert_eq!(
        alpha as u64,
        sent + 1,
        "every QoS 1 message stored, \"last\" included"
    );
    assert!(seen.iter().filter(|r| r.stream == "alpha").count() < alpha);
    for stream in ["alpha", "beta"] {
        let stored: Vec<&Out> = all.iter().filter(|r| r.stream == stream).collect();
        let got: Vec<&Out> = seen.iter().filter(|r| r.stream == stream).collect();
        assert!(!got.is_empty() && got.len() <= stored.len());
        assert_eq!(
            got,
            stored[..got.len()],
            "{stream}: a prefix of the stored rows"
        );
    }
}

#[test]
fn bad_times_filters_streams_and_configs_exit_with_one_clear_line() {
    let dir = TempDir::new("export-bad");
    let data = dir.join("data");
    let cfg = dir.join("attic.yaml");
    std::fs::write(&cfg, config(&data, 1883, 1)).unwrap();
    let cfg = cfg.to_str().unwrap();
    for (args, code, needle) in [
        (
            &["--from", "yesterday"][..],
            2,
            "invalid time \"yesterday\"",
        ),
        (&["--to", "2026-02-30"], 2, "invalid time"),
        (&["--topic", "a/#/b"], 2, "invalid topic filter \"a/#/b\""),
        (&["--topic", "a+"], 2, "invalid topic filter"),
        (&["--stream", "nope"], 2, "no stream folder \"nope\""),
        (&["--format", "xml"], 2, "unknown format"),
        (&["--from", "-1h", "--to", "-2h"], 2, "empty time window"),
    ] {
        let mut all = vec!["export", "--config", cfg];
        all.extend_from_slice(args);
        let out = run_attic_in(&dir, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "data-folder: d\nstreams: 3\n").unwrap();
    let out = run_attic_in(&dir, &["export", "--config", bad.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A data folder that cannot be read is an I/O error.
    std::fs::create_dir_all(data.join("alpha")).unwrap();
    std::fs::write(data.join("alpha/2026-01-01"), "not a folder").unwrap();
    std::fs::create_dir_all(data.join("beta/2026-01-01")).unwrap();
    std::fs::write(
        data.join("beta/2026-01-01/1767225600000000.sqlite"),
        "not sqlite",
    )
    .unwrap();
    let out = run_attic_in(&dir, &["export", "--config", cfg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1767225600000000.sqlite"));
}
