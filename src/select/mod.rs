//! Selection: which stored rows `attic export` and `attic replay` read, and
//! in which order.
//!
//! ```text
//!  SELECTION args --parse--> Selection --plan(config)--> per stream: candidate files (names only)
//!                                                            |
//!                              Rows <--k-way merge-- FileCursor per file, opened when reached
//! ```
//!
//! [`time`] parses TIME; [`files`] picks files by name; `store::reader`
//! reads one file in chunks, read-only; [`merge`] orders rows across files and
//! streams with bounded memory. This module never writes to the data
//! folder and never waits for a lock held by a running Attic.

pub mod files;
pub mod merge;
pub mod time;

use std::fmt;
use std::path::PathBuf;

use crate::config::Config;
use crate::message::Message;
use crate::mqtt::topic::{self, topic_filter_problem};
use crate::store::StoreError;
use crate::store::reader::FileReader;

/// One stored row: the message as read back, and the index of its stream
/// in [`Plan::streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Index into the plan's stream names.
    pub stream: usize,
    /// The stored message (`timestamp_us` is `reception_timestamp`).
    pub message: Message,
}

impl merge::Timestamped for Row {
    fn timestamp_us(&self) -> i64 {
        self.message.timestamp_us
    }
}

/// The SELECTION arguments, parsed and validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--stream FOLDER`...: empty = every stream of the config.
    pub streams: Vec<String>,
    /// `--from`: inclusive lower bound (unix µs).
    pub from_us: Option<i64>,
    /// `--to`: exclusive upper bound (unix µs).
    pub to_us: Option<i64>,
    /// `--topic FILTER`...: empty = every topic.
    pub topics: Vec<String>,
    /// `--include-open`: also the committed rows of `.part` files.
    pub include_open: bool,
}

