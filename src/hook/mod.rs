//! `on-finish:`: a command run once for every finished file of a stream
//! (SPEC section 15), fed by the file events (`file_events`).
//!
//! ```text
//!   Closed    -> entered as pending (state file beside the files)
//!   Finished / Recovered -> runnable, in finishing order
//!   run_due   -> one process per stream at a time (`child`), never waited for
//!   exit 0    -> done: removed from the pending list, never run again
//!   otherwise -> failed: logged with status and last stderr line, retried
//!                after 10 s, 20 s, 40 s ... up to 1 h
//!   stop      -> no new runs; running ones get the stop's time bound, then
//!                SIGTERM, and run again at the next start
//! ```
//!
//! Owns: each stream's queue of pending files, its running process, its
//! counters and its state file (`state`). Must not: block the loop (a
//! fork and exec per run is all it costs), run a hook for a file twice
//! once it is done, or touch a finished file.

mod child;
pub mod state;

use crate::config::OnFinish;
use crate::file_events::final_name;
use crate::store::facts::{FileFacts, read_facts};
use child::{Ended, Running, Tokens};
use mio::{Registry, Token};
use state::Line;
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first retry of a failed run comes this much later; each further
/// one twice as late, up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(10);

/// Longest delay between two runs of a failing hook.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);

/// Tokens of the hooks' pidfds and pipes: three per stream from here.
const TOKEN_BASE: usize = usize::MAX / 2;

/// The delay before run `failures + 1` of a file that failed `failures`
/// times (at least once).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// A stream's hook counts for the self-report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookCounts {
    /// Runs that exited 0 since start.
    pub done: u64,
    /// Runs that failed (non-zero exit, signal, timeout, could not start).
    pub failed: u64,
    /// Files whose hook is not done yet (running, waiting or retrying).
    pub pending: u64,
}

/// One file waiting for its hook.
#[derive(Debug)]
struct Entry {
    /// What the state file says of it.
    line: Line,
    /// Fsynced and renamed: the hook may run.
    finished: bool,
    /// Failed runs so far.
    failures: u32,
    /// Not before this.
    due: Instant,
}

/// One stream's hook.
#[derive(Debug)]
struct StreamHook {
    /// The folder name, for log lines and `{stream}`.
    name: String,
    /// The stream folder, absolute.
    dir: PathBuf,
    /// The stream folder as the config names it (relative to the working
    /// directory if `data-folder` is): the writer's paths start so.
    given_dir: PathBuf,
    cfg: OnFinish,
    /// Pending files in finishing order.
    queue: VecDeque<Entry>,
    /// With `keep-until-done`: the creation times (file names) of the
    /// pending files, for retention.
    held: HashSet<i64>,
    /// The file being run (`rel`) and its process.
    running: Option<(String, Running)>,
    counts: HookCounts,
    /// The earliest moment some entry may start (a cache of the queue).
    wake: Option<Instant>,
    /// Writing the state file failed (warned once until it works again).
    save_failing: bool,
}

/// Every stream's hook.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Per stream in config order; `None` = no `on-finish`.
    streams: Vec<Option<StreamHook>>,
    /// The stop began: nothing new starts.
    stopping: bool,
    /// A file retention kept (`keep-until-done`) is done since the last
    /// [`take_released`](Hooks::take_released).
    released: bool,
}

/// The creation time in the name of a finished file (`day/name`).
fn created_us(rel: &str) -> Option<i64> {
    let name = crate::layout::parse(std::ffi::OsStr::new(rel.rsplit('/').next()?))?;
    (name.kind == crate::layout::Kind::Finished).then_some(name.created_us)
}

/// `day/name` of `path` in stream folder `dir` (absolute) or `given`.
fn relative(dir: &Path, given: &Path, path: &Path) -> Option<String> {
    let rel = path
        .strip_prefix(dir)
        .or_else(|_| path.strip_prefix(given))
        .ok()?;
    let rel = rel.to_str()?;
    (rel.split('/').count() == 2).then(|| rel.to_owned())
}

