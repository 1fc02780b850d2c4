//! Retention: deletes the oldest finished files so that the disk never
//! fills (`retention:` in the config; SPEC section 11).
//!
//! ```text
//!   request (start-up, rotation, full disk) or once a minute
//!     -> refresh   each stream's catalog of day folders and finished files (scan)
//!     -> plan      how many of each stream's oldest files go, and why (plan, pure)
//!     -> delete    oldest first; day folders left empty go
//!     -> report    one log line per stream that lost files; counters; min-free warning
//! ```
//!
//! Every phase is sliced: [`Retention::step`] does what fits in its
//! [`Budget`] and the loop calls it again on its next turn, so a pass over
//! 100,000 files never stalls the loop. Owns: the pass state, the per-stream
//! totals of deleted files and bytes, the once-per-change warning when
//! `min-free-mb` cannot be met. Must not: delete anything but a finished
//! file Attic named (`<16 digits>.sqlite`) in a `YYYY-MM-DD` folder of a
//! stream folder of the config, or a day folder left empty; touch a `.part`
//! file; read the wall clock for `max-age-days` (the loop passes it in; the
//! scan reads it only to distrust a day folder modified a moment ago).

mod limits;
mod plan;
mod scan;

pub use limits::{Limits, MB};
pub use scan::Budget;

use plan::{Input, Plan};
use scan::{Catalog, Refresh, finished_file_name, remove_empty_day};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pass runs at least this often.
pub const EVERY: Duration = Duration::from_secs(60);

/// How the free space of the data folder's file system is measured
/// (statvfs in the service; a fake in tests).
pub type FreeSpace = Box<dyn FnMut(&Path) -> io::Result<u64>>;

/// Bytes available to an unprivileged user on the file system holding
/// `path` (`f_bavail * f_frsize` of statvfs).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    file_system_bytes(path).map(|(free, _)| free)
}

/// Of the file system holding `path`: the bytes available to an
/// unprivileged user and its whole size (`f_bavail` and `f_blocks` times
/// `f_frsize` of statvfs).
pub fn file_system_bytes(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `statvfs` is plain data; the call fills it or fails.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a pointer to a statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(
        clippy::useless_conversion,
        reason = "the field types are 32-bit on some targets"
    )]
    let (avail, blocks, frsize) = (
        u64::from(st.f_bavail),
        u64::from(st.f_blocks),
        u64::from(st.f_frsize),
    );
    Ok((avail.saturating_mul(frsize), blocks.saturating_mul(frsize)))
}

/// What retention needs to know of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// `data-folder`.
    pub data_folder: PathBuf,
    /// Each stream's folder name and resolved limits, in config order.
    pub streams: Vec<(String, Limits)>,
    /// `retention.min-free-mb` in bytes.
    pub min_free_bytes: Option<u64>,
}

/// One stream's retention state.
#[derive(Debug)]
struct Stream {
    /// The folder name, for log lines.
    name: String,
    /// Its resolved `retention` limits.
    limits: Limits,
    /// Its day folders and finished files as last read.
    catalog: Catalog,
    /// Where the sliced refresh of `catalog` stands.
    refresh: Refresh,
    /// Files deleted since start.
    files_deleted: u64,
    /// Bytes deleted since start.
    bytes_deleted: u64,
}

/// What one pass deleted in one stream.
#[derive(Debug, Default)]
struct Tally {
    files: u64,
    bytes: u64,
    /// `day/name` of the oldest and newest file deleted.
    oldest: Option<String>,
    newest: Option<String>,
    /// Deletions that failed (other than "already gone"), and the first.
    failed: u64,
    first_failure: Option<String>,
}

/// Where a pass stands.
#[derive(Debug)]
enum Phase {
    /// No pass running.
    Idle,
    /// Reading stream `stream`'s folders.
    Refresh { stream: usize },
    /// Deleting the planned files of stream `stream`: `left` more, from
    /// file `pos` of day `day` of its catalog.
    Delete {
        plan: Plan,
        stream: usize,
        day: usize,
        pos: usize,
        left: usize,
        tally: Tally,
    },
}

