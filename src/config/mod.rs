//! Configuration: YAML text -> validated [`Config`].
//!
//! Owns: the YAML keys, their defaults, and every check a config file must
//! pass, all reported at once with key path, line and column
//! ([`ConfigError`]), and the summary `attic check` prints
//! ([`Config::describe`]). Must not: touch the network, create folders or
//! open databases, or use the YAML crate anywhere but `read_yaml` (one
//! function, so the crate can be swapped). Reading a `password-file` is the
//! only file access besides the config itself.
//!
//! The walk is: text -> `Yaml` (our own tree, from `read_yaml`) -> `Checker`
//! (typed getters that record a [`Problem`] and go on) -> [`Config`].

mod bounds;
mod checker;
mod describe;
mod filters;
mod locate;
mod mqtt5;
mod on_finish;
mod retention;
mod sections;
mod session;
mod tls;
mod yaml;

pub use crate::mqtt::topic::topic_filter_problem;
pub use crate::store::Durability;
pub use crate::store::retention::Limits as Retention;
pub use on_finish::{OnFinish, PLACEHOLDERS};

use crate::filter;
use checker::Checker;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml::read_yaml;

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
    /// `retention.min-free-mb` in bytes: free space kept on the data
    /// folder's file system (oldest finished files of any stream go).
    pub min_free_bytes: Option<u64>,
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
    /// `mqtt-version: 5` and `session-expiry-seconds`; `None` = MQTT 3.1.1.
    pub mqtt5: Option<crate::mqtt::session::v5::Mqtt5Options>,
    /// `tls:`; `None` = plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
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
            .field("mqtt5", &self.mqtt5)
            .field("tls", &self.tls)
            .finish()
    }
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
    /// `coalesce-ms` (default 50 ms, 0 = off): at QoS 0 and low rates, how
    /// long to leave the socket unread after a small read, so that several
    /// messages share one wake-up.
    pub coalesce: Duration,
    /// `max-payload-bytes` (default 16 MiB); larger messages are skipped.
    pub max_payload_bytes: usize,
    /// `exclude`: topic filters whose messages are not stored; run as an
    /// `exclude` filter at the head of the filter chain.
    pub exclude: Vec<String>,
    /// `filters`: the filter chain, in order, each entry checked against
    /// the filter registry.
    pub filters: Vec<filter::Spec>,
    /// `durability` (default normal).
    pub durability: Durability,
    /// `retention` (the stream's own keys over the top-level ones).
    pub retention: Retention,
    /// `on-finish` (the stream's own block, else the top-level one).
    pub on_finish: Option<OnFinish>,
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

// ---------------------------------------------------------------------------
// Errors

/// Why a configuration was refused: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The configuration file the problems are in.
    pub file: PathBuf,
    /// The problems, in file order (those with no line first).
    pub problems: Vec<Problem>,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Key path such as `streams[1].qos`; empty for the whole file.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What is wrong, for a person.
    pub message: String,
}

impl ConfigError {
    fn whole_file(file: &Path, message: String, at: Option<(usize, usize)>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            problems: vec![Problem {
                key: String::new(),
                line: at.map(|a| a.0),
                column: at.map(|a| a.1),
                message,
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line per problem: `FILE:LINE:COL: KEY: MESSAGE`, leaving out the
    /// parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.problems.is_empty() {
            return write!(f, "{file}: invalid configuration");
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}:")?;
            if let Some(line) = p.line {
                write!(f, "{line}:")?;
                if let Some(column) = p.column {
                    write!(f, "{column}:")?;
                }
            }
            if !p.key.is_empty() {
                write!(f, " {}:", p.key)?;
            }
            write!(f, " {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// Public entry points

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read the file: {e}"), None))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or(&[]);
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(good.get(start..).unwrap_or(&[]))
            .chars()
            .count()
            + 1;
        ConfigError::whole_file(
            path,
            "not UTF-8 text (is this a binary file?)".to_owned(),
            Some((line, column)),
        )
    })?;
    parse(&text, path)
}

/// Validates configuration `text`. `file` names the file in problems, and
/// relative `password-file` paths are relative to its folder.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with_host(text, file, &host_name())
}

/// This machine's host name (for default client ids), or `localhost`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the
    // call; gethostname writes at most `buf.len()` bytes into it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(buf.get(..len).unwrap_or(&[])) {
        Ok(name) if !name.is_empty() => name.to_owned(),
        _ => "localhost".to_owned(),
    }
}

fn parse_with_host(text: &str, file: &Path, host: &str) -> Result<Config, ConfigError> {
    let root =
        read_yaml(text).map_err(|(message, at)| ConfigError::whole_file(file, message, at))?;
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut checker = Checker {
        locator: locate::Locator::new(text),
        problems: Vec::new(),
        host,
        tag: String::new(),
        dir,
    };
    let config = checker.config(&root);
    let mut problems = checker.problems;
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError {
            file: file.to_path_buf(),
            problems,
        }),
    }
}

// ---------------------------------------------------------------------------
// Key paths

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn child(path: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    child(path, Seg::Key(k.to_owned()))
}

#[cfg(test)]
mod tests;