impl Hooks {
    /// The hooks of `streams` (`(folder name, stream folder, on-finish)` in
    /// config order), with the files their state files list as pending
    /// (those that no longer exist are forgotten). Runs after start-up
    /// recovery.
    pub fn new(streams: Vec<(String, PathBuf, Option<OnFinish>)>, now: Instant) -> Hooks {
        let streams = streams
            .into_iter()
            .map(|(name, dir, cfg)| {
                let cfg = cfg?;
                let given_dir = dir.clone();
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                let mut hook = StreamHook {
                    given_dir,
                    name,
                    cfg,
                    queue: VecDeque::new(),
                    held: HashSet::new(),
                    running: None,
                    counts: HookCounts::default(),
                    wake: None,
                    save_failing: false,
                    dir,
                };
                let lines = state::load(&hook.dir);
                let listed = lines.len();
                for line in lines {
                    let path = hook.dir.join(&line.rel);
                    let finished = path.exists();
                    let part = PathBuf::from(format!("{}.part", path.display()));
                    if finished || part.exists() {
                        hook.push(line, finished, now);
                    }
                }
                if hook.queue.len() != listed {
                    hook.save();
                }
                if !hook.queue.is_empty() {
                    log::info!(
                        "[{}] on-finish: {} file(s) not done by an earlier run",
                        hook.name,
                        hook.queue.len()
                    );
                }
                Some(hook)
            })
            .collect();
        Hooks {
            streams,
            stopping: false,
            released: false,
        }
    }

    fn get(&mut self, stream: usize) -> Option<&mut StreamHook> {
        self.streams.get_mut(stream).and_then(Option::as_mut)
    }

    /// A file of `stream` was closed: it is pending from now on (recorded
    /// before its rename, so that a crash in between cannot lose it).
    pub fn closed(&mut self, stream: usize, part: &Path, now: Instant) {
        let Some(h) = self.get(stream) else {
            return;
        };
        let Some(rel) = relative(&h.dir, &h.given_dir, &final_name(part)) else {
            return;
        };
        if !h.queue.iter().any(|e| e.line.rel == rel) {
            h.push(
                Line {
                    rel,
                    ..Line::default()
                },
                false,
                now,
            );
            h.save();
        }
    }

    /// A file of `stream` is finished (by the finaliser, or by start-up
    /// recovery): its hook may run.
    pub fn finished(&mut self, stream: usize, facts: &FileFacts, now: Instant) {
        let Some(h) = self.get(stream) else {
            return;
        };
        let Some(rel) = relative(&h.dir, &h.given_dir, &facts.path) else {
            return;
        };
        let line = Line {
            rel: rel.clone(),
            first_us: facts.first_us,
            last_us: facts.last_us,
            rows: facts.rows,
            bytes: facts.bytes,
        };
        match h.queue.iter_mut().find(|e| e.line.rel == rel) {
            // Listed at its close already: the figures stay in memory (a
            // restart reads them from the file again), no rewrite.
            Some(e) => {
                e.line = line;
                e.finished = true;
                e.due = now;
            }
            None => {
                h.push(line, true, now);
                h.save();
            }
        }
        h.wake = h.wake.map_or(Some(now), |w| Some(w.min(now)));
    }

    /// Starts the hook of the oldest runnable file of every stream that
    /// runs none (not during the stop).
    pub fn run_due(&mut self, registry: &Registry, now: Instant) {
        if self.stopping {
            return;
        }
        for (i, h) in self.streams.iter_mut().enumerate() {
            let Some(h) = h.as_mut() else {
                continue;
            };
            if h.running.is_none() && h.wake.is_some_and(|w| w <= now) {
                h.start_next(registry, tokens(i), now);
            }
        }
    }