impl Selection {
    /// Consumes one SELECTION option (`flag`, its value taken from `rest`)
    /// if `flag` is one. `Ok(false)`: not a selection option. Errors are
    /// one line, for exit code 2. `now_us` resolves relative times.
    pub fn take_arg(
        &mut self,
        flag: &str,
        rest: &mut dyn Iterator<Item = String>,
        now_us: i64,
    ) -> Result<bool, String> {
        let (name, inline) = crate::cli::split_flag(flag);
        let mut value = |what: &str| crate::cli::flag_value(name, inline, rest, what);
        match name {
            "--stream" => self.streams.push(value("a stream folder name")?),
            "--from" => self.from_us = Some(time::parse_time(&value("a time")?, now_us)?),
            "--to" => self.to_us = Some(time::parse_time(&value("a time")?, now_us)?),
            "--topic" => {
                let f = value("an MQTT topic filter")?;
                if let Some(p) = topic_filter_problem(&f) {
                    return Err(format!("invalid topic filter {f:?}: {p}"));
                }
                if f.starts_with("$share/") {
                    return Err(format!(
                        "invalid topic filter {f:?}: a shared subscription does not select stored topics"
                    ));
                }
                self.topics.push(f);
            }
            "--include-open" if inline.is_none() => self.include_open = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks what single options cannot: an empty window.
    pub fn validate(&self) -> Result<(), String> {
        match (self.from_us, self.to_us) {
            (Some(f), Some(t)) if f >= t => Err(format!(
                "empty time window: --from ({}) is not before --to ({})",
                crate::time::rfc3339_us(f).unwrap_or_else(|| f.to_string()),
                crate::time::rfc3339_us(t).unwrap_or_else(|| t.to_string()),
            )),
            _ => Ok(()),
        }
    }

    /// The window as `[from, to)` with open ends filled in.
    pub fn window(&self) -> (i64, i64) {
        (
            self.from_us.unwrap_or(i64::MIN),
            self.to_us.unwrap_or(i64::MAX),
        )
    }
}

/// Topic filters a row must match one of (none = every topic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFilters(Vec<String>);

impl TopicFilters {
    /// True if `t` matches one of the filters, or there are none.
    pub fn matches(&self, t: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| topic::matches(t, f))
    }
}

/// Why the selection cannot be read.
#[derive(Debug)]
pub enum SelectError {
    /// A bad argument, found once the config is known (unknown stream).
    Usage(String),
    /// Listing a folder failed.
    List {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Reading a finished file failed.
    Store(StoreError),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Usage(m) => f.write_str(m),
            SelectError::List { path, source } => write!(f, "list {}: {source}", path.display()),
            SelectError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SelectError {}

/// A file to read, not yet opened.
#[derive(Debug)]
pub struct PlannedFile {
    /// The file and its time bounds.
    pub file: files::Candidate,
    /// Index of its stream in [`Plan::streams`].
    pub stream: usize,
    /// The window.
    window: (i64, i64),
    /// The topic filters.
    topics: TopicFilters,
}

impl merge::Pending for PlannedFile {
    type Source = FileRows;
    fn lower_bound_us(&self) -> i64 {
        self.file.created_us
    }
    fn open(self) -> Result<Option<FileRows>, SelectError> {
        let topics = self.topics;
        let keep = Box::new(move |t: &str| topics.matches(t));
        let reader = FileReader::open(&self.file.path, self.file.open, self.window, keep)
            .map_err(SelectError::Store)?;
        Ok(reader.map(|reader| FileRows {
            reader,
            stream: self.stream,
        }))
    }
}

/// The rows of one open file, tagged with their stream.
#[derive(Debug)]
pub struct FileRows {
    /// The file.
    reader: FileReader,
    /// Index of its stream in [`Plan::streams`].
    stream: usize,
}

impl merge::Source for FileRows {
    type Row = Row;
    type Error = SelectError;
    fn next_row(&mut self) -> Result<Option<Row>, SelectError> {
        let row = self.reader.next_row().map_err(SelectError::Store)?;
        Ok(row.map(|message| Row {
            stream: self.stream,
            message,
        }))
    }
}

/// The resolved selection: stream names and the files to read.
#[derive(Debug)]
pub struct Plan {
    /// Stream folder names; [`Row::stream`] indexes this.
    pub streams: Vec<String>,
    /// Files that may hold matching rows, in stream order then by time.
    pub files: Vec<PlannedFile>,
    /// What was left out, so that an empty result can say why.
    pub notes: PlanNotes,
}

/// What a [`Plan`] left out: the words of "0 rows, because ...".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanNotes {
    /// Files being written (`.part`) in the window, left out without
    /// `--include-open`.
    pub open_skipped: usize,
    /// Stream folders that do not exist (nothing recorded yet, or a
    /// relative `data-folder` taken from another working directory).
    pub missing_folders: Vec<PathBuf>,
}

impl PlanNotes {
    /// Why a selection gave `rows` rows from `files` files, when that needs
    /// saying: every note that applies, `None` when there is nothing to add.
    pub fn explain(
        &self,
        rows: u64,
        files: usize,
        data_folder: &std::path::Path,
    ) -> Option<String> {
        let mut why = Vec::new();
        if self.open_skipped > 0 {
            why.push(format!(
                "{} skipped (being written; --include-open adds their committed rows)",
                crate::progress::count(self.open_skipped as u64, "open file", "open files")
            ));
        }
        for dir in &self.missing_folders {
            let mut note = format!("no folder {}", dir.display());
            if data_folder.is_relative() {
                let cwd = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "?".to_owned());
                note.push_str(&format!(
                    " (data-folder {} is relative to the working directory, here {cwd})",
                    data_folder.display()
                ));
            }
            why.push(note);
        }
        if rows == 0 && why.is_empty() {
            why.push(if files == 0 {
                "no file of the selected streams lies in the window".to_owned()
            } else {
                format!(
                    "no row of the {} matched the window and topics",
                    crate::progress::count(files as u64, "file read", "files read")
                )
            });
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

impl Plan {
    /// Resolves `sel` against the config: stream folders, then the files of
    /// each that may hold rows of the window (by name; none is opened).
    ///
    /// A `--stream` that is not a stream of the config is still read if its
    /// folder exists under the data folder (a stream removed from the
    /// config keeps its files); one that names no folder is a usage error.
    pub fn new(config: &Config, sel: &Selection) -> Result<Plan, SelectError> {
        let data = &config.data_folder;
        let mut streams: Vec<String> = Vec::new();
        if sel.streams.is_empty() {
            for s in &config.streams {
                if !streams.contains(&s.folder_name) {
                    streams.push(s.folder_name.clone());
                }
            }
        } else {
            for name in &sel.streams {
                let known = config.streams.iter().any(|s| &s.folder_name == name);
                let valid = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
                if !valid || (!known && !data.join(name).is_dir()) {
                    let all: Vec<&str> = config
                        .streams
                        .iter()
                        .map(|s| s.folder_name.as_str())
                        .collect();
                    return Err(SelectError::Usage(format!(
                        "no stream folder {name:?} in {} (streams of the config: {})",
                        data.display(),
                        all.join(", ")
                    )));
                }
                if !streams.contains(name) {
                    streams.push(name.clone());
                }
            }
        }
        let window = sel.window();
        let topics = TopicFilters(sel.topics.clone());
        let mut files = Vec::new();
        let mut notes = PlanNotes::default();
        for (i, name) in streams.iter().enumerate() {
            let dir = data.join(name);
            if !dir.exists() {
                // Nothing recorded yet (or another working directory).
                notes.missing_folders.push(dir);
                continue;
            }
            // Open files are listed, then counted and left out unless asked
            // for: a `.part` still bounds the file before it the same way.
            let found = files::candidates(&dir, window.0, window.1, true).map_err(|source| {
                SelectError::List {
                    path: dir.clone(),
                    source,
                }
            })?;
            let (found, open): (Vec<_>, Vec<_>) =
                found.into_iter().partition(|c| sel.include_open || !c.open);
            notes.open_skipped += open.len();
            files.extend(found.into_iter().map(|file| PlannedFile {
                file,
                stream: i,
                window,
                topics: topics.clone(),
            }));
        }
        Ok(Plan {
            streams,
            files,
            notes,
        })
    }

    /// The rows of the plan in ascending `reception_timestamp`.
    pub fn rows(self) -> (Vec<String>, merge::Merge<PlannedFile>) {
        (self.streams, merge::Merge::new(self.files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_export_says_why_and_a_full_one_says_nothing_more() {
        let notes = PlanNotes {
            open_skipped: 1,
            missing_folders: vec![PathBuf::from("data/sensors")],
        };
        let why = notes.explain(0, 0, std::path::Path::new("data")).unwrap();
        assert!(
            why.starts_with("1 open file skipped (being written; --include-open"),
            "{why}"
        );
        assert!(
            why.contains(
                "no folder data/sensors (data-folder data is relative to the working directory, here "
            ),
            "{why}"
        );
        let none = PlanNotes::default();
        assert_eq!(
            none.explain(0, 0, std::path::Path::new("/d")).as_deref(),
            Some("no file of the selected streams lies in the window")
        );
        assert_eq!(
            none.explain(0, 2, std::path::Path::new("/d")).as_deref(),
            Some("no row of the 2 files read matched the window and topics")
        );
        assert_eq!(none.explain(5, 2, std::path::Path::new("/d")), None);
    }
}
