//! `attic export` throughput and peak memory, side by side with the
//! `sqlite3` shell dumping the same rows with `.mode json`.
//!
//! Data: 1,000,000 rows over 200 files (2 streams x 100 files of 5,000
//! rows, written by Attic's own writer, interleaved in time so the merge
//! works across streams), generated once into `target/bench-export/`.
//! Each command runs under `/usr/bin/time` (peak RSS of the command alone,
//! not of this process). Memory flatness: the same export over a window of
//! 10 % of the rows.
//!
//! Parquet and decoding (skipped with `EXPORT_DECODE=0`): `--format
//! parquet` to one file and to `--output-dir` partitions, with two typed
//! `--field`s, with one inferred (two passes), jsonl with `--decode json`;
//! the Parquet size against the finished SQLite files it came from; and,
//! where the `duckdb` Python package and its sqlite extension
//! (`pip install duckdb==1.4.4 duckdb-ext-sqlite`) import, DuckDB turning
//! the same files into one zstd Parquet file through its SQLite reader.
//!
//! Run: `cargo build --release && cargo bench --bench export`
//! (`ATTIC_BIN` overrides the binary; `EXPORT_ROWS` the row count).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use attic::config::Durability;
use attic::message::Message;
use attic::store::writer::{FileMeta, Writer};

const FILES_PER_STREAM: u64 = 100;
const STREAMS: [&str; 2] = ["north", "south"];
/// 2026-11-27T00:00:00Z.
const T0: i64 = 1_764_201_600_000_000;
/// Rotation period of the generated files.
const PERIOD_S: u64 = 6;

