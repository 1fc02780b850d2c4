//! Storage in the field: a full disk and a read-only file system, against a
//! real mosquitto. Each test mounts a small file system of its own (a tmpfs,
//! an ext4 image on a loop device) and skips itself with one line when it
//! cannot (not root).
//!
//! What they show: a transaction SQLite rolled back is inserted again by
//! Attic itself (no reconnect, so a clean session loses nothing), nothing
//! is acknowledged before its commit, a failure is reported once, and
//! storing resumes by itself when the file system takes writes again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn config(data: &Path, port: u16, extra: &str) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    topic: \"f/#\"\n    prefix: \"f\"\n    commit-interval-ms: 100\n    qos: 1\n    keep-alive-seconds: 5\n",
        data.display()
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        y.push_str(&format!("    {}\n", line.trim()));
    }
    y
}

/// The decimal payloads stored in every file (finished or not).
fn stored_numbers(data: &Path) -> (BTreeSet<usize>, usize) {
    let mut set = BTreeSet::new();
    let mut rows = 0;
    for f in list_files(data) {
        let s = f.to_string_lossy();
        if !(s.ends_with(".sqlite") || s.ends_with(".sqlite.part")) {
            continue;
        }
        let Ok(con) = common::files::open_ro(&f) else {
            continue;
        };
        let Ok(mut st) = con.prepare("select payload from data") else {
            continue;
        };
        let Ok(found) = st.query_map([], |r| r.get::<_, Vec<u8>>(0)) else {
            continue;
        };
        for p in found.flatten() {
            rows += 1;
            if let Some(i) = std::str::from_utf8(&p).ok().and_then(|s| s.parse().ok()) {
                set.insert(i);
            }
        }
    }
    (set, rows)
}

fn missing(set: &BTreeSet<usize>, range: std::ops::Range<usize>) -> Vec<usize> {
    range.filter(|i| !set.contains(i)).take(20).collect()
}

/// The one stream of a `--summary` file.
fn summary_stream(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["streams"][0].clone()
}