    /// The earliest moment [`on_timer`](Self::on_timer) or
    /// [`run_due`](Self::run_due) has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .iter()
            .flatten()
            .filter_map(|h| match &h.running {
                Some((_, r)) => Some(r.next_deadline()),
                None if self.stopping => None,
                None => h.wake,
            })
            .min()
    }

    /// Timeouts of running hooks (and exits without a pidfd).
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) {
        for h in self.streams.iter_mut().flatten() {
            let ended = match &mut h.running {
                Some((_, r)) if r.next_deadline() <= now => r.on_timer(registry, now),
                _ => None,
            };
            if let Some(end) = ended {
                self.released |= h.ended(end, now);
            }
        }
    }

    /// Whether `token` belongs to a hook.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= TOKEN_BASE && token.0 < TOKEN_BASE.saturating_add(3 * self.streams.len())
    }

    /// Readiness of a hook's pidfd or pipe.
    pub fn on_ready(&mut self, registry: &Registry, token: Token, now: Instant) {
        let i = (token.0 - TOKEN_BASE) / 3;
        let Some(h) = self.get(i) else {
            return;
        };
        let ended = match &mut h.running {
            Some((_, r)) => r.on_ready(registry, token, now),
            None => None,
        };
        if let Some(end) = ended {
            self.released |= h.ended(end, now);
        }
    }

    /// Whether a file retention kept became free to delete since the last
    /// call (so that a pass can run at once instead of within the minute).
    pub fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.released)
    }

    /// The stop began: nothing new starts; running hooks may end within
    /// the stop's time bound.
    pub fn begin_stop(&mut self) {
        self.stopping = true;
    }

    /// Hooks still running.
    pub fn running(&self) -> usize {
        self.streams
            .iter()
            .flatten()
            .filter(|h| h.running.is_some())
            .count()
    }

    /// End of the stop: SIGTERM to every hook still running; their files
    /// stay pending and run again at the next start.
    pub fn terminate_all(&mut self, registry: &Registry) {
        for h in self.streams.iter_mut().flatten() {
            if let Some((rel, mut r)) = h.running.take() {
                log::warn!(
                    "[{}] on-finish for {rel} still running at stop: sending SIGTERM; it runs again at the next start",
                    h.name
                );
                r.terminate();
                r.close(registry);
            }
        }
    }

    /// Retention asks: is this file of `stream` (created at `created_us`)
    /// kept until its hook is done?
    pub fn holds(&self, stream: usize, created_us: i64) -> bool {
        self.streams
            .get(stream)
            .and_then(Option::as_ref)
            .is_some_and(|h| h.held.contains(&created_us))
    }

    /// The counts of `stream` for the self-report.
    pub fn counts(&self, stream: usize) -> HookCounts {
        self.streams
            .get(stream)
            .and_then(Option::as_ref)
            .map_or_else(HookCounts::default, |h| h.counts)
    }
}

/// The three tokens of stream `i`'s running hook.
fn tokens(i: usize) -> Tokens {
    let base = TOKEN_BASE + 3 * i;
    Tokens {
        exit: Token(base),
        out: Token(base + 1),
        err: Token(base + 2),
    }
}

impl StreamHook {
    fn push(&mut self, line: Line, finished: bool, now: Instant) {
        if self.cfg.keep_until_done
            && let Some(c) = created_us(&line.rel)
        {
            self.held.insert(c);
        }
        self.queue.push_back(Entry {
            line,
            finished,
            failures: 0,
            due: now,
        });
        self.counts.pending = self.queue.len() as u64;
        self.rewake();
    }

    /// Recomputes when the next entry may start.
    fn rewake(&mut self) {
        self.wake = self
            .queue
            .iter()
            .filter(|e| e.finished)
            .map(|e| e.due)
            .min();
    }

    fn save(&mut self) {
        match state::save(&self.dir, self.queue.iter().map(|e| &e.line)) {
            Ok(()) => self.save_failing = false,
            Err(e) => {
                if !self.save_failing {
                    log::error!(
                        "[{}] cannot write {}: {e}; a restart may run a done hook again or miss a pending one",
                        self.name,
                        self.dir.join(state::FILE_NAME).display()
                    );
                }
                self.save_failing = true;
            }
        }
    }

