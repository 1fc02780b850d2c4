//! The retention decision, as a pure function: given each stream's finished
//! files (oldest first), its limits, the time and the free space, how many
//! of each stream's oldest files go, and why.
//!
//! Must not: touch the file system or read a clock (both are arguments).
//! Every rule deletes a prefix of the oldest files, so a plan is one count
//! per stream: the largest of the three rules' counts.

use super::scan::Day;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One stream's input.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// Day folders, oldest first, each with its finished files oldest first.
    pub days: &'a [Day],
    /// `max-age-days` as a cutoff: files whose age runs from before this
    /// unix µs go ([`File::age_from_us`](super::scan::File::age_from_us):
    /// the later of the name's time and the modification time).
    pub created_before_us: Option<i64>,
    /// `max-size-mb` in bytes.
    pub max_size_bytes: Option<u64>,
    /// Files kept whatever the rules say (`keep-until-done` with the hook
    /// not done), by creation time: they count towards the size but are
    /// never taken.
    pub held: &'a dyn Fn(i64) -> bool,
}

impl<'a> Input<'a> {
    /// The files that may be taken, oldest first.
    fn deletable(&self) -> impl Iterator<Item = &'a super::scan::File> + 'a {
        let held = self.held;
        files(self.days).filter(move |f| !held(f.created_us))
    }
}

/// Which rules asked for a stream's deletions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Why {
    /// `max-age-days`.
    pub age: bool,
    /// `max-size-mb`.
    pub size: bool,
    /// `min-free-mb`.
    pub free: bool,
}

impl Why {
    /// The rules' key names, for the log line.
    pub fn keys(&self) -> String {
        let names = [
            (self.age, "max-age-days"),
            (self.size, "max-size-mb"),
            (self.free, "min-free-mb"),
        ];
        let on: Vec<&str> = names.iter().filter(|n| n.0).map(|n| n.1).collect();
        on.join(", ")
    }
}

/// What goes in one stream: its `count` oldest finished files that are
/// not held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Take {
    /// How many of the oldest files (in day, then name, order).
    pub count: usize,
    /// Their total size.
    pub bytes: u64,
    /// The rules that asked.
    pub why: Why,
}

/// The decision of one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per stream, in input order.
    pub take: Vec<Take>,
    /// `min-free-mb` cannot be met even by deleting every finished file.
    pub exhausted: bool,
}

/// The files of a stream, oldest first.
fn files<'a>(days: &'a [Day]) -> impl Iterator<Item = &'a super::scan::File> + 'a {
    days.iter().flat_map(|d| d.files.iter())
}