/// Retention for every stream of a config.
pub struct Retention {
    streams: Vec<Stream>,
    /// `data-folder`: whose file system `min-free-mb` is about.
    data_folder: PathBuf,
    /// `retention.min-free-mb` in bytes.
    min_free: Option<u64>,
    free_space: FreeSpace,
    phase: Phase,
    /// When the next pass starts (while idle).
    due: Instant,
    /// When the running pass started (a past deadline keeps the loop
    /// turning until it is done).
    started: Instant,
    /// A pass was asked for while one was running.
    again: bool,
    /// Per stream: its storage was failing at the last look.
    failing: Vec<bool>,
    /// `min-free-mb` could not be met and nothing was left to delete (the
    /// warning has been given).
    starved: bool,
    /// The free space could not be measured (the warning has been given).
    free_unknown: bool,
    /// Files deleted by the running pass.
    pass_deleted: u64,
    /// Files the running pass found held (`keep-until-done`).
    pass_held: u64,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("streams", &self.streams.len())
            .field("min_free", &self.min_free)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Retention {
    /// Retention for the streams of `setup`, or `None` when it asks for
    /// none (no `retention` anywhere: keep everything). The first pass is
    /// due at once (the loop starts after start-up recovery).
    pub fn new(setup: Setup, now: Instant) -> Option<Self> {
        Self::with_free_space(setup, now, Box::new(free_bytes))
    }

    /// Like [`new`](Self::new), measuring free space with `free_space`.
    pub fn with_free_space(setup: Setup, now: Instant, free_space: FreeSpace) -> Option<Self> {
        let any_limit = setup.streams.iter().any(|s| s.1 != Limits::default());
        if !any_limit && setup.min_free_bytes.is_none() {
            return None;
        }
        let streams = setup
            .streams
            .into_iter()
            .map(|(name, limits)| Stream {
                catalog: Catalog::new(setup.data_folder.join(&name)),
                name,
                limits,
                refresh: Refresh::Start,
                files_deleted: 0,
                bytes_deleted: 0,
            })
            .collect::<Vec<_>>();
        Some(Retention {
            failing: vec![false; streams.len()],
            streams,
            data_folder: setup.data_folder,
            min_free: setup.min_free_bytes,
            free_space,
            phase: Phase::Idle,
            due: now,
            started: now,
            again: false,
            starved: false,
            free_unknown: false,
            pass_deleted: 0,
            pass_held: 0,
        })
    }

    /// Asks for a pass as soon as possible (after a rotation, on a full
    /// disk); one is started after the running one if need be.
    pub fn request(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle => self.due = self.due.min(now),
            _ => self.again = true,
        }
    }

    /// Tells whether stream `i`'s storage is failing now; when it starts
    /// failing (a full disk, typically), a pass is asked for at once.
    pub fn storage_failing(&mut self, i: usize, failing: bool, now: Instant) {
        let Some(was) = self.failing.get_mut(i) else {
            return;
        };
        let rising = failing && !*was;
        *was = failing;
        if rising {
            self.request(now);
        }
    }

    /// When [`step`](Self::step) must be called next: in the past while a
    /// pass is running (the loop then does not wait).
    pub fn next_deadline(&self) -> Instant {
        match self.phase {
            Phase::Idle => self.due,
            _ => self.started,
        }
    }

    /// Files and bytes deleted from stream `i` since start.
    pub fn deleted(&self, i: usize) -> (u64, u64) {
        self.streams
            .get(i)
            .map_or((0, 0), |s| (s.files_deleted, s.bytes_deleted))
    }

    /// Does the part of the pass that fits in `budget` (starting one if it
    /// is due); `wall_us` is the wall clock (unix µs) for `max-age-days`.
    /// True when this call ended a pass that deleted something: storage
    /// that failed for want of space is worth retrying now.
    pub fn step(&mut self, now: Instant, wall_us: i64, budget: &mut Budget) -> bool {
        self.step_keeping(now, wall_us, budget, &|_, _| false)
    }

