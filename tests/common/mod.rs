//! Support code shared by the integration tests: start a real mosquitto on a
//! free port, script a fake broker, run the `attic` binary, and read the
//! SQLite files it writes.
//!
//! ```text
//!   broker        Mosquitto: a real broker on 127.0.0.1:<free port>, restartable
//!   certs         TestPki: CA, broker and client certificates made per test (rcgen)
//!   fake_broker   FakeBroker: scripted per-connection behaviour + raw fault frames
//!   mqtt_client   TestClient: tiny blocking MQTT 3.1.1 client (exact binary payloads)
//!   attic         Attic: the binary under test as a child process, logs to files
//!   files         list / read / count rows of the .sqlite and .sqlite.part files
//!   tempdir       TempDir: removed on success, kept (and printed) when a test fails
//! ```
//!
//! Rule for every helper: no fixed ports, no bare sleeps; every wait is
//! [`wait_until`] with a deadline, and every panic says what was expected and
//! where to look (log file, temp folder).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]

pub mod attic;
pub mod broker;
pub mod certs;
pub mod fake_broker;
pub mod files;
pub mod mqtt_client;
pub mod tempdir;

pub use attic::{Attic, run_attic, run_attic_in, spawn_attic_in};
pub use broker::{Mosquitto, MosquittoBuilder, TlsListener};
pub use certs::TestPki;
pub use fake_broker::{FakeBroker, FakeConn};
pub use files::{Row, all_rows, finished_files, list_files, part_files, read_rows, wait_for_rows};
pub use mqtt_client::TestClient;
pub use tempdir::TempDir;

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Longest pause between two polls of a condition.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` (first at once, then every 1 ms growing to 20 ms) until
/// it returns true; panics after `timeout` with "timed out after .. waiting
/// for <what>".
pub fn wait_until(timeout: Duration, what: impl Display, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()));
}

/// Like [`wait_until`], but the condition yields a value once it holds.
pub fn wait_for<T>(
    timeout: Duration,
    what: impl Display,
    mut condition: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = Duration::from_millis(1);
    loop {
        if let Some(value) = condition() {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!(
                "timed out after {:?} waiting for {what}",
                now.duration_since(start)
            );
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}

/// Last `n` lines of `text`, for panic messages that quote a log.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
