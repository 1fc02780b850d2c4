//! The executor against real temporary folders and a fake free-space probe.

use super::*;
use std::cell::Cell;
use std::fs;
use std::rc::Rc;

/// 2024-05-01T00:00:00Z in unix µs.
const DAY0: i64 = 1_714_521_600_000_000;
const DAY_US: i64 = 86_400_000_000;

struct Tmp(PathBuf);

impl Tmp {
    fn new(label: &str) -> Tmp {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "attic-retention-run-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The setup of a config file's text (the config's own parser).
fn config(data: &Path, top: &str, streams: &[(&str, &str)]) -> Setup {
    let mut y = format!("data-folder: \"{}\"\n{top}streams:\n", data.display());
    for (prefix, extra) in streams {
        y.push_str(&format!("  - topic: \"#\"\n    prefix: {prefix}\n{extra}"));
    }
    let c = crate::config::parse(&y, Path::new("test.yaml")).unwrap();
    Setup {
        data_folder: c.data_folder,
        streams: c
            .streams
            .into_iter()
            .map(|s| (s.folder_name, s.retention))
            .collect(),
        min_free_bytes: c.min_free_bytes,
    }
}

/// A finished file of `len` bytes created at `created` in stream `stream`.
fn put(data: &Path, stream: &str, created: i64, len: usize) -> PathBuf {
    let day = data.join(stream).join(crate::layout::day_folder(created));
    fs::create_dir_all(&day).unwrap();
    let p = day.join(finished_file_name(created));
    fs::write(&p, vec![1u8; len]).unwrap();
    // Finished when it was made: its modification time is its name's.
    set_mtime(&p, created.max(0));
    p
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{}/", p.strip_prefix(base).unwrap().display()));
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn bytes_under(dir: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    e.metadata().unwrap().len()
                }
            })
            .sum()
    }
    walk(dir)
}

/// A disk of `capacity` bytes holding only the data folder.
fn fake_disk(data: &Path, capacity: u64) -> FreeSpace {
    let data = data.to_path_buf();
    Box::new(move |_| Ok(capacity.saturating_sub(bytes_under(&data))))
}

/// Runs passes until idle; returns the number of `step` calls.
fn run_pass(r: &mut Retention, wall_us: i64, ops_per_step: u64) -> usize {
    let now = Instant::now();
    r.request(now);
    let mut steps = 0;
    loop {
        steps += 1;
        r.step(now, wall_us, &mut Budget::ops(ops_per_step));
        if matches!(r.phase, Phase::Idle) && r.due > now {
            return steps;
        }
        assert!(steps < 1_000_000, "the pass never ends");
    }
}

#[test]
fn no_retention_anywhere_means_no_retention_at_all() {
    let t = Tmp::new("none");
    let c = config(&t.0, "", &[("a", "")]);
    assert!(Retention::new(c.clone(), Instant::now()).is_none());
}