    /// [`step`](Self::step), never deleting a file for which `held(stream,
    /// created_us)` is true (`keep-until-done`: its on-finish hook is not
    /// done). Held files still count towards `max-size-mb`.
    pub fn step_keeping(
        &mut self,
        now: Instant,
        wall_us: i64,
        budget: &mut Budget,
        held: &dyn Fn(usize, i64) -> bool,
    ) -> bool {
        if matches!(self.phase, Phase::Idle) {
            if now < self.due {
                return false;
            }
            self.started = now;
            self.pass_deleted = 0;
            self.phase = Phase::Refresh { stream: 0 };
        }
        loop {
            match &mut self.phase {
                Phase::Idle => return false,
                Phase::Refresh { stream } => {
                    let i = *stream;
                    let Some(s) = self.streams.get_mut(i) else {
                        self.phase = self.plan(wall_us, held);
                        continue;
                    };
                    let needed = s.limits != Limits::default() || self.min_free.is_some();
                    if needed && !s.catalog.refresh(&mut s.refresh, budget) {
                        return false;
                    }
                    self.phase = Phase::Refresh { stream: i + 1 };
                }
                Phase::Delete { .. } => {
                    if !self.delete(budget, held) {
                        return false;
                    }
                    let deleted = self.finish();
                    self.phase = Phase::Idle;
                    self.due = if std::mem::take(&mut self.again) {
                        now
                    } else {
                        now + EVERY
                    };
                    return deleted;
                }
            }
        }
    }

