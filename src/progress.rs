//! The one progress line of `attic export` and `attic replay` on stderr
//! (only when stderr is a terminal, redrawn at most four times a second and
//! erased at the end), and the wording of counts ("1 row", "2 rows").
//!
//! Owns: that line. Must not: decide what is counted.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::time;

/// A progress line for one command (`"attic export"`, `"attic replay"`).
#[derive(Debug)]
pub struct Progress {
    /// What the line starts with.
    command: &'static str,
    /// `None` when stderr is not a terminal: nothing is drawn.
    started: Option<Instant>,
    /// When the line was last drawn.
    last: Instant,
    /// Something is drawn and must be cleared.
    drawn: bool,
}

impl Progress {
    /// A line for `command`, drawn only if stderr is a terminal.
    pub fn new(command: &'static str) -> Progress {
        let now = Instant::now();
        Progress {
            command,
            started: std::io::stderr().is_terminal().then_some(now),
            last: now,
            drawn: false,
        }
    }

    /// Redraws the line (at most every 250 ms): `rows` so far, the rate,
    /// and the reception time of the row reached.
    pub fn show(&mut self, rows: u64, at_us: i64) {
        let Some(start) = self.started else { return };
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(250) {
            return;
        }
        self.last = now;
        self.drawn = true;
        let rate = rows as f64 / now.duration_since(start).as_secs_f64().max(1e-3);
        let at = time::rfc3339_us(at_us).unwrap_or_default();
        eprint!(
            "\r{}: {}, {rate:.0} rows/s, at {at}\x1b[K",
            self.command,
            count(rows, "row", "rows")
        );
    }

    /// Erases the line, if one is drawn.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }
}

/// `1 row`, `2 rows`, `0 rows`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "row", "rows"), "1 row");
        assert_eq!(count(0, "row", "rows"), "0 rows");
        assert_eq!(count(2, "file", "files"), "2 files");
    }
}
