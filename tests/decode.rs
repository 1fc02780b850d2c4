//! `attic export` decoding and Parquet, over files written by Attic's own
//! writer: Avro payloads made by fastavro (an independent implementation)
//! in all three framings with two schema versions; JSON fields with
//! inferred types and nulls; a payload that does not decode kept with its
//! `decode_error`; MQTT 5 properties through jsonl, csv and sqlite; Parquet
//! read back by pyarrow and DuckDB; hive partitions read by DuckDB as one
//! table, and a second export of the same window giving the same files;
//! bad schema files and pointers exiting 2 with one line.
//!
//! Python parts skip with one printed line when `fastavro`, `pyarrow` or
//! `duckdb` cannot be imported (`pip install pyarrow duckdb fastavro`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ::attic::config::Durability;
use ::attic::message::Message;
use ::attic::store::writer::{FileMeta, Writer};
use common::*;
use serde_json::{Value, json};

/// 2026-11-27T23:59:58Z: two rows on each side of a UTC midnight.
const T0: i64 = 1_795_823_998_000_000;

fn config(data: &Path) -> String {
    format!(
        r##"data-folder: "{data}"
streams:
  - mqtt-broker-port: 1883
    topic: "#"
    prefix: "sensors"
  - mqtt-broker-port: 1883
    topic: "#"
    prefix: "v5"
    mqtt-version: 5
"##,
        data = data.display()
    )
}

/// Writes `rows` (timestamp, topic, payload, properties) into finished
/// files of stream folder `stream` under `data`, one file per second.
fn write_rows(data: &Path, stream: &str, mqtt5: bool, rows: &[(i64, &str, Vec<u8>, Option<&str>)]) {
    let meta = FileMeta {
        stream_folder: stream.to_owned(),
        topics: vec!["#".to_owned()],
        broker: "127.0.0.1:1883".to_owned(),
        host: "test".to_owned(),
        mqtt5,
    };
    let mut w = Writer::new(
        data.join(stream),
        Duration::from_secs(1),
        Durability::Normal,
        meta,
    );
    for (i, (ts, topic, payload, props)) in rows.iter().enumerate() {
        w.insert(&Message {
            timestamp_us: *ts,
            topic: (*topic).to_owned(),
            payload: payload.clone().into(),
            qos: u8::try_from(i % 3).unwrap(),
            retain: i % 2 == 1,
            properties: props.map(str::to_owned),
        })
        .unwrap();
        w.commit().unwrap();
    }
    w.rotate().unwrap();
}

/// A folder with the config file and an empty data folder.
fn setup(label: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(label);
    let data = dir.subdir("data");
    let cfg = dir.join("attic.yaml");
    std::fs::write(&cfg, config(&data)).unwrap();
    (dir, cfg, data)
}

