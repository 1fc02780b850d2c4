//! Micro-benchmark of batched inserts (`cargo bench --bench insert`):
//! `attic::store::writer::Writer` storing 64-byte payloads over 50 topics,
//! 1000 rows per commit, into a file in a temporary folder; and of the two
//! halves of a rotation: the close on the loop (`Writer::close`) and the
//! finishing on the helper thread, with and without the fsync of the file
//! before its rename (`finalise_with`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use attic::config::Durability;
use attic::message::Message;
use attic::store::writer::{FileMeta, Writer, finalise_with};
use bytes::Bytes;
use divan::{Bencher, black_box};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    divan::main();
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "attic-insert-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Inserts and commits one batch of 1000 rows; throughput is in rows. The
/// file grows across iterations (as a real period's file does).
#[divan::bench(sample_count = 50, sample_size = 4)]
fn batch_of_1000_rows_64b_50_topics(bencher: Bencher) {
    batch(bencher, 1000);
}

/// The same with 50,000 rows per commit: QoS 0 at full speed, where one
/// transaction holds a whole `commit-interval-ms` of messages and its pages
/// no longer fit in SQLite's page cache.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn batch_of_50000_rows_64b_50_topics(bencher: Bencher) {
    batch(bencher, 50_000);
}

fn batch(bencher: Bencher, rows: usize) {
    let tmp = TempDir::new();
    let mut w = Writer::new(
        tmp.0.clone(),
        Duration::from_secs(3600 * 24),
        Durability::Normal,
        FileMeta {
            stream_folder: "bench".into(),
            topics: vec!["bench/#".into()],
            broker: "127.0.0.1:1883".into(),
            host: "bench".into(),
            mqtt5: false,
        },
    );
    let payload = Bytes::from(vec![b'x'; 64]);
    // Every row of a period belongs to one file: a fixed timestamp, so the
    // benchmark never rotates.
    let now_us = 1_700_000_000_000_000;
    let msgs: Vec<Message> = (0..rows)
        .map(|i| Message {
            timestamp_us: now_us,
            topic: format!("sensors/room{}/temp", i % 50),
            payload: payload.clone(),
            qos: 0,
            retain: false,
            properties: None,
        })
        .collect();
    bencher
        .counter(divan::counter::ItemsCount::new(rows))
        .bench_local(|| {
            for m in &msgs {
                w.insert(black_box(m)).unwrap();
            }
            w.commit().unwrap();
        });
    w.rotate().unwrap();
}

/// Rows in the file of the rotation benchmarks: one second at 20,000
/// msg/s, the ingest benchmark's rotation scenario.
const ROTATION_ROWS: usize = 20_000;

/// A writer with one open file holding [`ROTATION_ROWS`] committed rows,
/// in a folder of its own (kept alive by the returned guard).
fn full_writer() -> (TempDir, Writer) {
    let tmp = TempDir::new();
    let mut w = Writer::new(
        tmp.0.clone(),
        Duration::from_secs(3600 * 24),
        Durability::Normal,
        FileMeta {
            stream_folder: "bench".into(),
            topics: vec!["bench/#".into()],
            broker: "127.0.0.1:1883".into(),
            host: "bench".into(),
            mqtt5: false,
        },
    );
    let payload = Bytes::from(vec![b'x'; 64]);
    for i in 0..ROTATION_ROWS {
        w.insert(&Message {
            timestamp_us: 1_700_000_000_000_000,
            topic: format!("sensors/room{}/temp", i % 50),
            payload: payload.clone(),
            qos: 0,
            retain: false,
            properties: None,
        })
        .unwrap();
        if i % 1000 == 999 {
            w.commit().unwrap();
        }
    }
    w.commit().unwrap();
    (tmp, w)
}

/// The loop's half of a rotation: commit, closing meta, close (no
/// checkpoint, no fsync). This is the whole rotation stall of the loop.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn rotation_close_on_the_loop(bencher: Bencher) {
    bencher
        .with_inputs(full_writer)
        .bench_local_values(|(tmp, mut w)| {
            let part = w.close().unwrap();
            (tmp, part)
        });
}

/// The helper thread's half: checkpoint, leave WAL, close, then (`true`)
/// fsync the file, rename. `false` skips the fsync, to show what it costs.
#[divan::bench(args = [false, true], sample_count = 10, sample_size = 1)]
fn rotation_finish_on_the_helper_thread(bencher: Bencher, fsync: bool) {
    bencher
        .with_inputs(|| {
            let (tmp, mut w) = full_writer();
            let part = w.close().unwrap().unwrap();
            (tmp, part)
        })
        .bench_local_values(|(tmp, part)| {
            finalise_with(&part, Durability::Normal, fsync).unwrap();
            tmp
        });
}
