//! `--output-dir DIR`: Parquet in hive-style partitions,
//! `DIR/stream=<folder>/date=<YYYY-MM-DD>/<16-digit first reception us>.parquet`
//! (UTC days). `stream` is the partition key and not a column inside.
//!
//! Rows arrive in reception order, so each stream has at most one open file
//! (its current day); the open files share the row-group bounds of one
//! file, so memory does not grow with the number of streams either. A file is written as `<name>.tmp` and renamed when
//! its day ends or the export does. Replacing: once a partition's new file
//! is in place, the other `<16 digits>.parquet` files of that partition
//! whose first reception time lies inside the export's window are removed
//! (an earlier export of the same window, whose first row may have
//! differed); files that start outside the window, other partitions, and
//! every other file are left alone. Must not: read the data folder.

use std::path::{Path, PathBuf};

use super::ExportError;
use super::decode::Decoded;
use super::decode::fields::Field;
use super::parquet_file::ParquetFile;
use super::sink::Sink;
use crate::layout::day_folder;
use crate::select::Row;

/// The partition file name of a first reception time.
pub fn file_name(first_us: i64) -> String {
    crate::layout::parquet_name(first_us)
}

/// The first reception time in a partition file name, if it is one.
fn first_of(name: &str) -> Option<i64> {
    crate::layout::parse_parquet_name(name)
}

/// The open file of one stream.
struct Open {
    /// Its day (`YYYY-MM-DD`).
    date: String,
    /// The file, named once its first row is known.
    file: ParquetFile,
}

/// The partitioned sink.
pub struct Partitions {
    dir: PathBuf,
    /// The export's window `[from, to)`.
    window: (i64, i64),
    decoding: bool,
    fields: Vec<Field>,
    /// Per stream name: its open file.
    open: Vec<(String, Open)>,
}

impl Partitions {
    /// Writes under `dir` (created when the first row comes).
    pub fn new(dir: PathBuf, window: (i64, i64), decoding: bool, fields: Vec<Field>) -> Partitions {
        Partitions {
            dir,
            window,
            decoding,
            fields,
            open: Vec::new(),
        }
    }

    fn partition(&self, stream: &str, date: &str) -> PathBuf {
        self.dir
            .join(format!("stream={stream}"))
            .join(format!("date={date}"))
    }

    /// Finishes one file and removes what it replaces.
    fn close(&self, open: Open) -> Result<(), ExportError> {
        let path = open.file.finish()?;
        let Some(folder) = path.parent() else {
            return Ok(());
        };
        replace_older(folder, &path, self.window)
    }
}

/// Removes the partition files in `folder` other than `keep` whose first
/// reception time is inside `window`.
fn replace_older(folder: &Path, keep: &Path, window: (i64, i64)) -> Result<(), ExportError> {
    let io = |source| ExportError::Write {
        path: folder.display().to_string(),
        source,
    };
    for e in std::fs::read_dir(folder).map_err(io)? {
        let e = e.map_err(io)?;
        let p = e.path();
        if p == keep {
            continue;
        }
        let Some(first) = p.file_name().and_then(|n| n.to_str()).and_then(first_of) else {
            continue;
        };
        if first >= window.0 && first < window.1 {
            std::fs::remove_file(&p).map_err(|source| ExportError::Write {
                path: p.display().to_string(),
                source,
            })?;
        }
    }
    Ok(())
}

impl Sink for Partitions {
    fn row(&mut self, row: &Row, stream: &str, dec: &Decoded) -> Result<(), ExportError> {
        let date = day_folder(row.message.timestamp_us);
        let i = match self.open.iter().position(|(s, _)| s == stream) {
            Some(i) if self.open[i].1.date == date => i,
            found => {
                if let Some(i) = found {
                    let (_, old) = self.open.swap_remove(i);
                    self.close(old)?;
                }
                let folder = self.partition(stream, &date);
                std::fs::create_dir_all(&folder).map_err(|source| ExportError::Write {
                    path: folder.display().to_string(),
                    source,
                })?;
                let path = folder.join(file_name(row.message.timestamp_us));
                let file = ParquetFile::create(path, false, self.decoding, &self.fields)?;
                self.open.push((stream.to_owned(), Open { date, file }));
                let share = self.open.len();
                for (_, o) in &mut self.open {
                    o.file.share_limits(share);
                }
                share - 1
            }
        };
        self.open[i].1.file.push(row, stream, dec)
    }

    fn finish(mut self: Box<Self>, _rows: u64) -> Result<(), ExportError> {
        let open = std::mem::take(&mut self.open);
        let mut result = Ok(());
        for (_, o) in open {
            if result.is_ok() {
                result = self.close(o);
            } else {
                o.file.abandon();
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_file_names_are_sixteen_digits_of_the_first_row() {
        assert_eq!(file_name(1_764_237_600_000_000), "1764237600000000.parquet");
        assert_eq!(
            first_of("1764237600000000.parquet"),
            Some(1_764_237_600_000_000)
        );
        assert_eq!(first_of("1764237600000000.parquet.tmp"), None);
        assert_eq!(first_of("176423760000000.parquet"), None);
        assert_eq!(first_of("notes.parquet"), None);
    }
}
