//! The file layout of a stream folder, the one definition of it: day
//! folders (`YYYY-MM-DD`, UTC) and file names, formatted and parsed here and
//! nowhere else, plus the rotation arithmetic that decides which period and
//! day a moment belongs to ([`period`]).
//!
//! ```text
//!   <stream folder>/<YYYY-MM-DD>/<16 digits>.sqlite         finished
//!                                <16 digits>.sqlite.part    being written (or left by a crash)
//!                                <16 digits>.sqlite.init    being made (holds no row)
//!                                <16 digits>.sqlite.corrupt set aside by recovery
//! ```
//!
//! The 16 digits are the file's creation time in unix microseconds,
//! zero-padded, so that names sort by time from 1970 (a Raspberry Pi
//! without a battery clock, before NTP) to the year 2286; a time outside
//! that range is clamped into it ([`name_time`]).
//!
//! Owns: the name patterns. Must not: read a clock, touch the file system
//! or panic, whatever the input.

mod period;

pub use period::{
    day_folder, latest_wall_deadline_us, period_end_us, wall_deadline_problem,
    wall_deadline_problem_at,
};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The lock file of a stream folder (`store::lock`), beside the day
/// folders; retention, recovery and `select` never look at it.
pub const LOCK_FILE: &str = "attic.lock";

/// Digits of the creation time in a file name.
pub const DIGITS: usize = 16;

/// The latest creation time a name can carry (16 nines: the year 2286).
pub const NAME_MAX_US: i64 = 9_999_999_999_999_999;

/// What a file of a day folder is, by the end of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.sqlite`: complete, never touched again.
    Finished,
    /// `.sqlite.part`: being written, or left by a crash for recovery.
    Part,
    /// `.sqlite.init`: being made; renamed to `.part` once in WAL mode.
    Init,
    /// `.sqlite.corrupt`: a `.part` that SQLite found corrupt, set aside.
    Corrupt,
}

impl Kind {
    /// Longest first, so that parsing tries `.sqlite.part` before `.sqlite`.
    const ALL: [Kind; 4] = [Kind::Corrupt, Kind::Part, Kind::Init, Kind::Finished];

    /// The end of the name after the digits.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Finished => ".sqlite",
            Kind::Part => ".sqlite.part",
            Kind::Init => ".sqlite.init",
            Kind::Corrupt => ".sqlite.corrupt",
        }
    }
}

/// A file name of the layout, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    /// Unix microseconds from the 16 digits.
    pub created_us: i64,
    /// What the file is.
    pub kind: Kind,
}

/// The creation time a file made at `t_us` is named for: `t_us` clamped to
/// what 16 digits can say (0 to [`NAME_MAX_US`]).
pub fn name_time(t_us: i64) -> i64 {
    t_us.clamp(0, NAME_MAX_US)
}

/// The name of a file of `kind` created at `created_us` (see [`name_time`]).
pub fn name(created_us: i64, kind: Kind) -> String {
    format!(
        "{:0width$}{}",
        name_time(created_us),
        kind.suffix(),
        width = DIGITS
    )
}

/// The final name of a file created at `created_us`.
pub fn file_name(created_us: i64) -> String {
    name(created_us, Kind::Finished)
}

/// The name of a file created at `created_us` while it is being written.
pub fn part_name(created_us: i64) -> String {
    name(created_us, Kind::Part)
}

/// Reads a file name of the layout: exactly 16 ASCII digits and one of the
/// suffixes of [`Kind`], nothing else (no sign, no `-wal`).
pub fn parse(file_name: &OsStr) -> Option<Name> {
    let s = file_name.to_str()?;
    let digits = s.get(..DIGITS)?;
    let rest = s.get(DIGITS..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = Kind::ALL.into_iter().find(|k| rest == k.suffix())?;
    Some(Name {
        created_us: digits.parse().ok()?,
        kind,
    })
}

/// The name of a Parquet partition file of `attic export --output-dir`
/// whose first row was received at `first_us`: the same 16 digits.
pub fn parquet_name(first_us: i64) -> String {
    format!("{:0width$}.parquet", name_time(first_us), width = DIGITS)
}

/// The first reception time in a Parquet partition file name, if it is
/// one (exactly 16 digits and `.parquet`).
pub fn parse_parquet_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".parquet")?;
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The name of the file at `path`, parsed ([`parse`]).
pub fn parse_path(path: &Path) -> Option<Name> {
    parse(path.file_name()?)
}