#[test]
fn max_age_deletes_old_finished_files_only_and_removes_emptied_day_folders() {
    let t = Tmp::new("age");
    let c = config(&t.0, "retention: { max-age-days: 2 }\n", &[("a", "")]);
    let old1 = put(&t.0, "a", DAY0 + 1_000_000, 10);
    let old2 = put(&t.0, "a", DAY0 + DAY_US + 5, 20);
    let young = put(&t.0, "a", DAY0 + 3 * DAY_US, 30);
    // Left alone: a .part (even an old one), foreign files, a near-name.
    let part = old1.with_file_name(format!(
        "{}.part",
        old1.file_name().unwrap().to_str().unwrap()
    ));
    fs::write(&part, b"p").unwrap();
    let foreign = old2.with_file_name("notes.txt");
    fs::write(&foreign, b"x").unwrap();
    let short = old2.with_file_name("123.sqlite");
    fs::write(&short, b"x").unwrap();
    fs::create_dir_all(t.0.join("a/backup")).unwrap();
    put(&t.0, "a/backup", DAY0, 5); // not a day folder of the stream
    let mut r =
        Retention::with_free_space(c.clone(), Instant::now(), fake_disk(&t.0, 1 << 30)).unwrap();
    run_pass(&mut r, DAY0 + 3 * DAY_US + 10, 1000);
    assert!(!old1.exists() && !old2.exists());
    assert!(young.exists() && part.exists() && foreign.exists() && short.exists());
    assert_eq!(r.deleted(0), (2, 30));
    assert_eq!(
        tree(&t.0.join("a")),
        [
            "2024-05-01/",
            "2024-05-01/1714521601000000.sqlite.part",
            "2024-05-02/",
            "2024-05-02/123.sqlite",
            "2024-05-02/notes.txt",
            "2024-05-04/",
            "2024-05-04/1714780800000000.sqlite",
            "backup/",
            "backup/2024-05-01/",
            "backup/2024-05-01/1714521600000000.sqlite",
        ]
    );
    // The .part goes (finalised elsewhere): its day folder is now empty.
    fs::remove_file(&part).unwrap();
    run_pass(&mut r, DAY0 + 3 * DAY_US + 10, 1000);
    assert!(
        !t.0.join("a/2024-05-01").exists(),
        "an empty day folder goes"
    );
    assert_eq!(r.deleted(0), (2, 30));
}

#[test]
fn max_size_is_per_stream_and_a_streams_own_keys_replace_the_top_level() {
    let t = Tmp::new("size");
    let mb = 1_048_576usize;
    let c = config(
        &t.0,
        "retention: { max-size-mb: 2 }\n",
        &[
            ("a", ""),
            ("b", "    retention: { max-size-mb: 1 }\n"),
            ("c", "    retention: { max-size-mb: unlimited }\n"),
        ],
    );
    for s in ["a", "b", "c"] {
        for k in 0..4 {
            put(&t.0, s, DAY0 + k * 3_600_000_000, mb / 2);
        }
    }
    let mut r =
        Retention::with_free_space(c.clone(), Instant::now(), fake_disk(&t.0, 1 << 40)).unwrap();
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    let count = |s: &str| {
        tree(&t.0.join(s))
            .iter()
            .filter(|p| p.ends_with(".sqlite"))
            .count()
    };
    assert_eq!((count("a"), count("b"), count("c")), (4, 2, 4));
    assert_eq!(r.deleted(1), (2, mb as u64));
    // The oldest went.
    assert!(
        !t.0.join("b/2024-05-01")
            .join(finished_file_name(DAY0))
            .exists()
    );
    assert!(
        t.0.join("b/2024-05-01")
            .join(finished_file_name(DAY0 + 3 * 3_600_000_000))
            .exists()
    );
}

#[test]
fn min_free_deletes_the_oldest_files_across_streams_until_there_is_room() {
    let t = Tmp::new("free");
    let c = config(
        &t.0,
        "retention: { min-free-mb: 0.0001 }\n",
        &[("a", ""), ("b", "")],
    );
    // 0.0001 MB = 105 bytes. Disk of 300 bytes, 280 used: 20 free.
    put(&t.0, "a", DAY0 + 10, 70);
    put(&t.0, "b", DAY0 + 20, 70);
    put(&t.0, "a", DAY0 + 30, 70);
    put(&t.0, "b", DAY0 + 40, 70);
    let mut r =
        Retention::with_free_space(c.clone(), Instant::now(), fake_disk(&t.0, 300)).unwrap();
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    assert_eq!(r.deleted(0), (1, 70));
    assert_eq!(r.deleted(1), (1, 70));
    assert!(
        t.0.join("a/2024-05-01")
            .join(finished_file_name(DAY0 + 30))
            .exists()
    );
    assert!(
        t.0.join("b/2024-05-01")
            .join(finished_file_name(DAY0 + 40))
            .exists()
    );
    assert!(!r.starved);
}

