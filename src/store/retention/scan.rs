//! What retention may delete, as found on disk: one stream folder's day
//! folders and, in each, the finished files Attic named, with their sizes.
//!
//! Owns: the per-day cache (a day folder
//! whose identity and modification time have not changed is not read again;
//! a known file keeps its size, since a finished file never changes), the
//! removal of day folders found empty, and the sliced walk that keeps every
//! call within a [`Budget`]. Must not: delete a file, follow a symbolic
//! link, or look outside its stream folder.

use crate::layout;
use std::ffi::OsStr;
use std::fs::{self, ReadDir};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A day folder modified this recently may change again within the same
/// timestamp tick: it is not trusted from the cache next time.
const RACY: Duration = Duration::from_secs(2);

/// How much work one call may do: a deadline, and (for tests) a count of
/// operations (a directory entry read, a file inspected or deleted).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
    ops_left: u64,
}

impl Budget {
    /// Work until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Budget {
            deadline,
            ops_left: u64::MAX,
        }
    }

    /// At most `ops` operations (and no deadline), for deterministic tests.
    pub fn ops(ops: u64) -> Self {
        Budget {
            deadline: Instant::now() + Duration::from_secs(3600),
            ops_left: ops,
        }
    }

    /// Takes one operation from the budget; false when it is spent.
    pub fn take(&mut self) -> bool {
        if self.ops_left == 0 || Instant::now() >= self.deadline {
            return false;
        }
        self.ops_left -= 1;
        true
    }
}

/// The creation time (unix µs) of a finished file's name (see `layout`).
pub fn finished_name(name: &OsStr) -> Option<i64> {
    layout::parse(name)
        .filter(|n| n.kind == layout::Kind::Finished)
        .map(|n| n.created_us)
}

/// The name of the finished file created at `created_us`.
pub fn finished_file_name(created_us: i64) -> String {
    layout::file_name(created_us)
}

/// A day folder's name: `YYYY-MM-DD`.
pub fn is_day_name(name: &OsStr) -> bool {
    layout::is_day_folder(name)
}

/// A finished file retention may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    /// Unix µs from its name.
    pub created_us: i64,
    /// Its length in bytes.
    pub size: u64,
    /// Its modification time in unix µs: when it was finished.
    pub mtime_us: i64,
}

impl File {
    /// The moment its age is judged by: the later of its name's time and
    /// its modification time. A file recorded while the clock was behind
    /// (a Pi before NTP) has an old name but a recent modification time,
    /// and a forward step must not make it look old.
    pub fn age_from_us(&self) -> i64 {
        self.created_us.max(self.mtime_us)
    }
}

/// A modification time in unix µs (0 when the system cannot say).
fn mtime_us(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000)
        .saturating_add(meta.mtime_nsec() / 1_000)
}

/// Identity and modification time of a day folder: equal = same entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirKey {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
}

