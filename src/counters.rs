//! The counters one stream keeps for the self-report, totals since start.
//! The stream writes them; `report` turns successive samples into figures.
//!
//! Owns: [`Counters`]. Must not: import `stream` or `report`.

/// Counters for the self-report; totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages received from the broker (stored, filtered or skipped).
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages committed to a file.
    pub stored: u64,
    /// Payload bytes committed.
    pub stored_bytes: u64,
    /// Messages dropped by the filter chain (`exclude` and `filters:`);
    /// per filter in [`Stream::filter_drops`].
    pub filtered: u64,
    /// Messages skipped for exceeding `max-payload-bytes`.
    pub oversize: u64,
    /// Storage errors (each insert or commit that failed).
    pub store_errors: u64,
    /// Files finalised.
    pub files_closed: u64,
    /// Messages that never reached a committed row: those given up at a
    /// stop while storage still failed (a rolled-back transaction is
    /// inserted again, so it loses nothing).
    pub lost: u64,
    /// Unix µs of the last message received (0 = none yet).
    pub last_rx_us: i64,
    /// Duration of the last commit that wrote rows, in µs.
    pub commit_last_us: u64,
    /// Longest commit since start, in µs.
    pub commit_max_us: u64,
}
