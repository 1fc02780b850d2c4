use super::*;
use crate::test_dir::TempDir;
use mio::{Events, Poll};

/// A test folder with the day folder the tests' files go into.
fn temp_dir() -> TempDir {
    let dir = TempDir::new("hooks");
    std::fs::create_dir_all(dir.0.join("2026-12-03")).unwrap();
    dir
}

fn hooks(dir: &Path, command: &[&str], keep: bool) -> Hooks {
    Hooks::new(
        vec![(
            "s".into(),
            dir.to_path_buf(),
            Some(OnFinish {
                command: command.iter().map(|s| (*s).to_owned()).collect(),
                timeout: Duration::from_secs(60),
                keep_until_done: keep,
            }),
        )],
        Instant::now(),
    )
}

fn facts(dir: &Path, created: i64) -> FileFacts {
    let path = dir
        .join("2026-12-03")
        .join(crate::layout::file_name(created));
    std::fs::write(&path, b"x").unwrap();
    FileFacts {
        path,
        first_us: Some(created + 1),
        last_us: Some(created + 2),
        rows: Some(2),
        bytes: Some(1),
    }
}

/// Runs the loop's part until `done` says so or `limit` passes.
fn drive(poll: &mut Poll, h: &mut Hooks, limit: Duration, done: impl Fn(&Hooks) -> bool) {
    let start = Instant::now();
    let mut events = Events::with_capacity(16);
    while !done(h) && start.elapsed() < limit {
        let now = Instant::now();
        h.run_due(poll.registry(), now);
        let wait = h
            .next_deadline()
            .map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        match poll.poll(&mut events, Some(wait)) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.unwrap(),
        }
        let now = Instant::now();
        for ev in events.iter() {
            if h.owns(ev.token()) {
                h.on_ready(poll.registry(), ev.token(), now);
            }
        }
        h.on_timer(poll.registry(), now);
    }
}

#[test]
fn backoff_doubles_from_ten_seconds_to_an_hour() {
    let secs: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(
        secs,
        [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    );
    assert_eq!(backoff(u32::MAX), RETRY_MAX);
}

#[test]
fn a_done_file_leaves_the_pending_list_and_a_restart_runs_only_what_is_pending() {
    let dir = temp_dir();
    let log = dir.0.join("ran");
    let script = format!("echo \"$ATTIC_FILE $ATTIC_ROWS\" >> {}", log.display());
    let mut poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["/bin/sh", "-c", &script], false);
    let now = Instant::now();
    let a = facts(&dir.0, 1_796_300_100_000_000);
    let b = facts(&dir.0, 1_796_300_400_000_000);
    h.closed(0, &PathBuf::from(format!("{}.part", a.path.display())), now);
    h.closed(0, &PathBuf::from(format!("{}.part", b.path.display())), now);
    assert_eq!(state::load(&h_dir(&h)).len(), 2);
    h.finished(0, &a, now);
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).done == 1
    });
    assert_eq!(
        h.counts(0),
        HookCounts {
            done: 1,
            failed: 0,
            pending: 1
        }
    );
    let lines = state::load(&h_dir(&h));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].rel.ends_with("1796300400000000.sqlite"));
    // A restart: only b is pending; it is finished, so it runs.
    let mut h = hooks(&dir.0, &["/bin/sh", "-c", &script], false);
    assert_eq!(h.counts(0).pending, 1);
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).done == 1
    });
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 2, "{ran}");
    assert!(ran.contains(&format!("{} 2", a.path.display())), "{ran}");
    assert!(ran.contains(&b.path.display().to_string()), "{ran}");
    assert!(state::load(&h_dir(&h)).is_empty());
}

fn h_dir(h: &Hooks) -> PathBuf {
    h.streams[0].as_ref().unwrap().dir.clone()
}

#[test]
fn a_failed_run_is_retried_after_the_backoff_and_counted() {
    let dir = temp_dir();
    let mut poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["/bin/sh", "-c", "echo nope >&2; exit 4"], false);
    let f = facts(&dir.0, 1_796_300_100_000_000);
    let t = Instant::now();
    h.finished(0, &f, t);
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).failed == 1
    });
    assert_eq!(
        h.counts(0),
        HookCounts {
            done: 0,
            failed: 1,
            pending: 1
        }
    );
    let next = h.next_deadline().unwrap();
    assert!(next >= t + RETRY_FIRST, "retry not backed off");
    assert!(next <= Instant::now() + RETRY_FIRST);
}

#[test]
fn keep_until_done_holds_pending_files_only() {
    let dir = temp_dir();
    let mut poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["true"], true);
    let f = facts(&dir.0, 1_796_300_100_000_000);
    h.finished(0, &f, Instant::now());
    assert!(h.holds(0, 1_796_300_100_000_000));
    assert!(!h.holds(0, 1_796_300_400_000_000));
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).done == 1
    });
    assert!(!h.holds(0, 1_796_300_100_000_000));
    let mut other = hooks(&dir.0, &["true"], false);
    other.finished(0, &facts(&dir.0, 1), Instant::now());
    assert!(
        !other.holds(0, 1),
        "without keep-until-done nothing is held"
    );
}

