//! Finalising closed files off the loop.
//!
//! The loop closes a stream's file at rotation ([`Writer::close`]: one
//! small commit and a close) and hands the closed `.part` here. One helper
//! thread runs [`finalise_closed`] on it (checkpoint, fsync, rename: the
//! parts that block on the disk or on a reader) and reports back through a
//! channel and a `mio::Waker`. A file a reader holds is tried again every
//! [`RETRY_BUSY`] while the stream already writes its next file; any other
//! failure is tried again with a growing delay. At stop the loop waits for
//! [`Finaliser::pending`] to reach zero until its deadline and then exits
//! anyway: whatever is unfinished stays a complete `.part`, which the next
//! start finishes like a crash leftover.
//!
//! Owns: the helper thread and its retry queue. Must not: touch an open
//! writer, a socket or any loop state; it only ever sees closed files.
//!
//! [`Writer::close`]: super::writer::Writer::close

use super::Durability;
use super::facts::{FileFacts, read_facts};
use super::writer::{finalise_closed, is_busy};
use mio::Waker;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// A file a reader holds is tried again this often.
pub const RETRY_BUSY: Duration = Duration::from_millis(250);

/// After another failure, the first retry comes this much later, and each
/// further one twice as late, up to [`RETRY_MAX`].
const RETRY_FAILED: Duration = Duration::from_secs(1);

/// Longest delay between two tries of a failing file.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A closed file to finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Which stream it belongs to (an index the loop understands).
    pub stream: usize,
    /// The closed `X.sqlite.part`.
    pub part: PathBuf,
    /// The stream's durability (folder fsync under `power-safe`).
    pub durability: Durability,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: the final `.sqlite` path and what it holds.
    Done(FileFacts),
    /// A reader holds the file; it is tried again every [`RETRY_BUSY`].
    /// Reported once per job, at the first busy try.
    Held,
    /// Another failure, tried again later. Reported once per job, at the
    /// first failure, with the reason.
    Failing(String),
}

/// One report from the helper thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The job it is about.
    pub job: Job,
    /// What happened.
    pub outcome: Outcome,
}

/// The loop's handle on the helper thread.
#[derive(Debug)]
pub struct Finaliser {
    /// New jobs go to the thread here.
    jobs: Sender<Job>,
    /// Reports come back here.
    reports: Receiver<Report>,
    /// Jobs handed over and not yet done.
    pending: usize,
}

impl Finaliser {
    /// Starts the helper thread; its reports wake the loop through `waker`
    /// (mio allows one waker per poll: the loop shares it with the
    /// resolver).
    pub fn start(waker: Arc<Waker>) -> io::Result<Self> {
        Self::start_with(move |job| finalise_closed(&job.part, job.durability), waker)
    }

    /// [`start`](Self::start) with the finalising step given (tests).
    fn start_with<F>(work: F, waker: Arc<Waker>) -> io::Result<Self>
    where
        F: FnMut(&Job) -> Result<PathBuf, crate::store::StoreError> + Send + 'static,
    {
        let (jobs, rx) = mpsc::channel();
        let (tx, reports) = mpsc::channel();
        std::thread::Builder::new()
            .name("attic-finalise".into())
            .spawn(move || run(&rx, &tx, &waker, work))?;
        Ok(Finaliser {
            jobs,
            reports,
            pending: 0,
        })
    }

    /// Hands a closed file over. If the thread is gone (it never exits
    /// while the loop runs), the file stays a `.part` for the next start.
    pub fn submit(&mut self, job: Job) {
        if self.jobs.send(job).is_ok() {
            self.pending += 1;
        }
    }

    /// Every report that has arrived, without waiting.
    pub fn drain(&mut self, out: &mut Vec<Report>) {
        for r in self.reports.try_iter() {
            if matches!(r.outcome, Outcome::Done(_)) {
                self.pending = self.pending.saturating_sub(1);
            }
            out.push(r);
        }
    }

    /// Files handed over and not finished yet.
    pub fn pending(&self) -> usize {
        self.pending
    }
}

/// One queued job and when to try it.
struct Queued {
    job: Job,
    /// Not before this.
    at: Instant,
    /// Failures so far (not counting busy tries).
    failures: u32,
    /// A busy try was reported already.
    held_reported: bool,
}