    /// Starts the oldest runnable entry, if any. A file that is gone
    /// (deleted by hand, or by retention without `keep-until-done`) is
    /// dropped from the list instead: its hook could never succeed.
    fn start_next(&mut self, registry: &Registry, tokens: Tokens, now: Instant) {
        while let Some(pos) = self.queue.iter().position(|e| e.finished && e.due <= now) {
            let rel = self.queue.get(pos).map(|e| e.line.rel.clone());
            let Some(rel) = rel else { break };
            if self.dir.join(&rel).exists() {
                break;
            }
            log::warn!(
                "[{}] on-finish: {rel} is gone (deleted before its hook was done); not running it",
                self.name
            );
            self.queue.remove(pos);
            if let Some(c) = created_us(&rel) {
                self.held.remove(&c);
            }
            self.counts.pending = self.queue.len() as u64;
            self.save();
        }
        let Some(e) = self.queue.iter_mut().find(|e| e.finished && e.due <= now) else {
            self.rewake();
            return;
        };
        let path = self.dir.join(&e.line.rel);
        if e.line.bytes.is_none() {
            // Closed by a run that ended before it was finished.
            let facts = read_facts(&path);
            e.line.first_us = facts.first_us;
            e.line.last_us = facts.last_us;
            e.line.rows = facts.rows;
            e.line.bytes = facts.bytes;
        }
        let day = e.line.rel.split('/').next().unwrap_or("").to_owned();
        let file = path.display().to_string();
        let expand = |arg: &str| {
            arg.replace("{file}", &file)
                .replace("{stream}", &self.name)
                .replace("{day}", &day)
        };
        let argv: Vec<String> = self.cfg.command.iter().map(|a| expand(a)).collect();
        let opt = |v: Option<String>| v.unwrap_or_default();
        let env = [
            ("ATTIC_FILE", file.clone()),
            ("ATTIC_STREAM", self.name.clone()),
            ("ATTIC_DAY", day),
            (
                "ATTIC_FIRST_US",
                opt(e.line.first_us.map(|v| v.to_string())),
            ),
            ("ATTIC_LAST_US", opt(e.line.last_us.map(|v| v.to_string()))),
            ("ATTIC_ROWS", opt(e.line.rows.map(|v| v.to_string()))),
            ("ATTIC_BYTES", opt(e.line.bytes.map(|v| v.to_string()))),
        ];
        let rel = e.line.rel.clone();
        let prefix = format!("[{}] on-finish {rel}", self.name);
        match Running::spawn(&argv, &env, self.cfg.timeout, registry, tokens, prefix, now) {
            Ok(r) => {
                log::debug!(
                    "[{}] on-finish started for {rel} (pid {})",
                    self.name,
                    r.pid()
                );
                self.running = Some((rel, r));
                self.wake = None;
            }
            Err(err) => {
                e.failures += 1;
                let delay = backoff(e.failures);
                e.due = now + delay;
                self.counts.failed += 1;
                log::error!(
                    "[{}] on-finish for {rel} could not start `{}`: {err}; retrying in {} s",
                    self.name,
                    argv.first().map_or("", String::as_str),
                    delay.as_secs()
                );
                self.rewake();
            }
        }
    }

    /// The running hook ended; true if that freed a file retention kept.
    fn ended(&mut self, end: Ended, now: Instant) -> bool {
        let Some((rel, _)) = self.running.take() else {
            return false;
        };
        let mut released = false;
        let pos = self.queue.iter().position(|e| e.line.rel == rel);
        if end.status.success() && !end.timed_out {
            log::info!(
                "[{}] on-finish done for {rel} ({:.1} s)",
                self.name,
                end.took.as_secs_f64()
            );
            self.counts.done += 1;
            if let Some(e) = pos.and_then(|p| self.queue.remove(p)) {
                if let Some(c) = created_us(&e.line.rel) {
                    released = self.held.remove(&c);
                }
            }
            self.counts.pending = self.queue.len() as u64;
            self.save();
        } else {
            self.counts.failed += 1;
            let failures = match pos.and_then(|p| self.queue.get_mut(p)) {
                Some(e) => {
                    e.failures += 1;
                    e.due = now + backoff(e.failures);
                    e.failures
                }
                None => 1,
            };
            let how = if end.timed_out {
                format!("ended at its timeout ({})", end.status)
            } else {
                end.status.to_string()
            };
            let stderr = end.last_stderr.map_or("no stderr output".to_owned(), |l| {
                format!("last stderr line: {l}")
            });
            log::warn!(
                "[{}] on-finish failed for {rel}: {how}; {stderr}; retrying in {} s",
                self.name,
                backoff(failures).as_secs()
            );
        }
        self.rewake();
        released
    }
}

#[cfg(test)]
mod tests;