impl DirKey {
    fn of(meta: &fs::Metadata) -> Self {
        DirKey {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// One day folder as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub name: String,
    /// The folder's key when it was read; `None` = read it again next time.
    key: Option<DirKey>,
    /// Its finished files, oldest first.
    pub files: Vec<File>,
    /// Entries that are not finished files (`.part`, `-wal`, foreign
    /// files, folders): the folder is never removed while it has any.
    pub others: usize,
}

impl Day {
    /// A day folder read with these files and nothing else (for tests of
    /// the planner and the executor).
    #[cfg(test)]
    pub fn with_files(name: &str, files: Vec<File>) -> Day {
        Day {
            name: name.to_owned(),
            key: None,
            files,
            others: 0,
        }
    }

    /// A day as the executor leaves it after deleting in it: to be read
    /// again next time (its modification time changed).
    pub fn touched(&mut self) {
        self.key = None;
    }
}

/// One stream folder's day folders, oldest first.
#[derive(Debug, Default)]
pub struct Catalog {
    /// `<data-folder>/<stream folder>`.
    pub dir: PathBuf,
    /// The day folders, by name (= by date).
    pub days: Vec<Day>,
}

/// Where a sliced refresh of a [`Catalog`] stands.
#[derive(Debug, Default)]
pub enum Refresh {
    /// Not started.
    #[default]
    Start,
    /// Reading the stream folder's entries.
    Listing { iter: ReadDir, names: Vec<String> },
    /// Checking the day folders; `scan` is the one being read.
    Days { next: usize, scan: Option<DayScan> },
}

/// A day folder being read.
#[derive(Debug)]
pub struct DayScan {
    iter: ReadDir,
    key: Option<DirKey>,
    files: Vec<File>,
    others: usize,
}

impl Catalog {
    /// An empty catalog of `dir` (read by the first refresh).
    pub fn new(dir: PathBuf) -> Self {
        Catalog {
            dir,
            days: Vec::new(),
        }
    }

    /// Brings the catalog up to date with the disk, within `budget`;
    /// true when done (`state` is then back at `Start`).
    pub fn refresh(&mut self, state: &mut Refresh, budget: &mut Budget) -> bool {
        loop {
            match state {
                Refresh::Start => match fs::read_dir(&self.dir) {
                    Ok(iter) => {
                        *state = Refresh::Listing {
                            iter,
                            names: Vec::new(),
                        }
                    }
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            log::warn!("retention: cannot read {}: {e}", self.dir.display());
                        }
                        self.days.clear();
                        return true;
                    }
                },
                Refresh::Listing { iter, names } => {
                    if !budget.take() {
                        return false;
                    }
                    match iter.next() {
                        Some(Ok(entry)) => {
                            // file_type() does not follow links: a linked
                            // "day folder" is not ours to walk into.
                            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                            let name = entry.file_name();
                            if is_dir && is_day_name(&name) {
                                names.push(name.to_string_lossy().into_owned());
                            }
                        }
                        Some(Err(e)) => {
                            log::warn!("retention: cannot list {}: {e}", self.dir.display());
                        }
                        None => {
                            let mut names = std::mem::take(names);
                            names.sort_unstable();
                            self.merge_names(names);
                            *state = Refresh::Days {
                                next: 0,
                                scan: None,
                            };
                        }
                    }
                }
                Refresh::Days { next, scan } => {
                    let Some(day) = self.days.get_mut(*next) else {
                        self.days.retain(|d| !(d.files.is_empty() && d.others == 0));
                        *state = Refresh::Start;
                        return true;
                    };
                    if !budget.take() {
                        return false;
                    }
                    let path = self.dir.join(&day.name);
                    match scan {
                        None => match start_scan(&path, day) {
                            Some(s) => *scan = Some(s),
                            None => *next += 1,
                        },
                        Some(s) => match s.iter.next() {
                            Some(Ok(entry)) => s.add(&entry, day),
                            Some(Err(e)) => {
                                log::warn!("retention: cannot list {}: {e}", path.display());
                                s.key = None;
                            }
                            None => {
                                let Some(mut s) = scan.take() else {
                                    continue;
                                };
                                s.files.sort_unstable_by_key(|f| f.created_us);
                                day.files = s.files;
                                day.others = s.others;
                                day.key = s.key;
                                if day.files.is_empty() && day.others == 0 {
                                    remove_empty_day(&path);
                                }
                                *next += 1;
                            }
                        },
                    }
                }
            }
        }
    }

    /// Keeps the cached days that still exist, adds new ones, in order.
    fn merge_names(&mut self, names: Vec<String>) {
        let mut old = std::mem::take(&mut self.days).into_iter().peekable();
        for name in names {
            while old.peek().is_some_and(|d| d.name < name) {
                old.next();
            }
            match old.peek() {
                Some(d) if d.name == name => self.days.extend(old.next()),
                _ => self.days.push(Day {
                    name,
                    key: None,
                    files: Vec::new(),
                    others: 0,
                }),
            }
        }
    }
}