#[test]
fn min_free_out_of_reach_deletes_everything_warns_once_and_clears_when_space_returns() {
    let t = Tmp::new("starved");
    let c = config(&t.0, "retention: { min-free-mb: 1 }\n", &[("a", "")]);
    put(&t.0, "a", DAY0, 10);
    let free = Rc::new(Cell::new(1000u64));
    let f = free.clone();
    let mut r =
        Retention::with_free_space(c.clone(), Instant::now(), Box::new(move |_| Ok(f.get())))
            .unwrap();
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    assert_eq!(r.deleted(0), (1, 10));
    assert!(r.starved, "nothing left to delete and still short");
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    assert!(r.starved);
    free.set(2 << 20);
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    assert!(!r.starved);
}

#[test]
fn every_step_stays_within_its_budget_and_the_pass_still_finishes() {
    let t = Tmp::new("sliced");
    let c = config(&t.0, "retention: { max-age-days: 1 }\n", &[("a", "")]);
    for k in 0..300 {
        put(&t.0, "a", DAY0 + k * 60_000_000, 1);
    }
    let mut r =
        Retention::with_free_space(c.clone(), Instant::now(), fake_disk(&t.0, 1 << 30)).unwrap();
    let now = Instant::now();
    let mut steps = 0;
    let mut before = 300;
    loop {
        steps += 1;
        let ended = r.step(now, DAY0 + 2 * DAY_US, &mut Budget::ops(7));
        let left = tree(&t.0.join("a"))
            .iter()
            .filter(|p| p.ends_with(".sqlite"))
            .count();
        assert!(
            before - left <= 7,
            "one step deleted {} files",
            before - left
        );
        before = left;
        if ended {
            break;
        }
        assert!(steps < 10_000);
    }
    assert_eq!(before, 0);
    assert!(steps > 300 / 7, "{steps} steps");
    assert_eq!(r.deleted(0), (300, 300));
    assert!(!t.0.join("a/2024-05-01").exists());
}

#[test]
fn passes_come_once_a_minute_after_a_request_and_when_storage_starts_failing() {
    let t = Tmp::new("due");
    let c = config(
        &t.0,
        "retention: { max-age-days: 1 }\n",
        &[("a", ""), ("b", "")],
    );
    for k in 0..5 {
        put(&t.0, "a", DAY0 + k, 1);
    }
    let t0 = Instant::now();
    let mut r = Retention::with_free_space(c.clone(), t0, fake_disk(&t.0, 1 << 30)).unwrap();
    assert_eq!(r.next_deadline(), t0, "the first pass is due at start");
    r.step(t0, DAY0, &mut Budget::ops(1_000));
    assert_eq!(r.next_deadline(), t0 + EVERY);
    let t1 = t0 + Duration::from_secs(5);
    r.storage_failing(1, true, t1);
    assert_eq!(r.next_deadline(), t1, "a failing write asks for a pass");
    r.step(t1, DAY0, &mut Budget::ops(1_000));
    let t2 = t1 + Duration::from_secs(1);
    r.storage_failing(1, true, t2);
    assert_eq!(r.next_deadline(), t1 + EVERY, "only when it starts failing");
    // A request during a pass: another pass right after.
    r.request(t2);
    r.step(t2, DAY0, &mut Budget::ops(1));
    assert!(!matches!(r.phase, Phase::Idle));
    r.request(t2);
    while !matches!(r.phase, Phase::Idle) {
        r.step(t2, DAY0, &mut Budget::ops(1));
    }
    assert_eq!(r.next_deadline(), t2);
}

#[test]
fn the_free_space_of_a_real_file_system_is_measured() {
    let t = Tmp::new("statvfs");
    assert!(free_bytes(&t.0).unwrap() > 0);
    assert!(free_bytes(&t.0.join("missing")).is_err());
}

/// [`run_pass`] with files held as `held` says.
fn run_pass_keeping(r: &mut Retention, wall_us: i64, held: &dyn Fn(usize, i64) -> bool) {
    let now = Instant::now();
    r.request(now);
    for _ in 0..1_000_000 {
        r.step_keeping(now, wall_us, &mut Budget::ops(3), held);
        if matches!(r.phase, Phase::Idle) && r.due > now {
            return;
        }
    }
    panic!("the pass never ends");
}