fn export_raw(dir: &TempDir, cfg: &Path, args: &[&str]) -> Output {
    let mut all = vec!["export", "--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    run_attic_in(dir, &all)
}

fn export(dir: &TempDir, cfg: &Path, args: &[&str]) -> Output {
    let out = export_raw(dir, cfg, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "attic export {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn jsonl(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `python3 -c code args`; `None` (after one printed line) when one
/// of `modules` cannot be imported.
fn python(modules: &[&str], code: &str, args: &[&str]) -> Option<String> {
    let probe = Command::new("python3")
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!(
            "skipped: python3 with {} is needed (pip install pyarrow duckdb fastavro)",
            modules.join(", ")
        );
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn avro_payloads_of_an_independent_writer_decode_in_all_three_framings_with_two_schema_versions() {
    let (dir, cfg, data) = setup("decode-avro");
    let schemas = dir.subdir("schemas");
    let out = Command::new("python3")
        .arg(python_script("avro_payloads.py"))
        .arg(&schemas)
        .output()
        .unwrap();
    if out.status.code() == Some(3) {
        println!("skipped: python3 with fastavro is needed (pip install fastavro)");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<(i64, &str, Vec<u8>, Option<&str>)> = made
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                T0 + i64::try_from(i).unwrap() * 100_000,
                m["topic"].as_str().unwrap(),
                hex(m["hex"].as_str().unwrap()),
                None,
            )
        })
        .collect();
    write_rows(&data, "sensors", false, &rows);

    // The schema folder: Confluent ids and single-object fingerprints.
    let dir_arg = schemas.to_str().unwrap();
    let got = jsonl(&export(
        &dir,
        &cfg,
        &[
            "--decode",
            "avro",
            "--avro-schemas",
            dir_arg,
            "--topic",
            "confluent/#",
            "--topic",
            "single/#",
        ],
    ));
    let framed: Vec<&Value> = made
        .iter()
        .filter(|m| !m["topic"].as_str().unwrap().starts_with("bare/"))
        .collect();
    assert_eq!(got.len(), framed.len(), "no row is dropped");
    for (g, m) in got.iter().zip(&framed) {
        assert_eq!(g["topic"], m["topic"]);
        assert_eq!(g["value"], m["expected"], "{}", m["topic"]);
        let failed = m["expected"].is_null();
        assert_eq!(g.get("decode_error").is_some(), failed, "{g}");
    }
    let err = |topic: &str| {
        got.iter().find(|g| g["topic"] == topic).unwrap()["decode_error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        err("confluent/missing").contains("schema id 9: no file"),
        "{}",
        err("confluent/missing")
    );
    assert!(
        err("confluent/corrupt").starts_with("Avro (2.avsc): "),
        "{}",
        err("confluent/corrupt")
    );

    // One schema file: bare datums, and single-object payloads of it only.
    let v1 = schemas.join("1.avsc");
    let got = jsonl(&export(
        &dir,
        &cfg,
        &[
            "--decode",
            "avro",
            "--avro-schema",
            v1.to_str().unwrap(),
            "--topic",
            "bare/#",
            "--topic",
            "single/#",
        ],
    ));
    let by_topic = |t: &str| got.iter().find(|g| g["topic"] == t).unwrap();
    assert_eq!(by_topic("bare/v1")["value"], json!({"id": 3, "t": 0.5}));
    assert_eq!(by_topic("single/v1")["value"], json!({"id": 1, "t": 21.5}));
    assert!(
        by_topic("single/v2")["decode_error"]
            .as_str()
            .unwrap()
            .contains("fingerprint"),
        "{}",
        by_topic("single/v2")
    );
}

/// Sensor JSON rows: integers, floats, a missing field, a misfit, a
/// corrupt payload.
fn sensor_rows() -> Vec<(i64, &'static str, Vec<u8>, Option<&'static str>)> {
    let p = |s: &str| s.as_bytes().to_vec();
    vec![
        (
            T0,
            "s/1",
            p(r#"{"t": 21.5, "n": 1, "ok": true, "name": "a", "deep": {"v": [5]}}"#),
            None,
        ),
        (
            T0 + 500_000,
            "s/2",
            p(r#"{"t": 22, "n": 2, "ok": false, "name": 7}"#),
            None,
        ),
        (T0 + 1_000_000, "s/1", p("{broken"), None),
        (T0 + 2_500_000, "s/3", p(r#"{"t": "hot", "n": 3.5}"#), None),
        (T0 + 3_000_000, "s/1", p(r#"{"n": 4, "ok": null}"#), None),
    ]
}

#[test]
fn json_fields_infer_their_types_and_are_null_where_missing_or_misfit() {
    let (dir, cfg, data) = setup("decode-json");
    write_rows(&data, "sensors", false, &sensor_rows());
    let out = export(
        &dir,
        &cfg,
        &[
            "--field",
            "t=/t:f64",
            "--field",
            "n=/n",
            "--field",
            "ok=/ok",
            "--field",
            "name=/name",
            "--field",
            "v=/deep/v/0:i64",
            "--field",
            "deep=/deep:json",
        ],
    );
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 5, "the corrupt payload keeps its row");
    let col = |k: &str| rows.iter().map(|r| r[k].clone()).collect::<Vec<_>>();
    assert_eq!(
        col("t"),
        [
            json!(21.5),
            json!(22.0),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    // n: 1, 2, 3.5, 4 -> inferred f64 (not every one an integer).
    assert_eq!(
        col("n"),
        [json!(1.0), json!(2.0), Value::Null, json!(3.5), json!(4.0)]
    );
    // ok: booleans and a null -> bool.
    assert_eq!(
        col("ok"),
        [
            json!(true),
            json!(false),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    // name: a string and a number -> str, the number as its JSON text.
    assert_eq!(
        col("name"),
        [
            json!("a"),
            json!("7"),
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(col("v")[0], json!(5));
    assert_eq!(col("deep")[0], json!(r#"{"v":[5]}"#));
    assert!(rows[2]["value"].is_null());
    assert!(
        rows[2]["decode_error"]
            .as_str()
            .unwrap()
            .starts_with("JSON: ")
    );
    assert!(
        rows.iter()
            .filter(|r| r.get("decode_error").is_some())
            .count()
            == 1
    );
    assert_eq!(rows[0]["value"]["t"], json!(21.5));
    assert_eq!(
        rows[0]["payload"],
        json!(r#"{"t": 21.5, "n": 1, "ok": true, "name": "a", "deep": {"v": [5]}}"#)
    );

    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("attic export: 5 rows written, 4 decoded, 1 failed (first: 2026-11-27T23:59:59.000000Z sensors s/1: JSON: "),
        "{stderr}"
    );
    assert!(
        lines[0].contains("; nulls: t=3, n=1, ok=3, name=3, v=4, deep=4"),
        "{stderr}"
    );
    // The stream that recorded nothing is named, not silently skipped.
    assert!(lines[0].ends_with("/data/v5"), "{stderr}");

    // The same in CSV: typed text, empty for null.
    let csv_out = export(&dir, &cfg, &["--format", "csv", "--field", "n=/n:i64"]);
    let text = String::from_utf8(csv_out.stdout).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[8..], ["properties", "value", "decode_error", "n"]);
    let n: Vec<String> = r.records().map(|x| x.unwrap()[11].to_owned()).collect();
    assert_eq!(n, ["1", "2", "", "", "4"]);
}

#[test]
fn mqtt5_properties_round_trip_through_jsonl_csv_and_sqlite() {
    let (dir, cfg, data) = setup("decode-props");
    let props = r#"{"content_type":"application/json","user_properties":[["k","v \"q\""]]}"#;
    write_rows(
        &data,
        "v5",
        true,
        &[
            (T0, "p/1", b"1".to_vec(), Some(props)),
            (T0 + 10, "p/2", b"2".to_vec(), None),
        ],
    );
    write_rows(
        &data,
        "sensors",
        false,
        &[(T0 + 20, "q/1", b"3".to_vec(), None)],
    );

    let rows = jsonl(&export(&dir, &cfg, &[]));
    assert_eq!(rows.len(), 3);
    let parsed: Value = serde_json::from_str(props).unwrap();
    assert_eq!(rows[0]["properties"], parsed);
    assert!(rows[1].get("properties").is_none() && rows[2].get("properties").is_none());

    let text = String::from_utf8(export(&dir, &cfg, &["--format", "csv"]).stdout).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(&recs[0][8], props);
    assert_eq!((&recs[1][8], &recs[2][8]), ("", ""));

    let db = dir.join("out.sqlite");
    export(&dir, &cfg, &["--output", db.to_str().unwrap()]);
    let c = common::files::open_ro(&db).unwrap();
    let got: Vec<Option<String>> = c
        .prepare("SELECT properties FROM data ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, [Some(props.to_owned()), None, None]);
}

const PARQUET_CHECK: &str = r#"
import sys, json, pyarrow.parquet as pq, duckdb
t = pq.read_table(sys.argv[1])
s = t.schema
out = {"types": {f.name: str(f.type) for f in s}, "rows": t.num_rows}
df = t.to_pandas()
out["payload_hex"] = [bytes(p).hex() for p in df["payload"]]
out["ts"] = [int(x.value // 1000) for x in df["reception_timestamp"]]
out["n"] = [None if x != x else x for x in df["n"].tolist()]
out["decode_error"] = [x if isinstance(x, str) else None for x in df["decode_error"].tolist()]
con = duckdb.connect()
out["duckdb_types"] = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{sys.argv[1]}')").fetchall()}
out["duckdb_rows"] = con.execute(f"SELECT count(*) FROM read_parquet('{sys.argv[1]}')").fetchone()[0]
out["duckdb_t_sum"] = con.execute(f"SELECT sum(t) FROM read_parquet('{sys.argv[1]}')").fetchone()[0]
print(json.dumps(out))
"#;

#[test]
fn parquet_reads_back_in_pyarrow_and_duckdb_with_the_documented_column_types() {
    let (dir, cfg, data) = setup("decode-parquet");
    let mut rows = sensor_rows();
    rows.push((T0 + 3_500_000, "bin", vec![0, 159, 146, 150, 255], None));
    write_rows(&data, "sensors", false, &rows);
    let file = dir.join("out.parquet");
    let f = file.to_str().unwrap();
    export(
        &dir,
        &cfg,
        &["--output", f, "--field", "t=/t:f64", "--field", "n=/n"],
    );
    let Some(text) = python(&["pyarrow", "duckdb"], PARQUET_CHECK, &[f]) else {
        return;
    };
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["rows"], json!(6));
    assert_eq!(
        got["types"]["reception_timestamp"],
        json!("timestamp[us, tz=UTC]")
    );
    assert_eq!(got["types"]["stream"], json!("string"));
    assert_eq!(got["types"]["topic"], json!("string"));
    assert_eq!(got["types"]["payload"], json!("binary"));
    assert_eq!(got["types"]["qos"], json!("int32"));
    assert_eq!(got["types"]["retain"], json!("bool"));
    assert_eq!(got["types"]["properties"], json!("string"));
    assert_eq!(got["types"]["value"], json!("string"));
    assert_eq!(got["types"]["t"], json!("double"));
    assert_eq!(got["types"]["n"], json!("double"));
    assert_eq!(
        got["duckdb_types"]["reception_timestamp"],
        json!("TIMESTAMP WITH TIME ZONE")
    );
    assert_eq!(got["duckdb_types"]["payload"], json!("BLOB"));
    assert_eq!(got["duckdb_rows"], json!(6));
    assert_eq!(got["duckdb_t_sum"], json!(43.5));
    let expect_hex: Vec<String> = rows
        .iter()
        .map(|r| r.2.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(
        got["payload_hex"],
        json!(expect_hex),
        "payload byte for byte"
    );
    let expect_ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(got["ts"], json!(expect_ts));
    assert_eq!(got["n"], json!([1.0, 2.0, null, 3.5, 4.0, null]));
    let errors = got["decode_error"].as_array().unwrap();
    assert!(errors[2].as_str().unwrap().starts_with("JSON: ") && errors[5].is_string());
    assert!(errors[0].is_null());
}

const HIVE_CHECK: &str = r#"
import sys, json, duckdb
con = duckdb.connect()
q = f"SELECT stream, CAST(date AS VARCHAR), count(*) FROM read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
print(json.dumps([list(r) for r in con.execute(q).fetchall()]))
"#;

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = list_files(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn hive_partitions_are_one_duckdb_table_and_a_second_export_of_the_window_gives_the_same_files() {
    let (dir, cfg, data) = setup("decode-hive");
    let sec = 1_000_000;
    // sensors: 2 rows on 2026-11-27, 3 on 2026-11-28; v5: 1 and 1.
    let s: Vec<(i64, &str, Vec<u8>, Option<&str>)> = (0..5)
        .map(|i| {
            (
                T0 + i * sec,
                "s/x",
                format!("{{\"t\":{i}}}").into_bytes(),
                None,
            )
        })
        .collect();
    write_rows(&data, "sensors", false, &s);
    write_rows(
        &data,
        "v5",
        true,
        &[
            (T0 + 1, "p", b"{}".to_vec(), Some("{}")),
            (T0 + 3 * sec, "p", b"{}".to_vec(), None),
        ],
    );
    let lake = dir.subdir("lake");
    let l = lake.to_str().unwrap();
    // Something that is not the export's: must survive.
    std::fs::create_dir_all(lake.join("stream=sensors/date=2026-11-27")).unwrap();
    std::fs::write(
        lake.join("stream=sensors/date=2026-11-27/notes.txt"),
        b"mine",
    )
    .unwrap();
    let window = [
        "--from",
        "2026-11-27T12:00:00Z",
        "--to",
        "2026-11-28T12:00:00Z",
    ];
    let mut args = vec!["--output-dir", l, "--field", "t=/t"];
    args.extend(window);
    export(&dir, &cfg, &args);
    let first = tree(&lake);
    let names: Vec<String> = first.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(
        names,
        [
            format!("stream=sensors/date=2026-11-27/{}.parquet", T0),
            "stream=sensors/date=2026-11-27/notes.txt".to_owned(),
            format!("stream=sensors/date=2026-11-28/{}.parquet", T0 + 2 * sec),
            format!("stream=v5/date=2026-11-27/{}.parquet", T0 + 1),
            format!("stream=v5/date=2026-11-28/{}.parquet", T0 + 3 * sec),
        ]
    );

    // Again, the same window: the same files, byte for byte.
    export(&dir, &cfg, &args);
    assert_eq!(tree(&lake), first);

    // The same window with its first row gone (its file deleted, as
    // retention would): the partition's file is replaced by one with
    // another name, not kept beside it.
    let first_file = finished_files(&data.join("sensors"))
        .into_iter()
        .min()
        .unwrap();
    std::fs::remove_file(first_file).unwrap();
    let older = lake.join(format!("stream=sensors/date=2026-11-27/{T0}.parquet"));
    export(&dir, &cfg, &args);
    assert!(
        !older.exists(),
        "the earlier file of the window is replaced"
    );
    assert!(
        lake.join(format!(
            "stream=sensors/date=2026-11-27/{}.parquet",
            T0 + sec
        ))
        .exists()
    );
    assert!(
        lake.join("stream=sensors/date=2026-11-27/notes.txt")
            .exists()
    );

    let Some(text) = python(&["duckdb"], HIVE_CHECK, &[l]) else {
        return;
    };
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        got,
        json!([
            ["sensors", "2026-11-27", 1],
            ["sensors", "2026-11-28", 3],
            ["v5", "2026-11-27", 1],
            ["v5", "2026-11-28", 1]
        ])
    );
}

#[test]
fn bad_schema_files_and_pointers_exit_2_with_one_line_before_any_output() {
    let (dir, cfg, data) = setup("decode-bad");
    write_rows(&data, "sensors", false, &sensor_rows());
    let bad = dir.join("bad.avsc");
    std::fs::write(
        &bad,
        r#"{"type": "record", "name": "x", "fields": [{"name": "a", "type": "nope"}]}"#,
    )
    .unwrap();
    let schemas = dir.subdir("schemas");
    std::fs::write(schemas.join("1.avsc"), r#""int""#).unwrap();
    std::fs::write(schemas.join("2.avsc"), "{not json").unwrap();
    let out_file = dir.join("out.parquet");
    let o = out_file.to_str().unwrap();
    for (args, needle) in [
        (
            vec![
                "--decode",
                "avro",
                "--avro-schema",
                bad.to_str().unwrap(),
                "-o",
                o,
            ],
            "bad.avsc: does not parse",
        ),
        (
            vec![
                "--decode",
                "avro",
                "--avro-schemas",
                schemas.to_str().unwrap(),
                "-o",
                o,
            ],
            "2.avsc: does not parse",
        ),
        (
            vec![
                "--decode",
                "avro",
                "--avro-schema",
                "/nonexistent.avsc",
                "-o",
                o,
            ],
            "/nonexistent.avsc",
        ),
        (vec!["--field", "t=t", "-o", o], "is not a JSON Pointer"),
        (vec!["--field", "t=/a~x", "-o", o], "bad escape"),
        (vec!["--field", "t=/t:float", "-o", o], "unknown type"),
        (
            vec!["--format", "parquet"],
            "needs --output FILE or --output-dir DIR",
        ),
    ] {
        let out = export_raw(&dir, &cfg, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(
            !out_file.exists() && !dir.join("out.parquet.tmp").exists(),
            "{args:?}"
        );
    }
}