/// Starts reading `path` unless the cache is still good (`None`).
fn start_scan(path: &Path, day: &mut Day) -> Option<DayScan> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => m,
        // Gone (or replaced by something else) since the listing.
        _ => {
            day.files.clear();
            day.others = 1; // not ours to remove; dropped with the next listing
            day.key = None;
            return None;
        }
    };
    let key = DirKey::of(&meta);
    if day.key == Some(key) {
        return None;
    }
    let racy = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_none_or(|age| age < RACY);
    match fs::read_dir(path) {
        Ok(iter) => Some(DayScan {
            iter,
            key: (!racy).then_some(key),
            files: Vec::with_capacity(day.files.len()),
            others: 0,
        }),
        Err(e) => {
            log::warn!("retention: cannot read {}: {e}", path.display());
            day.key = None;
            None
        }
    }
}

impl DayScan {
    /// Takes one entry of the day folder into account.
    fn add(&mut self, entry: &fs::DirEntry, day: &Day) {
        let name = entry.file_name();
        let created = finished_name(&name);
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let Some(created) = created.filter(|_| is_file) else {
            self.others += 1;
            return;
        };
        // A finished file never changes: a known one keeps its size.
        let known = day
            .files
            .binary_search_by_key(&created, |f| f.created_us)
            .ok()
            .and_then(|i| day.files.get(i));
        let (size, mtime_us) = match known {
            Some(f) => (f.size, f.mtime_us),
            None => match entry.metadata() {
                Ok(m) => (m.len(), mtime_us(&m)),
                Err(_) => {
                    // Deleted meanwhile, or unreadable: nothing to count.
                    self.key = None;
                    return;
                }
            },
        };
        self.files.push(File {
            created_us: created,
            size,
            mtime_us,
        });
    }
}

