//! The record, beside a stream's files, of the files whose on-finish hook
//! is not done yet: `<stream folder>/.on-finish-pending`, one line per file
//! in finishing order, rewritten atomically (a temporary file, then a
//! rename) whenever the list changes.
//!
//! ```text
//! # attic on-finish: files whose hook is not done yet
//! 2026-12-03/1796300100000000.sqlite<TAB>first_us<TAB>last_us<TAB>rows<TAB>bytes
//! ```
//!
//! A file is entered when it is closed (before its rename, so that a crash
//! in between cannot lose it) and removed once its hook exits 0; a finished
//! file not in the list is done. Unknown figures are written as `-`.
//!
//! Owns: the file's format, reading and writing it. Must not: decide what
//! runs when, or touch a finished file.

use std::io;
use std::path::Path;

/// The file's name inside the stream folder (not a day folder, so that
/// retention and export never see it).
pub const FILE_NAME: &str = ".on-finish-pending";

const HEADER: &str = "# attic on-finish: files whose hook is not done yet";

/// One line of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// `YYYY-MM-DD/<name>.sqlite`, relative to the stream folder.
    pub rel: String,
    /// Reception time of the first row, unix µs.
    pub first_us: Option<i64>,
    /// Reception time of the last row.
    pub last_us: Option<i64>,
    /// Rows in the file.
    pub rows: Option<u64>,
    /// Size in bytes.
    pub bytes: Option<u64>,
}

/// Reads the list of `stream_dir`; a missing file is an empty list, and a
/// line that cannot be read is skipped with a warning.
pub fn load(stream_dir: &Path) -> Vec<Line> {
    let path = stream_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log::warn!(
                "cannot read {}: {e}; no pending on-finish runs",
                path.display()
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(l) => out.push(l),
            None => log::warn!(
                "{}:{}: not a pending file line; skipped",
                path.display(),
                n + 1
            ),
        }
    }
    out
}

fn parse_line(line: &str) -> Option<Line> {
    let mut parts = line.split('\t');
    let rel = parts.next()?.to_owned();
    let safe = rel.split('/').count() == 2
        && !rel
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && rel
            .rsplit('/')
            .next()
            .and_then(|n| crate::layout::parse(std::ffi::OsStr::new(n)))
            .is_some_and(|n| n.kind == crate::layout::Kind::Finished);
    if !safe {
        return None;
    }
    fn opt<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
        s.filter(|s| *s != "-").and_then(|s| s.parse().ok())
    }
    Some(Line {
        rel,
        first_us: opt(parts.next()),
        last_us: opt(parts.next()),
        rows: opt(parts.next()),
        bytes: opt(parts.next()),
    })
}

/// Writes the list of `stream_dir` atomically.
pub fn save<'a>(stream_dir: &Path, lines: impl Iterator<Item = &'a Line>) -> io::Result<()> {
    fn field<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or("-".to_owned(), |v| v.to_string())
    }
    let mut text = String::with_capacity(256);
    text.push_str(HEADER);
    text.push('\n');
    for l in lines {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            l.rel,
            field(l.first_us),
            field(l.last_us),
            field(l.rows),
            field(l.bytes)
        ));
    }
    crate::atomic::write_atomically(&stream_dir.join(FILE_NAME), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_back_as_written_with_unknown_figures_kept_unknown() {
        let dir = std::env::temp_dir().join(format!("attic-hook-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = vec![
            Line {
                rel: "2026-12-03/1796300100000000.sqlite".into(),
                first_us: Some(1_796_300_100_000_001),
                last_us: Some(1_796_300_399_000_000),
                rows: Some(42),
                bytes: Some(12_288),
            },
            Line {
                rel: "2026-12-03/1796300400000000.sqlite".into(),
                ..Line::default()
            },
        ];
        save(&dir, lines.iter()).unwrap();
        assert_eq!(load(&dir), lines);
        assert!(!dir.join(format!("{FILE_NAME}.tmp")).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_that_leaves_the_stream_folder_is_skipped() {
        assert_eq!(parse_line("../x/1.sqlite\t-\t-\t-\t-"), None);
        assert_eq!(parse_line("/etc/passwd"), None);
        assert_eq!(parse_line("2026-12-03/1.sqlite.part"), None);
        assert_eq!(
            parse_line("2026-12-03/1.sqlite"),
            None,
            "not a name of the layout"
        );
        assert!(parse_line("2026-12-03/1796300400000000.sqlite").is_some());
    }
}