    /// Decides the pass from the refreshed catalogs.
    fn plan(&mut self, wall_us: i64, held: &dyn Fn(usize, i64) -> bool) -> Phase {
        let free = match self.min_free {
            Some(_) => self.measure_free(),
            None => None,
        };
        let per_stream: Vec<Box<dyn Fn(i64) -> bool + '_>> = (0..self.streams.len())
            .map(|i| Box::new(move |c| held(i, c)) as Box<dyn Fn(i64) -> bool + '_>)
            .collect();
        self.pass_held = self
            .streams
            .iter()
            .zip(&per_stream)
            .map(|(s, h)| {
                let days = s.catalog.days.iter();
                days.flat_map(|d| d.files.iter())
                    .filter(|f| h(f.created_us))
                    .count() as u64
            })
            .sum();
        let inputs: Vec<Input<'_>> = self
            .streams
            .iter()
            .zip(&per_stream)
            .map(|(s, h)| Input {
                held: h.as_ref(),
                days: &s.catalog.days,
                created_before_us: s.limits.max_age.map(|age| {
                    let age_us = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
                    wall_us.saturating_sub(age_us)
                }),
                max_size_bytes: s.limits.max_size_bytes,
            })
            .collect();
        let plan = plan::plan(&inputs, free.unwrap_or(u64::MAX), self.min_free);
        let left = plan.take.first().map_or(0, |t| t.count);
        Phase::Delete {
            plan,
            stream: 0,
            day: 0,
            pos: 0,
            left,
            tally: Tally::default(),
        }
    }

    fn measure_free(&mut self) -> Option<u64> {
        match (self.free_space)(&self.data_folder) {
            Ok(free) => {
                self.free_unknown = false;
                Some(free)
            }
            Err(e) => {
                if !self.free_unknown {
                    log::warn!(
                        "retention: cannot measure the free space of {}: {e}; min-free-mb is not applied",
                        self.data_folder.display()
                    );
                    self.free_unknown = true;
                }
                None
            }
        }
    }

    /// Deletes planned files within `budget`; true when every stream is done.
    fn delete(&mut self, budget: &mut Budget, held: &dyn Fn(usize, i64) -> bool) -> bool {
        let Phase::Delete {
            plan,
            stream,
            day,
            pos,
            left,
            tally,
        } = &mut self.phase
        else {
            return true;
        };
        loop {
            let i = *stream;
            let Some(s) = self.streams.get_mut(i) else {
                return true;
            };
            let days = &mut s.catalog.days;
            let day_done = days.get(*day).is_none_or(|d| *pos >= d.files.len());
            if *left == 0 || day_done {
                // Leave this day folder: forget what went, remove it if empty.
                if let Some(d) = days.get_mut(*day) {
                    if *pos > 0 {
                        // Forget what went; a held file stays.
                        let mut k = 0;
                        d.files.retain(|f| {
                            k += 1;
                            k > *pos || held(i, f.created_us)
                        });
                        d.touched();
                    }
                    if d.files.is_empty() && d.others == 0 {
                        remove_empty_day(&s.catalog.dir.join(&d.name));
                        days.remove(*day);
                    } else {
                        *day += 1;
                    }
                }
                *pos = 0;
                if *left == 0 || *day >= days.len() {
                    let t = std::mem::take(tally);
                    let why = plan
                        .take
                        .get(*stream)
                        .map(|t| t.why.keys())
                        .unwrap_or_default();
                    self.pass_deleted += t.files;
                    report(s, t, &why);
                    *stream += 1;
                    *day = 0;
                    *left = plan.take.get(*stream).map_or(0, |t| t.count);
                }
                continue;
            }
            if !budget.take() {
                return false;
            }
            let Some(d) = days.get(*day) else {
                continue;
            };
            let Some(f) = d.files.get(*pos).copied() else {
                continue;
            };
            if held(i, f.created_us) {
                *pos += 1;
                continue;
            }
            let name = finished_file_name(f.created_us);
            let path = s.catalog.dir.join(&d.name).join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    let shown = format!("{}/{name}", d.name);
                    tally.files += 1;
                    tally.bytes += f.size;
                    if tally.oldest.is_none() {
                        tally.oldest = Some(shown.clone());
                    }
                    tally.newest = Some(shown);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tally.failed += 1;
                    if tally.first_failure.is_none() {
                        tally.first_failure = Some(format!("{}: {e}", path.display()));
                    }
                }
            }
            *pos += 1;
            *left -= 1;
        }
    }

    /// End of a pass: the min-free state; true if anything was deleted.
    fn finish(&mut self) -> bool {
        let Phase::Delete { plan, .. } = &self.phase else {
            return false;
        };
        let exhausted = plan.exhausted;
        let deleted = self.pass_deleted > 0;
        let Some(min_free) = self.min_free else {
            return deleted;
        };
        let Some(free) = self.measure_free() else {
            return deleted;
        };
        let mb = |b: u64| b / 1_048_576;
        if free >= min_free {
            if self.starved {
                log::info!(
                    "retention: {} MB free again (min-free-mb {})",
                    mb(free),
                    mb(min_free)
                );
                self.starved = false;
            }
        } else if exhausted && self.pass_held > 0 {
            if !self.starved {
                log::warn!(
                    "retention: min-free-mb {} cannot be reached: {} MB free on the file system of {}; {} finished file(s) are kept until their on-finish hook is done (keep-until-done)",
                    mb(min_free),
                    mb(free),
                    self.data_folder.display(),
                    self.pass_held
                );
                self.starved = true;
            }
        } else if exhausted {
            if !self.starved {
                log::warn!(
                    "retention: min-free-mb {} cannot be reached: {} MB free on the file system of {} and no finished file left to delete",
                    mb(min_free),
                    mb(free),
                    self.data_folder.display()
                );
                self.starved = true;
            }
        } else if deleted {
            // The sizes were a prediction (blocks, files held open
            // elsewhere): look again at once.
            self.again = true;
        }
        deleted
    }
}

/// The pass's log line for one stream, and its totals.
fn report(s: &mut Stream, t: Tally, why: &str) {
    s.files_deleted += t.files;
    s.bytes_deleted += t.bytes;
    if t.files > 0 {
        log::info!(
            "[{}] retention deleted {} file(s), {} bytes ({:.1} MiB), oldest {}, newest {} ({why})",
            s.name,
            t.files,
            t.bytes,
            t.bytes as f64 / 1_048_576.0,
            t.oldest.as_deref().unwrap_or("-"),
            t.newest.as_deref().unwrap_or("-"),
        );
    }
    if let Some(first) = t.first_failure {
        log::warn!(
            "[{}] retention could not delete {} file(s); first: {first}",
            s.name,
            t.failed
        );
    }
}

#[cfg(test)]
mod tests;