/// Removes an empty day folder (rmdir refuses a folder that is not empty,
/// so a file created meanwhile is safe).
pub fn remove_empty_day(path: &Path) {
    match fs::remove_dir(path) {
        Ok(()) => log::debug!("retention: removed empty day folder {}", path.display()),
        Err(e) => log::debug!("retention: kept day folder {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    pub(crate) struct Tmp(pub PathBuf);

    impl Tmp {
        pub(crate) fn new(label: &str) -> Tmp {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "attic-retention-{label}-{}-{n}",
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

    fn put(dir: &Path, rel: &str, len: usize) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, vec![7u8; len]).unwrap();
    }

    fn full_refresh(c: &mut Catalog) -> usize {
        let mut state = Refresh::Start;
        let mut calls = 0;
        loop {
            calls += 1;
            if c.refresh(&mut state, &mut Budget::ops(3)) {
                return calls;
            }
        }
    }

    #[test]
    fn only_sixteen_digits_dot_sqlite_is_a_finished_file() {
        let ok = |s: &str| finished_name(&OsString::from(s));
        assert_eq!(ok("1700000000123456.sqlite"), Some(1_700_000_000_123_456));
        assert_eq!(ok("0999999999999999.sqlite"), Some(999_999_999_999_999));
        assert_eq!(ok("1700000000123456.sqlite.part"), None);
        assert_eq!(ok("1700000000123456.sqlite-wal"), None);
        assert_eq!(ok("170000000012345.sqlite"), None);
        assert_eq!(ok("17000000001234567.sqlite"), None);
        assert_eq!(ok("+700000000123456.sqlite"), None);
        assert_eq!(ok("1700000000123456.SQLITE"), None);
        assert_eq!(ok("notes.sqlite"), None);
        assert_eq!(
            finished_file_name(999_999_999_999_999),
            "0999999999999999.sqlite"
        );
        assert!(is_day_name(&OsString::from("2024-05-01")));
        assert!(!is_day_name(&OsString::from("2024-5-01")));
        assert!(!is_day_name(&OsString::from("2024-05-01x")));
        assert!(!is_day_name(&OsString::from("backup")));
    }

    #[test]
    fn a_sliced_refresh_finds_finished_files_oldest_first_and_counts_the_rest() {
        let t = Tmp::new("scan");
        put(&t.0, "2024-05-02/1714608000000000.sqlite", 30);
        put(&t.0, "2024-05-01/1714550000000000.sqlite", 20);
        put(&t.0, "2024-05-01/1714521600000000.sqlite", 10);
        put(&t.0, "2024-05-01/1714560000000000.sqlite.part", 5);
        put(&t.0, "2024-05-01/notes.txt", 5);
        put(&t.0, "not-a-day/1714521600000000.sqlite", 5);
        put(&t.0, "2024-05-03/readme", 1);
        fs::create_dir_all(t.0.join("2024-05-04")).unwrap();
        let mut c = Catalog::new(t.0.clone());
        let calls = full_refresh(&mut c);
        assert!(calls > 3, "three operations per call: {calls} calls");
        // (day, [(created, size)], others)
        type Seen<'a> = Vec<(&'a str, Vec<(i64, u64)>, usize)>;
        let days: Seen<'_> = c
            .days
            .iter()
            .map(|d| {
                let files = d.files.iter().map(|f| (f.created_us, f.size)).collect();
                (d.name.as_str(), files, d.others)
            })
            .collect();
        let f = |created_us: i64, size: u64| (created_us, size);
        assert_eq!(
            days,
            [
                (
                    "2024-05-01",
                    vec![f(1_714_521_600_000_000, 10), f(1_714_550_000_000_000, 20)],
                    2
                ),
                ("2024-05-02", vec![f(1_714_608_000_000_000, 30)], 0),
                ("2024-05-03", vec![], 1),
            ]
        );
        assert!(!t.0.join("2024-05-04").exists(), "an empty day folder goes");
        assert!(t.0.join("not-a-day").exists());
    }

    #[test]
    fn an_unchanged_day_folder_is_not_read_again_and_a_changed_one_is() {
        let t = Tmp::new("cache");
        put(&t.0, "2024-05-01/1714521600000000.sqlite", 10);
        let mut c = Catalog::new(t.0.clone());
        full_refresh(&mut c);
        // Pretend the read was long ago: the folder is then trusted.
        let meta = fs::symlink_metadata(t.0.join("2024-05-01")).unwrap();
        c.days[0].key = Some(DirKey::of(&meta));
        c.days[0].files[0].size = 999; // a cached figure, to see it kept
        full_refresh(&mut c);
        assert_eq!(c.days[0].files[0].size, 999, "not read again");
        put(&t.0, "2024-05-01/1714525200000000.sqlite", 40);
        full_refresh(&mut c);
        let sizes: Vec<u64> = c.days[0].files.iter().map(|f| f.size).collect();
        assert_eq!(
            sizes,
            [999, 40],
            "read again; the known file keeps its size"
        );
    }

    #[test]
    fn a_missing_stream_folder_is_an_empty_catalog() {
        let t = Tmp::new("missing");
        let mut c = Catalog::new(t.0.join("nope"));
        assert_eq!(full_refresh(&mut c), 1);
        assert!(c.days.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_never_followed() {
        let t = Tmp::new("links");
        let outside = Tmp::new("outside");
        put(&outside.0, "2024-05-01/1714521600000000.sqlite", 10);
        std::os::unix::fs::symlink(outside.0.join("2024-05-01"), t.0.join("2024-05-01")).unwrap();
        put(&t.0, "2024-05-02/x", 1);
        std::os::unix::fs::symlink(
            outside.0.join("2024-05-01/1714521600000000.sqlite"),
            t.0.join("2024-05-02/1714608000000000.sqlite"),
        )
        .unwrap();
        let mut c = Catalog::new(t.0.clone());
        full_refresh(&mut c);
        assert_eq!(c.days.len(), 1);
        assert_eq!(c.days[0].name, "2024-05-02");
        assert!(c.days[0].files.is_empty());
        assert_eq!(c.days[0].others, 2);
    }
}
