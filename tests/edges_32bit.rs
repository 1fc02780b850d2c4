//! The edges where a 32-bit Raspberry Pi OS build (armv7, 32-bit `time_t`
//! and `usize`) differs from a 64-bit one: periods at their configurable
//! limits, a rotation deadline after 2038, a file too large for 32 bits.
//!
//! Runs on every target; it is written for armv7 under qemu (see the
//! README's Raspberry Pi section), where the expected outcome follows the
//! target's `time_t` width. It must not assume the width of the machine it
//! was written on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::wait_for_finished_rows;
use common::*;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The largest rotation period the config accepts (`u32::MAX` seconds).
const LONGEST_PERIOD_S: u64 = 4_294_967_295;

/// The largest report period the config accepts (2^30 s, about 34 years;
/// `config::bounds`).
const LONGEST_REPORT_S: u64 = 1 << 30;

/// True where `time_t` is 32 bits (armv7-unknown-linux-gnueabihf).
fn time_t_is_32_bits() -> bool {
    std::mem::size_of::<libc::time_t>() == 4
}

/// One stream on `port`, rotating every `rotation_s`, reporting every
/// `report_s`.
fn config(data: &Path, port: u16, rotation_s: u64, report_s: u64) -> String {
    format!(
        "console-feedback-period-seconds: {report_s}\n\
         data-folder: \"{}\"\n\
         streams:\n  \
           - mqtt-broker-address: \"127.0.0.1\"\n    \
             mqtt-broker-port: {port}\n    \
             topic: \"e/#\"\n    \
             prefix: \"edge\"\n    \
             file-rotation-time-seconds: {rotation_s}\n    \
             commit-interval-ms: 100\n",
        data.display()
    )
}

/// Starts Attic and waits until its stream has subscribed.
fn start(yaml: &str, dir: &TempDir) -> Attic {
    let mut a = Attic::start(yaml, dir);
    a.wait_ready(T);
    a
}

#[test]
fn a_rotation_period_ending_after_2038_exits_78_where_time_t_is_32_bits_and_runs_elsewhere() {
    let dir = TempDir::new("edge-rot");
    let data = dir.join("data");
    // Its first end is 2106-02-07: beyond a 32-bit time_t.
    let yaml = config(&data, 1883, LONGEST_PERIOD_S, 60);
    let path = dir.join("long.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = run_attic(&["check", "--config", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    if time_t_is_32_bits() {
        assert_eq!(out.status.code(), Some(78), "{err}");
        let line = yaml
            .lines()
            .position(|l| l.contains("file-rotation-time-seconds"))
            .unwrap()
            + 1;
        assert!(
            err.lines()
                .any(|l| l.contains("streams[0].file-rotation-time-seconds")
                    && l.contains(&format!(":{line}:"))
                    && l.contains("2038-01-19")),
            "no line naming the key, line {line} and the limit:\n{err}"
        );
    } else {
        assert!(out.status.success(), "{err}");
    }
}

#[test]
fn a_year_long_rotation_and_the_longest_report_period_store_and_stop_cleanly() {
    // A year ends long before 2038, so its deadline fits every time_t; the
    // report period is a monotonic deadline about 34 years away.
    let broker = Mosquitto::start();
    let dir = TempDir::new("edge-long");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), 365 * 86_400, LONGEST_REPORT_S);
    let mut attic = start(&yaml, &dir);
    let mut c = TestClient::connect(broker.port(), "edge-pub");
    for i in 0..3 {
        c.publish("e/x", format!("{i}").as_bytes(), 1, false);
    }
    c.disconnect();
    wait_for_rows(&data, 3, T);
    attic.stop_clean();
    wait_for_finished_rows(&data, 3, T);
    assert!(part_files(&data).is_empty(), "{:?}", list_files(&data));
}

#[test]
fn a_part_file_of_exactly_4_gib_is_recovered_not_mistaken_for_an_empty_one() {
    // 4 GiB is 0 in the low 32 bits: a size held in a 32-bit usize would
    // make recovery delete the file as empty. The file is sparse (its rows
    // are in the first pages), so the test costs no disk.
    let broker = Mosquitto::start();
    let dir = TempDir::new("edge-4g");
    let data = dir.join("data");
    let yaml = config(&data, broker.port(), 3600, 60);
    let mut attic = start(&yaml, &dir);
    let mut c = TestClient::connect(broker.port(), "edge-pub");
    for i in 0..3 {
        c.publish("e/x", format!("{i}").as_bytes(), 1, false);
    }
    c.disconnect();
    wait_for_rows(&data, 3, T);
    attic.signal(libc::SIGKILL);
    attic.wait_exit(T).expect("killed");

    let parts = part_files(&data);
    assert_eq!(parts.len(), 1, "{:?}", list_files(&data));
    let part = &parts[0];
    // Fold the WAL into the file (closing the last connection removes it),
    // so the file's own size is all recovery has to go by.
    rusqlite::Connection::open(part)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut wal = part.as_os_str().to_owned();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists(), "{:?}", list_files(&data));
    let four_gib: u64 = 4 << 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(part)
        .unwrap()
        .set_len(four_gib)
        .unwrap();
    assert_eq!(std::fs::metadata(part).unwrap().len(), four_gib);

    let mut again = start(&yaml, &dir);
    again.wait_log_contains("recovered", T);
    again.stop_clean();
    assert!(part_files(&data).is_empty(), "{:?}", list_files(&data));
    let mut payloads: Vec<Vec<u8>> = all_rows(&data).into_iter().map(|r| r.payload).collect();
    payloads.sort();
    assert_eq!(payloads, [b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]);
}