/// `path` with its file turned into `kind` (same folder, same digits):
/// `X.sqlite.part` -> `X.sqlite`, and so on. A name that is not of the
/// layout gets the suffix appended after whatever Attic suffix it ends in.
pub fn with_kind(path: &Path, kind: Kind) -> PathBuf {
    let Some(file) = path.file_name().and_then(OsStr::to_str) else {
        return path.to_path_buf();
    };
    let stem = Kind::ALL
        .into_iter()
        .find_map(|k| file.strip_suffix(k.suffix()))
        .unwrap_or(file);
    path.with_file_name(format!("{stem}{}", kind.suffix()))
}

/// A day folder's name: `YYYY-MM-DD` (digits in the right places; the
/// calendar is not checked).
pub fn is_day_folder(name: &OsStr) -> bool {
    let Some(s) = name.to_str() else {
        return false;
    };
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// The final path of a file created at `created_us`, relative to its stream
/// folder: `<YYYY-MM-DD>/<16 digits>.sqlite`.
pub fn relative_path(created_us: i64) -> PathBuf {
    let t = name_time(created_us);
    PathBuf::from(day_folder(t)).join(file_name(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_sixteen_zero_padded_digits_and_sort_by_time() {
        assert_eq!(file_name(1_700_000_000_123_456), "1700000000123456.sqlite");
        assert_eq!(
            part_name(1_700_000_000_123_456),
            "1700000000123456.sqlite.part"
        );
        assert_eq!(file_name(5_000_000), "0000000005000000.sqlite");
        assert_eq!(
            relative_path(1_700_000_000_123_456),
            PathBuf::from("2023-11-14/1700000000123456.sqlite")
        );
        assert_eq!(
            relative_path(5_000_000),
            PathBuf::from("1970-01-01/0000000005000000.sqlite")
        );
        let names: Vec<String> = [0, 5_000_000, 999_999_999_999_999, 1_700_000_000_000_000]
            .into_iter()
            .map(file_name)
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "lexical order is time order, 1970 included");
    }

    #[test]
    fn times_outside_sixteen_digits_are_clamped_not_signed_or_widened() {
        assert_eq!(file_name(-1), "0000000000000000.sqlite");
        assert_eq!(file_name(i64::MIN), "0000000000000000.sqlite");
        assert_eq!(file_name(i64::MAX), "9999999999999999.sqlite");
        assert_eq!(relative_path(-1), relative_path(0));
    }

    #[test]
    fn every_kind_parses_back_to_its_time_and_nothing_else_parses() {
        for t in [0, 5_000_000, 1_700_000_000_123_456, NAME_MAX_US] {
            for kind in Kind::ALL {
                let n = name(t, kind);
                assert_eq!(
                    parse(OsStr::new(&n)),
                    Some(Name {
                        created_us: t,
                        kind
                    }),
                    "{n}"
                );
            }
        }
        for bad in [
            "5000000.sqlite",
            "17000000001234567.sqlite",
            "-000000000000005.sqlite",
            "+000000000000005.sqlite",
            "1700000000123456.sqlite-wal",
            "1700000000123456.sqlite.part-shm",
            "1700000000123456.sqlite.bak",
            "1700000000123456.db",
            "170000000012345a.sqlite",
            "1700000000123456",
            "",
            "é700000000123456.sqlite",
        ] {
            assert_eq!(parse(OsStr::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_path_changes_kind_in_place() {
        let part = Path::new("/d/s/2023-11-14/1700000000123456.sqlite.part");
        assert_eq!(
            with_kind(part, Kind::Finished),
            Path::new("/d/s/2023-11-14/1700000000123456.sqlite")
        );
        assert_eq!(
            with_kind(&with_kind(part, Kind::Finished), Kind::Init),
            Path::new("/d/s/2023-11-14/1700000000123456.sqlite.init")
        );
        assert_eq!(
            with_kind(part, Kind::Corrupt),
            Path::new("/d/s/2023-11-14/1700000000123456.sqlite.corrupt")
        );
        assert_eq!(
            parse_path(part).map(|n| n.kind),
            Some(Kind::Part),
            "the parsed kind"
        );
    }

    #[test]
    fn day_folders_are_recognised_by_shape() {
        assert!(is_day_folder(OsStr::new("2024-05-01")));
        assert!(is_day_folder(OsStr::new(&day_folder(0))));
        for bad in [
            "2024-5-01",
            "2024_05_01",
            "20240501",
            "2024-05-01x",
            "abcd-ef-gh",
        ] {
            assert!(!is_day_folder(OsStr::new(bad)), "{bad}");
        }
    }
}
