//! Which files of a stream folder can hold rows of a time window, from
//! their names alone.
//!
//! A file's name is its creation time `c` (unix µs, see
//! `layout`), and the writer opens a file when the first message
//! of a period arrives, so (with a clock that does not step back) its rows
//! lie in `[c, next)`, where `next` is the creation time of the stream's
//! next file. This module lists names and compares numbers; it must not
//! open a database.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::layout;

/// One file that may hold rows of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Creation time from the name: no row of the file is older.
    pub created_us: i64,
    /// The creation time of the stream's next file (`i64::MAX` for the
    /// newest): no row of this file is this new.
    pub bound_us: i64,
    /// Where the file is now.
    pub path: PathBuf,
    /// `.sqlite.part`: being written (or left by a crash); read with care.
    pub open: bool,
}

/// The files of `stream_dir` that may hold rows in `[from_us, to_us)`,
/// oldest first. `.sqlite.part` files are listed only if `include_open`.
/// Folders and files whose names are not Attic's are ignored.
pub fn candidates(
    stream_dir: &Path,
    from_us: i64,
    to_us: i64,
    include_open: bool,
) -> io::Result<Vec<Candidate>> {
    let mut days: Vec<String> = Vec::new();
    for entry in fs::read_dir(stream_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(name) = name.to_str().filter(|_| layout::is_day_folder(&name)) {
            if entry.file_type()?.is_dir() {
                days.push(name.to_owned());
            }
        }
    }
    days.sort();
    // A file of an earlier day can reach into the window, but only the last
    // file before it: so keep every day from `from`'s day on, plus the
    // latest earlier day that has a file. Days after `to`'s day hold only
    // files created after `to`.
    let first_day = layout::day_folder(from_us);
    let last_day = layout::day_folder(to_us.saturating_sub(1));
    let mut files: Vec<Candidate> = Vec::new();
    let split = days.partition_point(|d| *d < first_day);
    for day in days[..split].iter().rev() {
        let mut earlier = list_day(&stream_dir.join(day))?;
        if let Some(last) = earlier.pop() {
            files.push(last);
            break;
        }
    }
    for day in days[split..].iter().take_while(|d| **d <= last_day) {
        files.extend(list_day(&stream_dir.join(day))?);
    }
    // The bound of the last kept file must come from the first file after
    // it, which may be in a later day than the window's.
    let next_after: Option<i64> = match days[split..].iter().find(|d| **d > last_day) {
        Some(day) => list_day(&stream_dir.join(day))?
            .first()
            .map(|c| c.created_us),
        None => None,
    };
    files.sort_by_key(|c| c.created_us);
    let mut out = Vec::with_capacity(files.len());
    for i in 0..files.len() {
        let bound = files
            .get(i + 1)
            .map(|n| n.created_us)
            .or(next_after)
            .unwrap_or(i64::MAX);
        let mut c = files[i].clone();
        c.bound_us = bound;
        // A `.part` file still bounds the file before it, so it is dropped
        // only now.
        if c.created_us < to_us && bound > from_us && (include_open || !c.open) {
            out.push(c);
        }
    }
    Ok(out)
}

/// The Attic files (finished and `.part`) of one day folder, sorted by
/// creation time.
fn list_day(day: &Path) -> io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(day)? {
        let entry = entry?;
        let name = entry.file_name();
        let (created_us, open) = match layout::parse(&name) {
            Some(layout::Name {
                created_us,
                kind: layout::Kind::Part,
            }) => (created_us, true),
            Some(layout::Name {
                created_us,
                kind: layout::Kind::Finished,
            }) => (created_us, false),
            _ => continue,
        };
        out.push(Candidate {
            created_us,
            bound_us: i64::MAX,
            path: entry.path(),
            open,
        });
    }
    out.sort_by_key(|c| c.created_us);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch stream folder, removed on drop.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const DAY: i64 = 86_400_000_000;
    /// 2026-11-27T00:00:00Z.
    const D0: i64 = 1_764_201_600_000_000;

    /// A stream folder holding empty files with the given names' times.
    fn stream(tag: &str, finished: &[i64], parts: &[i64]) -> Dir {
        let dir = std::env::temp_dir().join(format!("attic-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (t, name) in finished
            .iter()
            .map(|t| (*t, layout::file_name(*t)))
            .chain(parts.iter().map(|t| (*t, layout::part_name(*t))))
        {
            let day = dir.join(layout::day_folder(t));
            fs::create_dir_all(&day).unwrap();
            fs::write(day.join(name), b"").unwrap();
        }
        fs::create_dir_all(dir.join("not-a-day")).unwrap();
        fs::write(dir.join(layout::day_folder(D0)).join("notes.txt"), b"").unwrap_or(());
        Dir(dir)
    }

    fn created(c: &[Candidate]) -> Vec<i64> {
        c.iter().map(|c| c.created_us).collect()
    }

    #[test]
    fn only_files_whose_span_meets_the_window_are_picked() {
        let s = 1_000_000;
        let d = stream(
            "window",
            &[D0, D0 + 300 * s, D0 + 600 * s, D0 + 900 * s],
            &[],
        );
        let all = candidates(&d.0, i64::MIN, i64::MAX, false).unwrap();
        assert_eq!(
            created(&all),
            [D0, D0 + 300 * s, D0 + 600 * s, D0 + 900 * s]
        );
        assert_eq!(all[0].bound_us, D0 + 300 * s);
        assert_eq!(all[3].bound_us, i64::MAX);
        // [310 s, 600 s): only the second file can hold such rows.
        let w = candidates(&d.0, D0 + 310 * s, D0 + 600 * s, false).unwrap();
        assert_eq!(created(&w), [D0 + 300 * s]);
        // `to` exactly at a file's creation excludes it; `from` at it includes it.
        let w = candidates(&d.0, D0 + 600 * s, D0 + 900 * s, false).unwrap();
        assert_eq!(created(&w), [D0 + 600 * s]);
    }

    #[test]
    fn the_last_file_of_an_earlier_day_reaches_into_the_window() {
        let d = stream("days", &[D0 - DAY, D0 - 60_000_000, D0 + DAY], &[]);
        let w = candidates(&d.0, D0 + 1, D0 + 2, false).unwrap();
        assert_eq!(created(&w), [D0 - 60_000_000]);
        assert_eq!(w[0].bound_us, D0 + DAY, "bounded by the next day's file");
    }

    #[test]
    fn part_files_are_picked_only_with_include_open_but_always_bound_the_file_before() {
        let d = stream("parts", &[D0], &[D0 + 1_000]);
        let closed = candidates(&d.0, i64::MIN, i64::MAX, false).unwrap();
        assert_eq!(created(&closed), [D0]);
        assert_eq!(closed[0].bound_us, D0 + 1_000);
        let open = candidates(&d.0, i64::MIN, i64::MAX, true).unwrap();
        assert_eq!(created(&open), [D0, D0 + 1_000]);
        assert!(open[1].open && !open[0].open);
        // A window after the finished file's span needs only the `.part`.
        assert!(
            candidates(&d.0, D0 + 1_000, i64::MAX, false)
                .unwrap()
                .is_empty()
        );
    }
}