fn mount(args: &[&str], path: &Path) -> bool {
    Command::new("mount")
        .args(args)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A file system mounted for the test; unmounted on drop.
struct Mounted {
    path: PathBuf,
}

impl Mounted {
    fn tmpfs(path: PathBuf, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(&path).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &path,
        )
        .then_some(Mounted { path })
    }

    /// A fresh ext4 image of `mb` MiB mounted on a loop device.
    fn ext4(image: &Path, path: PathBuf, mb: u32) -> Option<Mounted> {
        Mounted::ext4_with(image, path, mb, "loop")
    }

    /// [`Mounted::ext4`] with the mount options `opts`.
    fn ext4_with(image: &Path, path: PathBuf, mb: u32, opts: &str) -> Option<Mounted> {
        std::fs::create_dir_all(&path).unwrap();
        let made = Command::new("truncate")
            .args(["-s", &format!("{mb}M")])
            .arg(image)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("mkfs.ext4")
                .arg("-q")
                .arg(image)
                .status()
                .is_ok_and(|s| s.success());
        (made
            && Command::new("mount")
                .args(["-o", opts])
                .arg(image)
                .arg(&path)
                .status()
                .is_ok_and(|s| s.success()))
        .then_some(Mounted { path })
    }

    /// `mount -o remount,<how>`; true when the kernel accepted it.
    fn remount(&self, how: &str) -> bool {
        mount(&["-o", &format!("remount,{how}")], &self.path)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills a tmpfs while QoS 1 messages arrive, frees it, and checks that every
/// message is stored once space returns, with `lost` 0 and no reconnect.
fn a_full_disk_loses_nothing(clean_session: bool) {
    let label = if clean_session {
        "full-clean"
    } else {
        "full-persistent"
    };
    let dir = TempDir::new(label);
    let Some(disk) = Mounted::tmpfs(dir.join("disk"), "8m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let data = disk.path.join("data");
    let broker = Mosquitto::builder().max_queued_messages(100_000).start();
    let extra = format!(
        "clean-session: {clean_session}\nclient-id: \"attic-{label}\"\nfile-rotation-time-seconds: 3600"
    );
    // Keep-alive 1 s: the outage below lasts several keep-alives, while
    // Attic leaves the broker's bytes unread.
    let yaml = config(&data, broker.port(), &extra)
        .replace("keep-alive-seconds: 5", "keep-alive-seconds: 1");
    // Fill the disk but for a little room.
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![0u8; 8 * 1024 * 1024 - 300 * 1024]).unwrap();
    let summary = dir.join("summary.json");
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_ready(T);

    let n = 600;
    let port = broker.port();
    let publisher = std::thread::spawn(move || {
        let mut c = TestClient::connect(port, "f-pub");
        c.publish_many_qos1(n, |i| ("f/x".into(), format!("{i:0>1000}").into_bytes()));
        c.disconnect();
    });
    attic.wait_log_contains("cannot store", T);
    assert!(attic.is_running());
    // The outage lasts four keep-alives (the scenario, not a wait for a
    // condition): the broker must not be taken for silent meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(&filler).unwrap();
    attic.wait_log_contains("storage works again", T);
    publisher.join().unwrap();
    wait_until(T, "every message stored after space returned", || {
        stored_numbers(&data).0.len() >= n
    });
    attic.stop_clean();
    let log = attic.log();
    let (set, rows) = stored_numbers(&data);
    assert_eq!(missing(&set, 0..n), Vec::<usize>::new());
    assert_eq!(rows, n, "each message stored once (no redelivery)");
    assert!(
        !log.contains("connection closed"),
        "no reconnect for redelivery:\n{log}"
    );
    assert!(
        log.contains("rolled back"),
        "a transaction was rolled back:\n{log}"
    );
    // While the disk is nearly full a retry may work and the next batch
    // fail again: one error line per outage, each followed by its recovery.
    assert_eq!(
        log.matches("cannot store").count(),
        log.matches("storage works again").count(),
        "reported once per outage:\n{log}"
    );
    let s = summary_stream(&summary);
    assert_eq!(s["lost"], 0, "{s}");
    assert_eq!(s["stored"], n, "{s}");
    assert_eq!(s["reconnects"], 0, "{s}");
    drop(disk);
}

#[test]
fn a_full_disk_under_a_clean_session_stores_every_qos_1_message_and_loses_none() {
    a_full_disk_loses_nothing(true);
}

#[test]
fn a_full_disk_under_a_persistent_session_stores_every_qos_1_message_and_loses_none() {
    a_full_disk_loses_nothing(false);
}

/// A row of a file's `sessions` table: connected, disconnected, session
/// present, granted QoS, why it ended.
type SessionRow = (i64, Option<i64>, bool, String, Option<String>);

/// Publishes `range` as QoS 1 decimal payloads on `f/x`.
fn publish(port: u16, range: std::ops::Range<usize>) {
    let mut c = TestClient::connect(port, "f-pub");
    let start = range.start;
    c.publish_many_qos1(range.len(), |i| {
        ("f/x".into(), format!("{}", start + i).into_bytes())
    });
    c.disconnect();
}

#[test]
fn a_file_system_turned_read_only_is_reported_once_and_storing_resumes_when_it_is_writable() {
    let dir = TempDir::new("readonly");
    let Some(disk) = Mounted::ext4(&dir.join("card.img"), dir.join("card"), 32) else {
        eprintln!("SKIPPED: cannot make and loop-mount an ext4 image here (not root?)");
        return;
    };
    let data = disk.path.join("data");
    let broker = Mosquitto::builder().max_queued_messages(100_000).start();
    // Rotation every second: the kernel refuses `remount,ro` while a file
    // is open for writing, so the test remounts between two files.
    let yaml = config(&data, broker.port(), "file-rotation-time-seconds: 1");
    let summary = dir.join("summary.json");
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_ready(T);
    publish(broker.port(), 0..100);
    wait_until(T, "the first messages stored", || {
        stored_numbers(&data).0.len() >= 100
    });
    wait_until(T, "the card remounted read-only", || disk.remount("ro"));

    // Sent while the card is read-only: held, never acknowledged.
    publish(broker.port(), 100..400);
    attic.wait_log_contains("cannot store", T);
    assert!(attic.is_running());
    assert!(disk.remount("rw"), "remount,rw");
    attic.wait_log_contains("storage works again", T);
    publish(broker.port(), 400..500);
    wait_until(T, "every message stored once writable", || {
        stored_numbers(&data).0.len() >= 500
    });
    attic.stop_clean();
    let log = attic.log();
    let (set, rows) = stored_numbers(&data);
    assert_eq!(missing(&set, 0..500), Vec::<usize>::new());
    assert_eq!(rows, 500);
    assert_eq!(
        log.matches("cannot store").count(),
        1,
        "reported once:\n{log}"
    );
    assert!(
        log.contains("Read-only file system"),
        "the cause is named:\n{log}"
    );
    assert!(!log.contains("connection closed"), "{log}");
    let s = summary_stream(&summary);
    assert_eq!(
        (s["lost"].as_u64(), s["stored"].as_u64()),
        (Some(0), Some(500)),
        "{s}"
    );
    drop(disk);
}

#[test]
fn a_second_instance_on_the_same_folders_exits_1_naming_the_folder_and_the_holder_and_export_still_reads()
 {
    let dir = TempDir::new("second");
    let data = dir.join("data");
    let broker = Mosquitto::start();
    let yaml = config(&data, broker.port(), "file-rotation-time-seconds: 3600");
    let mut first = Attic::start(&yaml, &dir);
    first.wait_ready(T);
    publish(broker.port(), 0..20);
    wait_until(T, "the first instance stored", || {
        stored_numbers(&data).0.len() >= 20
    });

    let mut second = Attic::start(&yaml, &dir);
    let status = second.wait_exit(T).expect("the second instance exits");
    assert_eq!(status.code(), Some(1), "{}", second.log());
    let log = second.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let folder = data.join("f");
    assert_eq!(lines.len(), 1, "one line:\n{log}");
    assert!(
        lines[0].contains(&format!(
            "stream folder {} is in use by another attic (pid {})",
            folder.display(),
            first.pid()
        )),
        "{log}"
    );
    assert!(!log.contains("recover"), "no recovery ran:\n{log}");

    // Readers take no lock: export reads the open file of the first one.
    let cfg = first.config_path().to_str().unwrap().to_owned();
    let out = run_attic_in(&dir, &["export", "--config", &cfg, "--include-open"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);

    // The first one is undisturbed: still storing, its file not recovered.
    publish(broker.port(), 20..30);
    wait_until(T, "the first instance still stores", || {
        stored_numbers(&data).0.len() >= 30
    });
    first.stop_clean();
    assert!(!first.log().contains("recovered"), "{}", first.log());
    for f in finished_files(&data) {
        let con = common::files::open_ro(&f).unwrap();
        let recovered: Option<String> = con
            .query_row(
                "select value from attic_meta where key = 'recovered'",
                [],
                |r| r.get(0),
            )
            .ok();
        assert_eq!(recovered, None, "{}", f.display());
    }
}

#[test]
fn after_a_broker_restart_the_sessions_table_and_export_sessions_show_the_gap() {
    let dir = TempDir::new("sessions");
    let data = dir.join("data");
    let mut broker = Mosquitto::start();
    let yaml = config(&data, broker.port(), "file-rotation-time-seconds: 3600");
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_ready(T);
    publish(broker.port(), 0..10);
    wait_until(T, "the first messages stored", || {
        stored_numbers(&data).0.len() >= 10
    });
    broker.restart();
    wait_until(T, "attic subscribed again", || {
        attic.log().matches("subscribed; storing messages").count() >= 2
    });
    publish(broker.port(), 10..20);
    wait_until(T, "the later messages stored", || {
        stored_numbers(&data).0.len() >= 20
    });
    attic.stop_clean();

    // The one file has both connections, the gap between them and why the
    // first one ended.
    // Both connections, the gap between them and why the first one ended,
    // in the file's sessions table (a connection that spans an hourly
    // rotation has a row in both files, with the same connected_us).
    let files = finished_files(&data);
    let mut by_start: std::collections::BTreeMap<i64, SessionRow> = Default::default();
    let mut inside = 0i64;
    let mut all_rows = Vec::new();
    for f in &files {
        let con = common::files::open_ro(f).unwrap();
        let rows: Vec<SessionRow> = con
            .prepare(
                "select connected_us, disconnected_us, session_present, granted_qos, ended \
                 from sessions order by rowid",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for row in rows {
            all_rows.push(row.clone());
            let ended = row.1.is_some();
            let entry = by_start.entry(row.0).or_insert_with(|| row.clone());
            if ended {
                *entry = row;
            }
        }
    }
    let rows: Vec<SessionRow> = by_start.into_values().collect();
    assert_eq!(rows.len(), 2, "{files:?}: {all_rows:?}");
    let (c1, d1, p1, g1, e1) = &rows[0];
    let (c2, d2, _, g2, e2) = &rows[1];
    let d1 = d1.expect("the first connection ended");
    assert!(*c1 < d1 && d1 < *c2, "a gap between the two: {rows:?}");
    assert!(!p1 && g1 == "1" && g2 == "1", "{rows:?}");
    assert!(e1.as_deref().is_some_and(|e| !e.is_empty()), "{rows:?}");
    assert_eq!(e2.as_deref(), Some("attic stopped"));
    assert!(d2.is_some_and(|d| d > *c2));
    // The data confirms the gap: no row was received inside it.
    for f in &files {
        let con = common::files::open_ro(f).unwrap();
        inside += con
            .query_row(
                "select count(*) from data where reception_timestamp > ?1 and reception_timestamp < ?2",
                [d1, *c2],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
    }
    assert_eq!(inside, 0);

    let cfg = attic.config_path().to_str().unwrap().to_owned();
    let out = run_attic_in(&dir, &["export", "--config", &cfg, "--sessions"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["stream"], "f");
    assert_eq!(lines[0]["connected_us"], *c1);
    assert_eq!(lines[0]["disconnected_us"], d1);
    assert_eq!(lines[1]["connected_us"], *c2);
    assert_eq!(lines[1]["ended"], "attic stopped");
    assert!(lines[0]["connected_time"].as_str().unwrap().ends_with('Z'));
    let bad = run_attic_in(
        &dir,
        &["export", "--config", &cfg, "--sessions", "--format", "csv"],
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_sd_card_that_turns_read_only_under_an_open_file_never_has_an_unstored_message_acknowledged() {
    // ext4 with errors=remount-ro, as Raspberry Pi OS mounts its root: an
    // error makes the kernel turn it read-only at once, open files and
    // all, and only a new mount makes it writable again. The messages
    // Attic could not store must still be at the broker.
    let dir = TempDir::new("emergency-ro");
    let Some(disk) = Mounted::ext4_with(
        &dir.join("card.img"),
        dir.join("card"),
        32,
        "loop,errors=remount-ro",
    ) else {
        eprintln!("SKIPPED: cannot make and loop-mount an ext4 image here (not root?)");
        return;
    };
    let device = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE"])
        .arg(&disk.path)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let trigger = PathBuf::from("/sys/fs/ext4")
        .join(Path::new(&device).file_name().unwrap_or_default())
        .join("trigger_fs_error");
    if !trigger.exists() {
        eprintln!("SKIPPED: this kernel has no {}", trigger.display());
        return;
    }
    let data = disk.path.join("data");
    let broker = Mosquitto::builder().max_queued_messages(100_000).start();
    let yaml = config(
        &data,
        broker.port(),
        "clean-session: false\nclient-id: \"attic-ro-card\"\nfile-rotation-time-seconds: 3600",
    );
    let summary = dir.join("summary.json");
    let mut attic = Attic::start_with_args(&yaml, &dir, &["--summary", summary.to_str().unwrap()]);
    attic.wait_ready(T);
    publish(broker.port(), 0..100);
    wait_until(T, "the first messages stored", || {
        stored_numbers(&data).0.len() >= 100
    });
    let n = 500;
    let port = broker.port();
    let publisher = std::thread::spawn(move || publish(port, 100..400));
    wait_until(T, "more messages stored", || {
        stored_numbers(&data).0.len() >= 150
    });
    std::fs::write(&trigger, "test: the card turns read-only").unwrap();
    publisher.join().unwrap();
    // Sent after the card turned read-only (the first batch may all be
    // stored before it did): these cannot be stored.
    publish(broker.port(), 400..n);
    attic.wait_log_contains("cannot store", T);
    attic.stop_clean();
    let log = attic.log();
    assert_eq!(
        log.matches("cannot store").count(),
        1,
        "reported once:\n{log}"
    );
    let s = summary_stream(&summary);
    let stored_count = s["stored"].as_u64().unwrap();

    // What the card holds (it can still be read), and what the broker kept
    // for the session because Attic never acknowledged it.
    let (stored, _) = stored_numbers(&data);
    assert!(stored.len() as u64 >= stored_count.min(100), "{s}");
    let mut kept = TestClient::connect_with(broker.port(), "attic-ro-card", false);
    assert!(kept.session_present());
    let mut redelivered: BTreeSet<usize> = BTreeSet::new();
    while let Some(p) = kept.recv_timeout(Duration::from_secs(2)) {
        if let Some(i) = std::str::from_utf8(&p.payload)
            .ok()
            .and_then(|t| t.parse().ok())
        {
            redelivered.insert(i);
        }
    }
    eprintln!(
        "{} of {n} stored on the card, {} kept by the broker; summary {s}",
        stored.len(),
        redelivered.len()
    );
    let nowhere: Vec<usize> = (0..n)
        .filter(|i| !stored.contains(i) && !redelivered.contains(i))
        .take(20)
        .collect();
    assert_eq!(nowhere, Vec::<usize>::new(), "acknowledged but not stored");
    assert!(
        !redelivered.is_empty(),
        "the card failed before all were stored"
    );
    drop(disk);
}
