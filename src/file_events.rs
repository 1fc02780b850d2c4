//! The one owner of "a file changed state": every closed, finished or
//! recovered file becomes one [`FileEvent`], and the loop hands each event
//! to its subscribers in one place (`app::file_events`): the log, the
//! finaliser, the summary's tally, retention and the on-finish hook.
//!
//! ```text
//!   Stream (writer closed X.sqlite.part) --Closed---->+
//!   store::finaliser (X.sqlite done)     --Finished-->+--> FileEvents --> app::file_events::dispatch
//!   start-up recovery (crash leftover)   --Recovered->+      (queue)         log, finaliser, tally,
//!                                                                            retention, hooks
//! ```
//!
//! Owns: the event type and its queue, in production order. Must not: act
//! on an event itself, or do I/O.

use crate::store::Durability;
use crate::store::facts::FileFacts;
use std::path::{Path, PathBuf};

/// Something that happened to one file of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// The loop closed the stream's open file (rotation, SIGHUP, a message
    /// past the period's end, stop): `part` still needs its checkpoint,
    /// fsync and rename.
    Closed {
        /// The stream's index in the config.
        stream: usize,
        /// The closed `X.sqlite.part`.
        part: PathBuf,
        /// The stream's durability (how the finaliser syncs it).
        durability: Durability,
    },
    /// A closed file was fsynced and renamed to its final name.
    Finished {
        /// The stream's index in the config.
        stream: usize,
        /// The final file and what it holds.
        facts: FileFacts,
    },
    /// Start-up recovery finished a `.part` file an earlier run left.
    Recovered {
        /// The stream's index in the config.
        stream: usize,
        /// The final file and what it holds.
        facts: FileFacts,
    },
}

impl FileEvent {
    /// The stream the event is about.
    pub fn stream(&self) -> usize {
        match self {
            FileEvent::Closed { stream, .. }
            | FileEvent::Finished { stream, .. }
            | FileEvent::Recovered { stream, .. } => *stream,
        }
    }
}

/// The final name of a closed `X.sqlite.part`: `X.sqlite` (a name already
/// final stays as it is).
pub fn final_name(part: &Path) -> PathBuf {
    crate::layout::with_kind(part, crate::layout::Kind::Finished)
}

/// Events waiting for the loop's dispatch, oldest first.
#[derive(Debug, Default)]
pub struct FileEvents {
    queue: Vec<FileEvent>,
}

impl FileEvents {
    /// Adds an event.
    pub fn push(&mut self, event: FileEvent) {
        self.queue.push(event);
    }

    /// Takes every waiting event, oldest first.
    pub fn take(&mut self) -> Vec<FileEvent> {
        std::mem::take(&mut self.queue)
    }

    /// No event is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_in_the_order_they_were_produced() {
        let mut q = FileEvents::default();
        q.push(FileEvent::Closed {
            stream: 1,
            part: "/d/s/2026-01-01/1.sqlite.part".into(),
            durability: Durability::Normal,
        });
        q.push(FileEvent::Finished {
            stream: 0,
            facts: FileFacts::unknown("/d/s/2026-01-01/1.sqlite".into()),
        });
        let got = q.take();
        assert_eq!(
            got.iter().map(FileEvent::stream).collect::<Vec<_>>(),
            [1, 0]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn the_final_name_drops_only_a_part_extension() {
        assert_eq!(
            final_name(Path::new("/a/1.sqlite.part")),
            Path::new("/a/1.sqlite")
        );
        assert_eq!(
            final_name(Path::new("/a/1.sqlite")),
            Path::new("/a/1.sqlite")
        );
    }
}