/// Decides one pass. `free` is the free space of the data folder's file
/// system now, `min_free` the top-level `min-free-mb` (both bytes).
pub fn plan(streams: &[Input<'_>], free: u64, min_free: Option<u64>) -> Plan {
    let mut take: Vec<Take> = streams.iter().map(own_rules).collect();
    let mut exhausted = false;
    if let Some(min_free) = min_free {
        let planned: u64 = take.iter().map(|t| t.bytes).sum();
        let need = min_free.saturating_sub(free.saturating_add(planned));
        if need > 0 {
            exhausted = !oldest_across(streams, &mut take, need);
        }
    }
    Plan { take, exhausted }
}

/// `max-age-days` and `max-size-mb` of one stream.
fn own_rules(s: &Input<'_>) -> Take {
    let mut t = Take::default();
    if let Some(before) = s.created_before_us {
        // Oldest name first, up to the first file that is not old enough:
        // a file kept for its modification time keeps the ones after it.
        for f in s.deletable().take_while(|f| f.age_from_us() < before) {
            t.count += 1;
            t.bytes += f.size;
            t.why.age = true;
        }
    }
    if let Some(limit) = s.max_size_bytes {
        let total: u64 = files(s.days).map(|f| f.size).sum();
        let mut left = total.saturating_sub(t.bytes);
        for f in s.deletable().skip(t.count) {
            if left <= limit {
                break;
            }
            left -= f.size;
            t.count += 1;
            t.bytes += f.size;
            t.why.size = true;
        }
    }
    t
}

/// `min-free-mb`: the oldest remaining files of all streams go until `need`
/// bytes more are planned; false if every file is planned and it is not
/// enough.
fn oldest_across(streams: &[Input<'_>], take: &mut [Take], need: u64) -> bool {
    let mut rest: Vec<_> = streams
        .iter()
        .zip(take.iter())
        .map(|(s, t)| s.deletable().skip(t.count).peekable())
        .collect();
    let mut heap = BinaryHeap::new();
    for (i, it) in rest.iter_mut().enumerate() {
        if let Some(f) = it.peek() {
            heap.push(Reverse((f.created_us, i)));
        }
    }
    let mut got = 0u64;
    while got < need {
        let Some(Reverse((_, i))) = heap.pop() else {
            return false;
        };
        let (Some(it), Some(t)) = (rest.get_mut(i), take.get_mut(i)) else {
            return false;
        };
        if let Some(f) = it.next() {
            got = got.saturating_add(f.size);
            t.count += 1;
            t.bytes += f.size;
            t.why.free = true;
        }
        if let Some(f) = it.peek() {
            heap.push(Reverse((f.created_us, i)));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::scan::{Day, File};
    use super::*;

    /// Days of files `(day name, [(created, size)])`.
    fn days(spec: &[(&str, &[(i64, u64)])]) -> Vec<Day> {
        spec.iter()
            .map(|(name, files)| {
                let files = files
                    .iter()
                    .map(|&(created_us, size)| File {
                        created_us,
                        size,
                        mtime_us: created_us,
                    })
                    .collect();
                Day::with_files(name, files)
            })
            .collect()
    }

    fn input(days: &[Day], before: Option<i64>, max: Option<u64>) -> Input<'_> {
        Input {
            days,
            created_before_us: before,
            max_size_bytes: max,
            held: &|_| false,
        }
    }

    const A: &[(&str, &[(i64, u64)])] = &[
        ("d1", &[(10, 100), (20, 100)]),
        ("d2", &[]),
        ("d3", &[(30, 100), (40, 100)]),
    ];

    #[test]
    fn no_limit_deletes_nothing() {
        let d = days(A);
        let p = plan(&[input(&d, None, None)], 0, None);
        assert_eq!(p.take, [Take::default()]);
        assert!(!p.exhausted);
    }

    #[test]
    fn max_age_takes_the_files_created_before_the_cutoff_across_days() {
        let d = days(A);
        let p = plan(&[input(&d, Some(31), None)], 0, None);
        assert_eq!(p.take[0].count, 3);
        assert_eq!(p.take[0].bytes, 300);
        assert_eq!(p.take[0].why.keys(), "max-age-days");
        // A file created exactly at the cutoff stays.
        assert_eq!(plan(&[input(&d, Some(30), None)], 0, None).take[0].count, 2);
    }

    #[test]
    fn max_size_takes_the_oldest_until_the_rest_fits() {
        let d = days(A);
        assert_eq!(
            plan(&[input(&d, None, Some(400))], 0, None).take[0].count,
            0
        );
        assert_eq!(
            plan(&[input(&d, None, Some(399))], 0, None).take[0].count,
            1
        );
        assert_eq!(
            plan(&[input(&d, None, Some(200))], 0, None).take[0].count,
            2
        );
        assert_eq!(plan(&[input(&d, None, Some(1))], 0, None).take[0].count, 4);
    }

    #[test]
    fn age_and_size_together_take_the_larger_prefix_and_name_both() {
        let d = days(A);
        let t = plan(&[input(&d, Some(11), Some(150))], 0, None).take[0];
        assert_eq!((t.count, t.bytes), (3, 300));
        assert_eq!(t.why.keys(), "max-age-days, max-size-mb");
        let t = plan(&[input(&d, Some(31), Some(150))], 0, None).take[0];
        assert_eq!(t.count, 3);
        assert!(t.why.age && !t.why.size, "age already did it: {t:?}");
    }

    #[test]
    fn min_free_takes_the_oldest_across_streams_until_there_is_room() {
        let a = days(&[("d1", &[(10, 100), (40, 100)])]);
        let b = days(&[("d1", &[(20, 50), (30, 50)])]);
        let streams = [input(&a, None, None), input(&b, None, None)];
        // 120 free, 300 wanted: 180 more = files 10 (100), 20 (50), 30 (50).
        let p = plan(&streams, 120, Some(300));
        assert_eq!(p.take[0].count, 1);
        assert_eq!(p.take[1].count, 2);
        assert!(p.take[1].why.free && !p.exhausted);
        // Enough free space: nothing.
        let p = plan(&streams, 300, Some(300));
        assert_eq!(p.take, [Take::default(), Take::default()]);
    }

    #[test]
    fn min_free_counts_what_the_streams_own_rules_free_already() {
        let a = days(&[("d1", &[(10, 100), (40, 100)])]);
        let b = days(&[("d1", &[(20, 50), (30, 50)])]);
        // Stream a's age rule frees 100 of the 150 needed: 50 more from the
        // oldest remaining file anywhere (20, in b).
        let streams = [input(&a, Some(11), None), input(&b, None, None)];
        let p = plan(&streams, 0, Some(150));
        assert_eq!(p.take[0].count, 1);
        assert_eq!(p.take[0].why.keys(), "max-age-days");
        assert_eq!(p.take[1].count, 1);
        assert_eq!(p.take[1].why.keys(), "min-free-mb");
    }

    #[test]
    fn min_free_out_of_reach_takes_everything_and_says_so() {
        let a = days(A);
        let p = plan(&[input(&a, None, None)], 0, Some(1000));
        assert_eq!(p.take[0].count, 4);
        assert!(p.exhausted);
        let empty = days(&[]);
        let p = plan(&[input(&empty, None, None)], 0, Some(1));
        assert!(p.exhausted);
        assert_eq!(p.take[0].count, 0);
    }

    #[test]
    fn held_files_are_never_taken_but_count_towards_the_size() {
        let d = days(A);
        let held = |c: i64| c == 10 || c == 30;
        let keep = |before, max| Input {
            held: &held,
            ..input(&d, before, max)
        };
        // Age: 10 and 30 are held; 20 goes (and 40 is young).
        let p = plan(&[keep(Some(35), None)], 0, None);
        assert_eq!((p.take[0].count, p.take[0].bytes), (1, 100));
        // Size: 400 bytes, limit 250: 20 and 40 go (the held ones stay, so
        // the folder stays above the limit).
        let p = plan(&[keep(None, Some(250))], 0, None);
        assert_eq!((p.take[0].count, p.take[0].bytes), (2, 200));
        // Free space: everything deletable is not enough.
        let p = plan(&[keep(None, None)], 0, Some(1000));
        assert_eq!(p.take[0].count, 2);
        assert!(p.exhausted);
    }

    #[test]
    fn a_file_with_an_old_name_but_a_recent_modification_time_is_not_old() {
        const DAY: i64 = 86_400_000_000;
        // Recorded in the first minute after a boot with the clock 3 days
        // behind (an old name), finished after NTP stepped it (a recent
        // modification time), then the files after it.
        let now = 10 * DAY;
        let boot = File {
            created_us: now - 3 * DAY,
            size: 1,
            mtime_us: now - 60_000_000,
        };
        let later = File {
            created_us: now - 1_000,
            size: 2,
            mtime_us: now - 500,
        };
        let d = vec![Day::with_files("x", vec![boot, later])];
        let p = plan(&[input(&d, Some(now - 2 * DAY), None)], 0, None);
        assert_eq!(p.take[0].count, 0, "a 2-day limit keeps it: {p:?}");
        // Once its modification time is old enough too, it goes.
        let p = plan(&[input(&d, Some(now + 1), None)], 0, None);
        assert_eq!(p.take[0].count, 2);
        // A file whose modification time is older than its name (the clock
        // was stepped back while it was written) is aged by its name.
        let back = File {
            created_us: now - DAY,
            size: 1,
            mtime_us: now - 5 * DAY,
        };
        let d = vec![Day::with_files("x", vec![back])];
        let p = plan(&[input(&d, Some(now - 2 * DAY), None)], 0, None);
        assert_eq!(p.take[0].count, 0);
    }
}