#[test]
fn held_files_survive_every_rule_and_go_once_released() {
    let t = Tmp::new("held");
    let c = config(
        &t.0,
        "retention: { max-age-days: 1, min-free-mb: 1 }\n",
        &[("a", "")],
    );
    let kept = put(&t.0, "a", DAY0, 10);
    let next = put(&t.0, "a", DAY0 + 1_000_000, 10);
    let young = put(&t.0, "a", DAY0 + 3 * DAY_US, 10);
    let mut r = Retention::with_free_space(c, Instant::now(), Box::new(|_| Ok(1000))).unwrap();
    let hold = Cell::new(true);
    let held = |i: usize, created: i64| i == 0 && created == DAY0 && hold.get();
    run_pass_keeping(&mut r, DAY0 + 3 * DAY_US + 1, &held);
    assert!(kept.exists(), "a held file was deleted");
    assert!(!next.exists() && !young.exists());
    assert_eq!(r.pass_held, 1);
    assert!(
        r.starved,
        "min-free-mb out of reach because of the held file"
    );
    hold.set(false);
    run_pass_keeping(&mut r, DAY0 + 3 * DAY_US + 1, &held);
    assert!(!kept.exists(), "released, it goes");
    assert_eq!(r.deleted(0), (3, 30));
}

/// Sets a file's modification time to the unix µs `t`.
fn set_mtime(path: &Path, t: i64) {
    let when = std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(t).unwrap());
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn writer_recovery_retention_and_export_agree_on_one_name_a_1970_one_included() {
    use crate::layout;
    use crate::message::Message;
    use crate::store::Durability;
    use crate::store::writer::{FileMeta, Writer, recover_parts};
    let t = Tmp::new("one-name");
    let c = config(&t.0, "retention: { max-age-days: 2 }\n", &[("s", "")]);
    let stream = t.0.join("s");
    let mut w = Writer::new(
        stream.clone(),
        Duration::from_secs(300),
        Durability::Normal,
        FileMeta {
            stream_folder: "s".into(),
            topics: vec!["#".into()],
            broker: "localhost:1883".into(),
            host: "pi".into(),
            mqtt5: false,
        },
    );
    let msg = |ts: i64| Message {
        timestamp_us: ts,
        topic: "a".into(),
        payload: bytes::Bytes::from_static(b"x"),
        qos: 0,
        retain: false,
        properties: None,
    };
    // A Pi booted without a battery clock: 1970-01-01T00:00:05Z.
    let early = 5_000_000;
    w.insert(&msg(early)).unwrap();
    let finished = w.rotate().unwrap().unwrap();
    assert_eq!(finished, stream.join(layout::relative_path(early)));
    assert_eq!(
        finished.strip_prefix(&stream).unwrap(),
        Path::new("1970-01-01/0000000005000000.sqlite")
    );
    // A crash leaves a `.part`; recovery finishes it under the same rule.
    w.insert(&msg(DAY0)).unwrap();
    w.commit().unwrap();
    w.abandon();
    let recovered = recover_parts(&stream).unwrap();
    assert_eq!(recovered, [stream.join(layout::relative_path(DAY0))]);
    // Export reads both creation times back from the names.
    let found = crate::select::files::candidates(&stream, 0, i64::MAX, false).unwrap();
    let found: Vec<(i64, PathBuf)> = found.into_iter().map(|c| (c.created_us, c.path)).collect();
    assert_eq!(
        found,
        [(early, finished.clone()), (DAY0, recovered[0].clone())]
    );
    // Retention reads the same names: the 1970 file, old by its name and
    // by its modification time, is deleted; the 2024 one is kept.
    set_mtime(&finished, early);
    set_mtime(&recovered[0], DAY0);
    let mut r = Retention::with_free_space(c, Instant::now(), fake_disk(&t.0, 1 << 30)).unwrap();
    run_pass(&mut r, DAY0 + DAY_US, 1000);
    assert!(!finished.exists(), "the 1970 file is deleted when old");
    assert!(recovered[0].exists());
    assert_eq!(r.deleted(0).0, 1);
}
