//! Configuration: YAML text -> validated [`Config`].
//!
//! TYPES ONLY (the parser and validator are to be written below).

use std::path::PathBuf;
use std::time::Duration;

/// Where `attic run` looks for its configuration when `--config` is not given
/// (the same place as the Python original).
pub const DEFAULT_CONFIG_PATH: &str = "config/config.yaml";

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Root of all stream folders (`data-folder`); created if missing.
    pub data_folder: PathBuf,
    /// How often the self-report is logged and published
    /// (`console-feedback-period-seconds`).
    pub feedback_period: Duration,
    /// `log-level`: off, error, warn, info (default), debug, trace.
    pub log_level: log::LevelFilter,
    /// `metrics-file`: Prometheus text file written every period, if set.
    pub metrics_file: Option<PathBuf>,
    /// The streams, in file order.
    pub streams: Vec<StreamConfig>,
    /// `log-performance` + `log-performance-stream`: where to publish the JSON
    /// report; `None` when `log-performance` is false.
    pub performance: Option<PerformanceConfig>,
}

/// How to reach and log in to a broker.
#[derive(Clone, PartialEq)]
pub struct BrokerConfig {
    /// `mqtt-broker-address`: host name or IP address.
    pub host: String,
    /// `mqtt-broker-port`.
    pub port: u16,
    /// `user`; `None` when empty (anonymous).
    pub user: Option<String>,
    /// `password`, or the contents of `password-file` (trailing newline
    /// removed); `None` when empty.
    pub password: Option<String>,
    /// `client-id`; default `attic-<host>-<folder>`.
    pub client_id: String,
    /// `clean-session`; default true.
    pub clean_session: bool,
    /// `keep-alive-seconds`; default 30 s.
    pub keep_alive: Duration,
}

impl std::fmt::Debug for BrokerConfig {
    // Hand-written so that a password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("client_id", &self.client_id)
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// `durability`: how hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `normal` (default): WAL with `synchronous=NORMAL`; survives a process
    /// crash, not a power cut.
    Normal,
    /// `power-safe`: `synchronous=FULL`; survives a power cut.
    PowerSafe,
}

/// One stream: a broker, its topic filters, and a folder of files.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// The broker and login.
    pub broker: BrokerConfig,
    /// `topic`: one filter or a list; at least one.
    pub topics: Vec<String>,
    /// `prefix` + `suffix`: the folder under `data-folder`.
    pub folder_name: String,
    /// `file-rotation-time-seconds`, > 0.
    pub rotation: Duration,
    /// `qos`: 0, 1 or 2 (default 0).
    pub qos: u8,
    /// `commit-interval-ms` (default 1000 ms), > 0.
    pub commit_interval: Duration,
    /// `max-payload-bytes` (default 16 MiB); larger messages are skipped.
    pub max_payload_bytes: usize,
    /// `exclude`: topic filters whose messages are not stored.
    pub exclude: Vec<String>,
    /// `durability` (default normal).
    pub durability: Durability,
}

/// `log-performance-stream`: where the JSON self-report is published.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceConfig {
    /// The broker and login.
    pub broker: BrokerConfig,
    /// `topic`: the topic the report is published on.
    pub topic: String,
    /// `qos` of the report (default 0).
    pub qos: u8,
}