#[test]
fn during_the_stop_nothing_new_starts() {
    let dir = temp_dir();
    let poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["true"], false);
    h.begin_stop();
    h.finished(0, &facts(&dir.0, 5), Instant::now());
    h.run_due(poll.registry(), Instant::now());
    assert_eq!(h.running(), 0);
    assert_eq!(h.next_deadline(), None);
    assert_eq!(
        state::load(&h_dir(&h)).len(),
        1,
        "stays pending for the next start"
    );
}

#[test]
fn a_thousand_finished_files_with_a_slow_hook_keep_one_process_and_each_event_cheap() {
    let dir = temp_dir();
    let poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["sleep", "30"], true);
    let mut longest = Duration::ZERO;
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap(),
            u32::try_from(ts.tv_nsec).unwrap(),
        )
    };
    for n in 0..1000i64 {
        let f = FileFacts {
            path: dir
                .0
                .join("2026-12-03")
                .join(crate::layout::file_name(1_796_300_000_000_000 + n)),
            first_us: Some(n),
            last_us: Some(n),
            rows: Some(1),
            bytes: Some(4096),
        };
        std::fs::write(&f.path, b"").unwrap();
        let t = Instant::now();
        let c = cpu();
        h.closed(0, &PathBuf::from(format!("{}.part", f.path.display())), t);
        h.finished(0, &f, t);
        h.run_due(poll.registry(), t);
        longest = longest.max(cpu().saturating_sub(c));
    }
    assert_eq!(h.running(), 1, "one hook process per stream");
    assert_eq!(h.counts(0).pending, 1000);
    // A close rewrites the small pending list; even at 1,000 files that
    // costs far less CPU than a loop turn's budget (an emulator multiplies
    // every CPU figure).
    let emulated = std::env::var("ATTIC_TEST_RUNNER").is_ok_and(|r| !r.is_empty());
    let bound = Duration::from_millis(if emulated { 200 } else { 20 });
    eprintln!("longest CPU time of one close + finish + start check: {longest:?}");
    assert!(longest < bound, "{longest:?}");
    // What the queue holds per file: one line of the state file and a few
    // words (no output buffers, no process).
    let state_bytes = std::fs::metadata(dir.0.join(state::FILE_NAME))
        .unwrap()
        .len();
    assert!(state_bytes < 1000 * 100, "{state_bytes}");
    let per_entry = std::mem::size_of::<Entry>() + 40;
    assert!(per_entry < 256, "{per_entry}");
    h.terminate_all(poll.registry());
}

#[test]
fn files_of_a_relative_data_folder_are_found_and_run_with_an_absolute_path() {
    let dir = temp_dir();
    let cwd = std::env::current_dir().unwrap();
    let Ok(rel_dir) = dir
        .0
        .strip_prefix(&cwd)
        .map(Path::to_path_buf)
        .or_else(|_| {
            // The temporary folder is not below the working directory: name
            // it through enough `..` to reach the root.
            let ups = cwd.components().count() - 1;
            let mut p = PathBuf::new();
            (0..ups).for_each(|_| p.push(".."));
            Ok::<_, ()>(p.join(dir.0.strip_prefix("/").unwrap()))
        })
    else {
        unreachable!()
    };
    let log = dir.0.join("ran");
    let script = format!("echo \"$1\" >> {}", log.display());
    let mut poll = Poll::new().unwrap();
    let mut h = hooks(&rel_dir, &["/bin/sh", "-c", &script, "x", "{file}"], false);
    let abs = facts(&dir.0, 7);
    let rel = FileFacts {
        path: rel_dir.join("2026-12-03").join(crate::layout::file_name(7)),
        ..abs.clone()
    };
    h.closed(
        0,
        &PathBuf::from(format!("{}.part", rel.path.display())),
        Instant::now(),
    );
    assert_eq!(h.counts(0).pending, 1);
    h.finished(0, &rel, Instant::now());
    assert_eq!(h.counts(0).pending, 1);
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).done == 1
    });
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ran.trim(),
        std::fs::canonicalize(&abs.path)
            .unwrap()
            .display()
            .to_string()
    );
}

#[test]
fn a_file_deleted_before_its_hook_ran_is_dropped_not_retried() {
    let dir = temp_dir();
    let log = dir.0.join("ran");
    let script = format!("echo \"$ATTIC_FILE\" >> {}", log.display());
    let mut poll = Poll::new().unwrap();
    let mut h = hooks(&dir.0, &["/bin/sh", "-c", &script], true);
    let gone = facts(&dir.0, 1_796_300_100_000_000);
    let kept = facts(&dir.0, 1_796_300_400_000_000);
    h.finished(0, &gone, Instant::now());
    h.finished(0, &kept, Instant::now());
    std::fs::remove_file(&gone.path).unwrap();
    drive(&mut poll, &mut h, Duration::from_secs(20), |h| {
        h.counts(0).done == 1
    });
    assert_eq!(
        h.counts(0),
        HookCounts {
            done: 1,
            failed: 0,
            pending: 0
        }
    );
    assert!(!h.holds(0, 1_796_300_100_000_000));
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");
    assert!(state::load(&h_dir(&h)).is_empty());
}