fn locate_attic() -> PathBuf {
    if let Ok(p) = std::env::var("ATTIC_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("attic");
    if !bin.exists() {
        eprintln!(
            "export: {} is missing; build it first: cargo build --release",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

/// Writes the data set unless a complete one is there; returns the span.
fn generate(data: &Path, rows: u64) -> (i64, i64) {
    let per_stream = rows / STREAMS.len() as u64;
    // Rows of a stream are `step` apart; the streams are offset by half a step.
    let period_us = i64::try_from(PERIOD_S).unwrap() * 1_000_000;
    let step =
        period_us * i64::try_from(FILES_PER_STREAM).unwrap() / i64::try_from(per_stream).unwrap();
    let span = (T0, T0 + step * i64::try_from(per_stream).unwrap());
    let marker = data.join(format!("complete-{rows}"));
    if marker.exists() {
        return span;
    }
    let _ = std::fs::remove_dir_all(data);
    eprintln!("export: generating {rows} rows in {}", data.display());
    for (s, name) in STREAMS.iter().enumerate() {
        let meta = FileMeta {
            stream_folder: (*name).to_owned(),
            topics: vec!["#".to_owned()],
            broker: "127.0.0.1:1883".to_owned(),
            host: "bench".to_owned(),
            mqtt5: false,
        };
        let mut w = Writer::new(
            data.join(name),
            Duration::from_secs(PERIOD_S),
            Durability::Normal,
            meta,
        );
        for i in 0..per_stream {
            let ts = T0 + i64::try_from(i).unwrap() * step + i64::try_from(s).unwrap() * step / 2;
            let payload: Vec<u8> = if i % 10 == 9 {
                (0..48u8).map(|b| b.wrapping_mul(37) ^ 0x80).collect()
            } else {
                format!(
                    "{{\"seq\":{i},\"temperature\":{}.{},\"unit\":\"C\",\"ok\":true}}",
                    i % 40,
                    i % 10
                )
                .into_bytes()
            };
            w.insert(&Message {
                timestamp_us: ts,
                topic: format!("site/{name}/sensor/{}/value", i % 50),
                payload: payload.into(),
                qos: u8::try_from(i % 2).unwrap(),
                retain: false,
                properties: None,
            })
            .unwrap();
            if i % 5_000 == 4_999 {
                w.commit().unwrap();
            }
        }
        w.rotate().unwrap();
    }
    std::fs::write(&marker, b"").unwrap();
    span
}

struct Measured {
    wall_s: f64,
    cpu_s: f64,
    peak_kib: u64,
}

/// Runs `cmd` under `/usr/bin/time`; stdin from `stdin` if given.
fn measure(what: &str, mut cmd: Command, stdin: Option<&Path>) -> Measured {
    let times =
        std::env::temp_dir().join(format!("attic-export-bench-{}.time", std::process::id()));
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&times)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(p) = stdin {
        timed.stdin(std::fs::File::open(p).unwrap());
    }
    cmd = timed;
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&times).unwrap();
    let f: Vec<&str> = text.lines().last().unwrap().split_whitespace().collect();
    let secs = |v: &str| -> f64 { v.parse().unwrap() };
    Measured {
        wall_s: secs(f[0]),
        cpu_s: secs(f[1]) + secs(f[2]),
        peak_kib: f[3].parse().unwrap(),
    }
}

fn report(what: &str, rows: u64, m: &Measured) {
    println!(
        "{what:<34} {rows:>9} rows  wall {:>7.3} s {:>9.0} rows/s  cpu {:>6.3} s {:>9.0} rows/s  peak {:>5.1} MB",
        m.wall_s,
        rows as f64 / m.wall_s.max(1e-6),
        m.cpu_s,
        rows as f64 / m.cpu_s.max(1e-6),
        m.peak_kib as f64 / 1024.0
    );
}

fn main() {
    let rows: u64 = std::env::var("EXPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let attic = locate_attic();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench-export");
    let data = root.join("data");
    let (start, end) = generate(&data, rows);
    let cfg = root.join("attic.yaml");
    let mut yaml = format!("data-folder: \"{}\"\nstreams:\n", data.display());
    for s in STREAMS {
        yaml.push_str(&format!("  - topic: \"#\"\n    prefix: \"{s}\"\n"));
    }
    std::fs::write(&cfg, yaml).unwrap();
    let files: Vec<PathBuf> = STREAMS
        .iter()
        .flat_map(|s| {
            let mut v = Vec::new();
            for day in std::fs::read_dir(data.join(s)).unwrap() {
                for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
                    v.push(f.unwrap().path());
                }
            }
            v
        })
        .collect();
    println!(
        "export: {rows} rows in {} files, {}",
        files.len(),
        attic.display()
    );

    let export = |args: &[&str]| {
        let mut c = Command::new(&attic);
        c.arg("export").arg("--config").arg(&cfg).args(args);
        c
    };
    let db = root.join("out.sqlite");
    let tenth = (start + (end - start) / 10).to_string();
    let tenth_s = format!(
        "{}.{:06}",
        tenth.parse::<i64>().unwrap() / 1_000_000,
        tenth.parse::<i64>().unwrap() % 1_000_000
    );

    // Warm the page cache once so every command reads from memory.
    measure("warm-up", export(&["--output", "/dev/null"]), None);

    let jsonl = measure("attic jsonl", export(&["--output", "/dev/null"]), None);
    report("attic export --format jsonl", rows, &jsonl);
    let small = measure(
        "attic jsonl 10%",
        export(&["--output", "/dev/null", "--to", &tenth_s]),
        None,
    );
    report("attic export jsonl (10% window)", rows / 10, &small);
    let sqlite_small = measure(
        "attic sqlite 10%",
        export(&[
            "--format",
            "sqlite",
            "--output",
            db.to_str().unwrap(),
            "--to",
            &tenth_s,
        ]),
        None,
    );
    report("attic export sqlite (10% window)", rows / 10, &sqlite_small);
    let sqlite = measure(
        "attic sqlite",
        export(&["--format", "sqlite", "--output", db.to_str().unwrap()]),
        None,
    );
    report("attic export --format sqlite", rows, &sqlite);
    let csv = measure(
        "attic csv",
        export(&["--format", "csv", "--output", "/dev/null"]),
        None,
    );
    report("attic export --format csv", rows, &csv);

    let script = root.join("sqlite3-json.sql");
    let mut text = String::from(".mode json\n.output /dev/null\n");
    for f in &files {
        text.push_str(&format!(
            ".open --readonly {}\nSELECT * FROM data;\n",
            f.display()
        ));
    }
    std::fs::write(&script, text).unwrap();
    let shell = measure("sqlite3", Command::new("sqlite3"), Some(&script));
    report("sqlite3 .mode json (same rows)", rows, &shell);

    // The same rows into one SQLite file by hand with the shell (no merge
    // order, no stream column): the like-for-like reference of --format sqlite.
    let db2 = root.join("out-sqlite3.sqlite");
    let _ = std::fs::remove_file(&db2);
    let script = root.join("sqlite3-db.sql");
    let mut text = format!(
        ".open {}\nPRAGMA journal_mode = OFF;\nPRAGMA synchronous = OFF;\n\
         CREATE TABLE data (reception_timestamp INTEGER NOT NULL, topic TEXT NOT NULL, \
         payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL);\n",
        db2.display()
    );
    for f in &files {
        text.push_str(&format!(
            "ATTACH '{}' AS f;\nINSERT INTO data SELECT * FROM f.data;\nDETACH f;\n",
            f.display()
        ));
    }
    // (DETACH is refused inside a transaction: one autocommit per file.)
    text.push_str("CREATE INDEX topics ON data (topic);\n");
    std::fs::write(&script, text).unwrap();
    let shell_db = measure("sqlite3 db", Command::new("sqlite3"), Some(&script));
    report("sqlite3 ATTACH + INSERT (same rows)", rows, &shell_db);
    println!(
        "sqlite vs sqlite3 building a file: wall {:.2}x cpu {:.2}x",
        shell_db.wall_s / sqlite.wall_s.max(1e-6),
        shell_db.cpu_s / sqlite.cpu_s.max(1e-6),
    );

    if std::env::var("EXPORT_DECODE").as_deref() != Ok("0") {
        decoding(&root, &files, rows, &tenth_s, &export);
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "speed relative to sqlite3 (>1 = faster): jsonl wall {:.2}x cpu {:.2}x; sqlite wall {:.2}x cpu {:.2}x",
        shell.wall_s / jsonl.wall_s.max(1e-6),
        shell.cpu_s / jsonl.cpu_s.max(1e-6),
        shell.wall_s / sqlite.wall_s.max(1e-6),
        shell.cpu_s / sqlite.cpu_s.max(1e-6),
    );
    println!(
        "peak memory 10% vs 100% of the rows: jsonl {:.1} vs {:.1} MB, sqlite {:.1} vs {:.1} MB; load average {}",
        small.peak_kib as f64 / 1024.0,
        jsonl.peak_kib as f64 / 1024.0,
        sqlite_small.peak_kib as f64 / 1024.0,
        sqlite.peak_kib as f64 / 1024.0,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// DuckDB converting `files` to one Parquet file through its SQLite
/// reader, from the wheel-shipped extension (no download).
const DUCKDB_CONVERT: &str = r#"
import sys, os, duckdb, duckdb_ext
ext = os.path.join(list(duckdb_ext.__path__)[0], "extensions", "v" + duckdb.__version__, "linux_amd64", "sqlite_scanner.duckdb_extension")
c = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
c.execute(f"LOAD '{ext}'")
files = open(sys.argv[1]).read().split()
union = " UNION ALL ".join(f"SELECT * FROM sqlite_scan('{f}', 'data')" for f in files)
c.execute(f"COPY ({union}) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
"#;

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn tree_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            let path = e.path();
            total += if path.is_dir() {
                tree_size(&path)
            } else {
                size(&path)
            };
        }
    }
    total
}

fn decoding(
    root: &Path,
    files: &[PathBuf],
    rows: u64,
    tenth_s: &str,
    export: &dyn Fn(&[&str]) -> Command,
) {
    let sqlite_bytes: u64 = files.iter().map(|f| size(f)).sum();
    let pq = root.join("out.parquet");
    let p = pq.to_str().unwrap();
    let plain = measure("attic parquet", export(&["--output", p]), None);
    report("attic export --format parquet", rows, &plain);
    let plain_bytes = size(&pq);
    let small = measure(
        "attic parquet 10%",
        export(&["--output", p, "--to", tenth_s]),
        None,
    );
    report("attic export parquet (10% window)", rows / 10, &small);
    let typed = measure(
        "attic parquet + fields",
        export(&[
            "--output",
            p,
            "--field",
            "temperature=/temperature:f64",
            "--field",
            "seq=/seq:i64",
        ]),
        None,
    );
    report("attic parquet + 2 typed --field", rows, &typed);
    let fields_bytes = size(&pq);
    let inferred = measure(
        "attic parquet + inferred field",
        export(&["--output", p, "--field", "temperature=/temperature"]),
        None,
    );
    report("attic parquet + 1 inferred --field", rows, &inferred);
    let json = measure(
        "attic jsonl --decode json",
        export(&["--output", "/dev/null", "--decode", "json"]),
        None,
    );
    report("attic export jsonl --decode json", rows, &json);
    let lake = root.join("lake");
    let _ = std::fs::remove_dir_all(&lake);
    let hive = measure(
        "attic parquet --output-dir",
        export(&["--output-dir", lake.to_str().unwrap()]),
        None,
    );
    report("attic export --output-dir (hive)", rows, &hive);
    println!(
        "parquet size vs the {} finished SQLite files ({:.1} MB): {:.3}x (payload kept), {:.3}x (payload + 2 fields), hive {:.3}x",
        files.len(),
        sqlite_bytes as f64 / 1e6,
        plain_bytes as f64 / sqlite_bytes as f64,
        fields_bytes as f64 / sqlite_bytes as f64,
        tree_size(&lake) as f64 / sqlite_bytes as f64,
    );
    println!(
        "parquet peak memory 10% vs 100% of the rows: {:.1} vs {:.1} MB",
        small.peak_kib as f64 / 1024.0,
        plain.peak_kib as f64 / 1024.0
    );

    let probe = Command::new("python3")
        .args(["-c", "import duckdb, duckdb_ext"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("duckdb: skipped (pip install duckdb==1.4.4 duckdb-ext-sqlite)");
        return;
    }
    let list = root.join("files.txt");
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, names.join("\n")).unwrap();
    let out = root.join("duckdb.parquet");
    let mut c = Command::new("python3");
    c.arg("-c").arg(DUCKDB_CONVERT).arg(&list).arg(&out);
    let duck = measure("duckdb", c, None);
    report("duckdb sqlite_scan -> parquet zstd", rows, &duck);
    println!(
        "duckdb parquet {:.3}x the SQLite files; attic parquet vs duckdb (>1 = faster): wall {:.2}x cpu {:.2}x",
        size(&out) as f64 / sqlite_bytes as f64,
        duck.wall_s / plain.wall_s.max(1e-6),
        duck.cpu_s / plain.cpu_s.max(1e-6),
    );
}