/// The helper thread: takes jobs, tries each when due, reports.
fn run<F>(rx: &Receiver<Job>, tx: &Sender<Report>, waker: &Waker, mut work: F)
where
    F: FnMut(&Job) -> Result<PathBuf, crate::store::StoreError>,
{
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let report = |job: &Job, outcome: Outcome| {
        let ok = tx
            .send(Report {
                job: job.clone(),
                outcome,
            })
            .is_ok();
        if ok {
            let _ = waker.wake();
        }
        ok
    };
    loop {
        let now = Instant::now();
        let next = queue.iter().map(|q| q.at).min();
        let received = match next {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) if at <= now => rx.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }),
            Some(at) => rx.recv_timeout(at - now),
        };
        match received {
            Ok(job) => {
                queue.push_back(Queued {
                    job,
                    at: Instant::now(),
                    failures: 0,
                    held_reported: false,
                });
                continue; // take every waiting job first
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The loop is gone: nobody waits for the rest (they stay .part).
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let Some(i) = queue.iter().position(|q| q.at <= now) else {
            continue;
        };
        let Some(mut q) = queue.remove(i) else {
            continue;
        };
        match work(&q.job) {
            Ok(path) => {
                // Read here, off the loop: the file's first and last row.
                if !report(&q.job, Outcome::Done(read_facts(&path))) {
                    return;
                }
            }
            Err(e) if is_busy(&e) => {
                if !q.held_reported {
                    q.held_reported = true;
                    if !report(&q.job, Outcome::Held) {
                        return;
                    }
                }
                q.at = Instant::now() + RETRY_BUSY;
                queue.push_back(q);
            }
            Err(e) => {
                if q.failures == 0 && !report(&q.job, Outcome::Failing(e.to_string())) {
                    return;
                }
                let delay = RETRY_FAILED
                    .saturating_mul(1 << q.failures.min(6))
                    .min(RETRY_MAX);
                q.failures += 1;
                q.at = Instant::now() + delay;
                queue.push_back(q);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout as rotation;
    use crate::message::Message;
    use crate::store::StoreError;
    use crate::store::writer::{FileMeta, Writer};
    use crate::test_dir::TempDir;
    use mio::{Events, Poll, Token};
    use rusqlite::Connection;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAKE: Token = Token(3);

    fn writer(dir: &Path) -> Writer {
        Writer::new(
            dir.to_path_buf(),
            Duration::from_secs(3600),
            Durability::Normal,
            FileMeta {
                stream_folder: "s".into(),
                topics: vec!["#".into()],
                broker: "127.0.0.1:1883".into(),
                host: "h".into(),
                mqtt5: false,
            },
        )
    }

    fn msg(i: i64) -> Message {
        Message {
            timestamp_us: 1_700_000_000_000_000 + i,
            topic: format!("t/{i}"),
            payload: bytes::Bytes::from(vec![7u8; 64]),
            qos: 0,
            retain: false,
            properties: None,
        }
    }

    /// A closed `.part` with `rows` committed rows.
    fn closed_part(dir: &Path, rows: i64) -> PathBuf {
        let mut w = writer(dir);
        for i in 0..rows {
            w.insert(&msg(i)).unwrap();
        }
        w.close().unwrap().unwrap()
    }

    /// Polls and drains until `until` says stop or `limit` passes.
    fn collect(
        poll: &mut Poll,
        f: &mut Finaliser,
        limit: Duration,
        until: impl Fn(&[Report]) -> bool,
    ) -> Vec<Report> {
        let start = Instant::now();
        let mut events = Events::with_capacity(4);
        let mut got = Vec::new();
        while !until(&got) && start.elapsed() < limit {
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            f.drain(&mut got);
        }
        got
    }

    fn done(reports: &[Report]) -> bool {
        reports
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Done(_)))
    }

    #[test]
    fn closing_on_the_loop_leaves_the_checkpoint_to_the_finaliser() {
        let dir = TempDir::new("finaliser");
        let part = closed_part(&dir.0, 2000);
        let wal = PathBuf::from(format!("{}-wal", part.display()));
        let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert!(len > 0, "the close checkpointed (no WAL left)");
    }

    #[test]
    fn a_closed_file_is_finished_off_the_loop_with_every_row_and_no_wal() {
        let dir = TempDir::new("finaliser");
        let part = closed_part(&dir.0, 100);
        let mut poll = Poll::new().unwrap();
        let mut f = Finaliser::start(Arc::new(Waker::new(poll.registry(), WAKE).unwrap())).unwrap();
        f.submit(Job {
            stream: 4,
            part: part.clone(),
            durability: Durability::Normal,
        });
        assert_eq!(f.pending(), 1);
        let got = collect(&mut poll, &mut f, Duration::from_secs(10), done);
        let Some(Report {
            job,
            outcome: Outcome::Done(facts),
        }) = got.last()
        else {
            panic!("no Done report: {got:?}");
        };
        let path = &facts.path;
        assert_eq!(facts.rows, Some(100));
        assert_eq!(job.stream, 4);
        assert_eq!(f.pending(), 0);
        assert_eq!(path, &part.with_extension(""));
        assert!(!part.exists());
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        assert!(!wal.exists());
        let conn = Connection::open(path).unwrap();
        let n: i64 = conn
            .query_row("select count(*) from data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100);
        let rows: String = conn
            .query_row(
                "select value from attic_meta where key = 'row_count'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, "100");
        let mode: String = conn
            .query_row("pragma journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
    }

    #[test]
    fn a_file_a_reader_holds_is_reported_once_and_finished_when_the_reader_lets_go() {
        let dir = TempDir::new("finaliser");
        let part = closed_part(&dir.0, 10);
        // A reader with an open read transaction, as `sqlite3` would hold.
        let reader = Connection::open(&part).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("select count(*) from data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10);
        let mut poll = Poll::new().unwrap();
        let mut f = Finaliser::start(Arc::new(Waker::new(poll.registry(), WAKE).unwrap())).unwrap();
        let t = Instant::now();
        f.submit(Job {
            stream: 0,
            part: part.clone(),
            durability: Durability::Normal,
        });
        let got = collect(&mut poll, &mut f, Duration::from_secs(5), |r| !r.is_empty());
        assert_eq!(got[0].outcome, Outcome::Held, "{got:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "waited on the reader");
        // Several retries later: still held, reported only once.
        let more = collect(&mut poll, &mut f, RETRY_BUSY * 4, |_| false);
        assert!(more.is_empty(), "{more:?}");
        assert!(part.exists());
        assert_eq!(f.pending(), 1);
        drop(reader);
        let got = collect(&mut poll, &mut f, Duration::from_secs(10), done);
        assert!(done(&got), "{got:?}");
        assert!(!part.exists());
        assert!(part.with_extension("").exists());
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn another_failure_is_reported_once_and_retried_later() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let tries = Arc::new(AtomicUsize::new(0));
        let seen = tries.clone();
        let mut f = Finaliser::start_with(
            move |job| {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StoreError::Io {
                        action: "fsync",
                        path: job.part.clone(),
                        source: io::Error::other("disk on fire"),
                    })
                } else {
                    Ok(job.part.with_extension(""))
                }
            },
            waker,
        )
        .unwrap();
        f.submit(Job {
            stream: 1,
            part: PathBuf::from("/x/1.sqlite.part"),
            durability: Durability::PowerSafe,
        });
        let got = collect(&mut poll, &mut f, Duration::from_secs(5), done);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0].outcome, Outcome::Failing(why) if why.contains("disk on fire")));
        assert!(
            matches!(&got[1].outcome, Outcome::Done(f) if f.path == Path::new("/x/1.sqlite")),
            "{got:?}"
        );
        assert_eq!(tries.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_part_left_unfinished_is_finished_by_recovery_with_every_row() {
        let dir = TempDir::new("finaliser");
        let part = closed_part(&dir.0, 25);
        // The finaliser never ran (stop deadline passed): recovery does it.
        let done = crate::store::writer::recover_parts(&dir.0).unwrap();
        assert_eq!(done, vec![part.with_extension("")]);
        let conn = Connection::open(&done[0]).unwrap();
        let n: i64 = conn
            .query_row("select count(*) from data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 25);
        let day = rotation::day_folder(1_700_000_000_000_000);
        assert!(done[0].starts_with(dir.0.join(day)));
    }
}
