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

mod locate;
mod tls;

use crate::filter::{self, options::Step};
use std::fmt;
use std::path::{Path, PathBuf};
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
    /// `tls:`; `None` = plain TCP.
    pub tls: Option<crate::net::tls::TlsSettings>,
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
            .field("tls", &self.tls)
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
// Keys and defaults

const TOP_KEYS: &[&str] = &[
    "data-folder",
    "console-feedback-period-seconds",
    "streams",
    "log-performance",
    "log-performance-stream",
    "log-level",
    "metrics-file",
];

const STREAM_KEYS: &[&str] = &[
    "mqtt-broker-address",
    "mqtt-broker-port",
    "user",
    "password",
    "password-file",
    "topic",
    "prefix",
    "suffix",
    "file-rotation-time-seconds",
    "qos",
    "client-id",
    "clean-session",
    "keep-alive-seconds",
    "commit-interval-ms",
    "coalesce-ms",
    "max-payload-bytes",
    "exclude",
    "filters",
    "durability",
    "tls",
];

const PERFORMANCE_KEYS: &[&str] = &[
    "topic",
    "mqtt-broker-address",
    "mqtt-broker-port",
    "user",
    "password",
    "password-file",
    "client-id",
    "keep-alive-seconds",
    "qos",
    "tls",
];

const DEFAULT_FEEDBACK_SECONDS: u64 = 3;
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 1883;
const DEFAULT_ROTATION_SECONDS: u64 = 300;
const DEFAULT_KEEP_ALIVE_SECONDS: u64 = 30;
const DEFAULT_COMMIT_MS: u64 = 1000;
/// Default `coalesce-ms`: at most this much later reception timestamps at
/// low rates, for several times fewer wake-ups (see README, Performance).
const DEFAULT_COALESCE_MS: u64 = 50;
/// Largest `coalesce-ms` (longer would delay keep-alive handling).
const MAX_COALESCE_MS: u64 = 1000;
const DEFAULT_MAX_PAYLOAD: u64 = 16 * 1024 * 1024;
/// The largest payload MQTT's remaining-length field can describe.
const MAX_PAYLOAD_LIMIT: u64 = 268_435_455;
/// Upper bound for second/millisecond counts, so later arithmetic on
/// deadlines cannot overflow.
const MAX_COUNT: u64 = u32::MAX as u64;
/// MQTT strings carry a 16-bit length.
const MAX_MQTT_STRING: usize = 65_535;

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

/// Why `filter` is not a valid MQTT topic filter, or `None` if it is.
/// Accepts `$share/<group>/<filter>`.
pub fn topic_filter_problem(filter: &str) -> Option<String> {
    if let Some(p) = mqtt_string_problem(filter) {
        return Some(p);
    }
    let body = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let Some((group, inner)) = rest.split_once('/') else {
                return Some("a shared subscription is `$share/<group>/<filter>`".to_owned());
            };
            if group.is_empty() || group.contains(['+', '#']) {
                return Some(
                    "the share group must be non-empty and contain no `+` or `#`".to_owned(),
                );
            }
            if inner.is_empty() {
                return Some("the filter after `$share/<group>/` is empty".to_owned());
            }
            inner
        }
        None => filter,
    };
    let levels: Vec<&str> = body.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Some(format!(
                "`#` must be a whole level and the last one (in `{filter}`)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Some(format!("`+` must be a whole level (in `{filter}`)"));
        }
    }
    None
}

fn mqtt_string_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("must not be empty".to_owned())
    } else if s.len() > MAX_MQTT_STRING {
        Some(format!("is longer than {MAX_MQTT_STRING} bytes"))
    } else if s.contains('\0') {
        Some("must not contain a NUL character".to_owned())
    } else {
        None
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
// The YAML tree, and the only use of the YAML crate

/// A parsed YAML value, independent of the YAML crate.
#[derive(Debug)]
enum Yaml {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
    Tagged(String),
}

impl Yaml {
    /// "a string", "an integer", ... for "expected X, found Y".
    fn kind(&self) -> &'static str {
        match self {
            Yaml::Null => "nothing",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) => "an integer",
            Yaml::Float(_) => "a floating-point number",
            Yaml::Str(_) => "a string",
            Yaml::List(_) => "a list",
            Yaml::Map(_) => "a mapping",
            Yaml::Tagged(_) => "a tagged value",
        }
    }
}

/// Parses `text` as one YAML document (anchors and `<<` merges resolved).
/// The error is a message and, when known, its 1-based line and column.
fn read_yaml(text: &str) -> Result<Yaml, (String, Option<(usize, usize)>)> {
    fn convert(value: serde_yaml::Value) -> Yaml {
        use serde_yaml::Value;
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Yaml::Int(i.into()),
                (None, Some(u)) => Yaml::Int(u.into()),
                (None, None) => Yaml::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Yaml::Str(s),
            Value::Sequence(items) => Yaml::List(items.into_iter().map(convert).collect()),
            Value::Mapping(map) => Yaml::Map(
                map.into_iter()
                    .map(|(k, v)| (convert(k), convert(v)))
                    .collect(),
            ),
            Value::Tagged(tagged) => Yaml::Tagged(tagged.tag.to_string()),
        }
    }
    let error = |e: serde_yaml::Error| {
        let at = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        if let Some((line, column)) = at {
            message = message.replace(&format!(" at line {line} column {column}"), "");
        }
        (format!("YAML: {message}"), at)
    };
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(error)?;
    value.apply_merge().map_err(error)?;
    Ok(convert(value))
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

/// The known key closest to `unknown`, if it is close enough to be a typo.
pub(crate) fn suggestion<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    };
    let unknown = unknown.to_lowercase();
    known
        .iter()
        .map(|k| (distance(&unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

// ---------------------------------------------------------------------------
// The checker: typed getters that record problems and carry on

/// A mapping's known, non-null entries, with the path that leads to it.
struct Fields<'v> {
    path: Vec<Seg>,
    entries: Vec<(&'v str, &'v Yaml)>,
}

impl<'v> Fields<'v> {
    fn get(&self, k: &str) -> Option<&'v Yaml> {
        self.entries
            .iter()
            .find(|(name, _)| *name == k)
            .map(|e| e.1)
    }

    fn at(&self, k: &str) -> Vec<Seg> {
        key(&self.path, k)
    }
}

struct Checker<'t> {
    locator: locate::Locator<'t>,
    problems: Vec<Problem>,
    /// Host name for default client ids.
    host: &'t str,
    /// The config file's folder, for relative `password-file` paths.
    dir: &'t Path,
}

impl Checker<'_> {
    /// Records a problem for `path`, positioned at `at` (usually the same).
    fn report_at(&mut self, path: &[Seg], at: &[Seg], message: String) {
        let pos = self.locator.find(at);
        self.problems.push(Problem {
            key: path_string(path),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message,
        });
    }

    fn report(&mut self, path: &[Seg], message: String) {
        self.report_at(path, path, message);
    }

    /// Like `report`, but positioned at the deepest part of `path` the
    /// locator finds: filter options are usually in flow style
    /// (`{ seconds: 10 }`), which it does not walk into; the entry's line
    /// is then still right.
    fn report_near(&mut self, path: &[Seg], message: String) {
        let mut at = path.len();
        while at > 0 && self.locator.find(&path[..at]).is_none() {
            at -= 1;
        }
        self.report_at(path, &path[..at], message);
    }

    fn wrong_type(&mut self, path: &[Seg], expected: &str, found: &Yaml) {
        let found = match found {
            Yaml::Tagged(tag) => format!("a value tagged `{tag}` (tags are not supported)"),
            other => other.kind().to_owned(),
        };
        self.report(path, format!("expected {expected}, found {found}"));
    }

    /// Reports a missing key, positioned at the mapping that should hold it.
    fn missing(&mut self, f: &Fields, k: &str, why: &str) {
        let path = f.at(k);
        let parent = f.path.clone();
        self.report_at(&path, &parent, format!("is required{why}"));
    }

    /// Checks that `value` is a mapping with string keys, all of them known;
    /// `null` values count as absent.
    fn mapping<'v>(&mut self, value: &'v Yaml, path: &[Seg], known: &[&str]) -> Option<Fields<'v>> {
        let Yaml::Map(pairs) = value else {
            self.wrong_type(path, "a mapping (`key: value` lines)", value);
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in pairs {
            let Yaml::Str(name) = k else {
                let kind = k.kind();
                self.report(path, format!("keys must be strings, found {kind}"));
                continue;
            };
            if !known.contains(&name.as_str()) {
                let mut message = format!("unknown key `{name}`");
                if let Some(close) = suggestion(name, known) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.report(&key(path, name), message);
            } else if !matches!(v, Yaml::Null) {
                entries.push((name.as_str(), v));
            }
        }
        Some(Fields {
            path: path.to_vec(),
            entries,
        })
    }

    fn string(&mut self, f: &Fields, k: &str) -> Option<String> {
        match f.get(k)? {
            Yaml::Str(s) => Some(s.clone()),
            other => {
                self.wrong_type(&f.at(k), "a string", other);
                None
            }
        }
    }

    /// A string that must be one of `choices`.
    fn choice(&mut self, f: &Fields, k: &str, choices: &[&str]) -> Option<String> {
        let s = self.string(f, k)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            let list = choices.join(", ");
            self.report(&f.at(k), format!("must be one of {list}; found `{s}`"));
            None
        }
    }

    /// A non-empty path with no NUL.
    fn path(&mut self, f: &Fields, k: &str) -> Option<PathBuf> {
        let s = self.string(f, k)?;
        if s.is_empty() || s.contains('\0') {
            self.report(&f.at(k), "must be a non-empty path".to_owned());
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn boolean(&mut self, f: &Fields, k: &str) -> Option<bool> {
        match f.get(k)? {
            Yaml::Bool(b) => Some(*b),
            other => {
                self.wrong_type(&f.at(k), "true or false", other);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn integer(&mut self, f: &Fields, k: &str, min: u64, max: u64) -> Option<u64> {
        let value = f.get(k)?;
        let Yaml::Int(i) = value else {
            self.wrong_type(&f.at(k), "an integer", value);
            return None;
        };
        match u64::try_from(*i) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.report(
                    &f.at(k),
                    format!("must be between {min} and {max}; found {i}"),
                );
                None
            }
        }
    }

    /// `qos`: 0, 1 or 2.
    fn qos(&mut self, f: &Fields) -> u8 {
        self.integer(f, "qos", 0, 2)
            .and_then(|q| u8::try_from(q).ok())
            .unwrap_or(0)
    }

    /// One filter or a list of them, each checked.
    fn filters(&mut self, f: &Fields, k: &str) -> Vec<String> {
        let path = f.at(k);
        let mut out = Vec::new();
        let mut check = |me: &mut Self, s: &str, at: &[Seg]| {
            if let Some(p) = topic_filter_problem(s) {
                me.report(at, format!("invalid topic filter: {p}"));
            }
            out.push(s.to_owned());
        };
        match f.get(k) {
            None => {}
            Some(Yaml::Str(s)) => check(self, s, &path),
            Some(Yaml::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = child(&path, Seg::Index(i));
                    match item {
                        Yaml::Str(s) => check(self, s, &at),
                        other => self.wrong_type(&at, "a topic filter string", other),
                    }
                }
            }
            Some(other) => self.wrong_type(&path, "a topic filter or a list of them", other),
        }
        out
    }

    fn config(&mut self, root: &Yaml) -> Option<Config> {
        if matches!(root, Yaml::Null) {
            self.report(
                &[],
                "the file is empty; expected keys such as `data-folder` and `streams`".to_owned(),
            );
            return None;
        }
        let Yaml::Map(_) = root else {
            let kind = root.kind();
            self.report(
                &[],
                format!("the top level must be a mapping (`key: value` lines), found {kind}"),
            );
            return None;
        };
        let top = self.mapping(root, &[], TOP_KEYS)?;

        if top.get("data-folder").is_none() {
            self.missing(&top, "data-folder", "");
        }
        let data_folder = self.path(&top, "data-folder");
        let feedback_period = self.feedback_period(&top);
        let log_level = self
            .choice(
                &top,
                "log-level",
                &["off", "error", "warn", "info", "debug", "trace"],
            )
            .and_then(|s| s.parse().ok())
            .unwrap_or(log::LevelFilter::Info);
        let metrics_file = self.path(&top, "metrics-file");

        let mut streams = Vec::new();
        match top.get("streams") {
            None => self.missing(&top, "streams", ""),
            Some(Yaml::List(items)) if items.is_empty() => {
                self.report(&top.at("streams"), "needs at least one stream".to_owned());
            }
            Some(Yaml::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = child(&top.at("streams"), Seg::Index(i));
                    if let Some(stream) = self.stream(item, &path) {
                        streams.push((path, stream));
                    }
                }
            }
            Some(other) => self.wrong_type(&top.at("streams"), "a list of streams", other),
        }

        let enabled = self.boolean(&top, "log-performance").unwrap_or(false);
        let performance = match top.get("log-performance-stream") {
            Some(block) => self.performance(block, &top.at("log-performance-stream"), enabled),
            None => {
                if enabled {
                    let path = top.at("log-performance-stream");
                    let at = top.at("log-performance");
                    self.report_at(
                        &path,
                        &at,
                        "is required when `log-performance` is true".to_owned(),
                    );
                }
                None
            }
        };
        let performance = performance.filter(|_| enabled);
        self.check_unique(&streams, performance.as_ref());

        Some(Config {
            data_folder: data_folder?,
            feedback_period,
            log_level,
            metrics_file,
            streams: streams.into_iter().map(|(_, s)| s).collect(),
            performance,
        })
    }

    /// `console-feedback-period-seconds`: a number of seconds > 0.
    fn feedback_period(&mut self, top: &Fields) -> Duration {
        let k = "console-feedback-period-seconds";
        let default = Duration::from_secs(DEFAULT_FEEDBACK_SECONDS);
        let seconds = match top.get(k) {
            None => return default,
            Some(Yaml::Int(i)) => *i as f64,
            Some(Yaml::Float(x)) => *x,
            Some(other) => {
                self.wrong_type(&top.at(k), "a number of seconds", other);
                return default;
            }
        };
        match Duration::try_from_secs_f64(seconds) {
            Ok(d) if seconds > 0.0 && d.as_secs() <= MAX_COUNT => d,
            _ => {
                self.report(
                    &top.at(k),
                    format!("must be a number of seconds above 0 and at most {MAX_COUNT}; found {seconds}"),
                );
                default
            }
        }
    }

    fn stream(&mut self, value: &Yaml, path: &[Seg]) -> Option<StreamConfig> {
        let f = self.mapping(value, path, STREAM_KEYS)?;

        if f.get("topic").is_none() {
            self.missing(&f, "topic", "");
        } else if matches!(f.get("topic"), Some(Yaml::List(l)) if l.is_empty()) {
            self.report(&f.at("topic"), "needs at least one topic filter".to_owned());
        }
        let topics = self.filters(&f, "topic");
        let exclude = self.filters(&f, "exclude");
        let filters = self.filter_specs(&f);

        let prefix = self.string(&f, "prefix").unwrap_or_default();
        let suffix = self.string(&f, "suffix").unwrap_or_default();
        let folder_name = format!("{prefix}{suffix}");
        if let Some(why) = folder_problem(&folder_name) {
            let (k, at) = Self::folder_key(&f);
            self.report_at(&k, &at, format!("`prefix` + `suffix` {why}"));
        }

        let rotation = self
            .integer(&f, "file-rotation-time-seconds", 1, MAX_COUNT)
            .unwrap_or(DEFAULT_ROTATION_SECONDS);
        let qos = self.qos(&f);
        let commit_ms = self
            .integer(&f, "commit-interval-ms", 1, MAX_COUNT)
            .unwrap_or(DEFAULT_COMMIT_MS);
        let coalesce_ms = self
            .integer(&f, "coalesce-ms", 0, MAX_COALESCE_MS)
            .unwrap_or(DEFAULT_COALESCE_MS);
        let max_payload = self
            .integer(&f, "max-payload-bytes", 1, MAX_PAYLOAD_LIMIT)
            .unwrap_or(DEFAULT_MAX_PAYLOAD);
        let durability = match self
            .choice(&f, "durability", &["normal", "power-safe"])
            .as_deref()
        {
            Some("power-safe") => Durability::PowerSafe,
            _ => Durability::Normal,
        };
        let default_id = format!("attic-{}-{folder_name}", self.host);
        let broker = self.broker(&f, default_id, true);

        Some(StreamConfig {
            broker,
            topics,
            folder_name,
            rotation: Duration::from_secs(rotation),
            qos,
            commit_interval: Duration::from_millis(commit_ms),
            coalesce: Duration::from_millis(coalesce_ms),
            max_payload_bytes: usize::try_from(max_payload).unwrap_or(usize::MAX),
            exclude,
            filters,
            durability,
        })
    }

    /// `filters`: a list of one-key mappings `name: options`, each name
    /// registered and its options accepted by the filter's `build`.
    fn filter_specs(&mut self, f: &Fields) -> Vec<filter::Spec> {
        let path = f.at("filters");
        let items = match f.get("filters") {
            None => return Vec::new(),
            Some(Yaml::List(items)) => items,
            Some(other) => {
                self.wrong_type(&path, "a list of filters (`- name: options`)", other);
                return Vec::new();
            }
        };
        let registry = filter::Registry::builtin();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = child(&path, Seg::Index(i));
            let pairs = match item {
                Yaml::Map(pairs) if pairs.len() == 1 => pairs,
                Yaml::Map(pairs) => {
                    let n = pairs.len();
                    self.report_near(
                        &at,
                        format!("each filter is a one-key mapping `name: options`; found {n} keys"),
                    );
                    continue;
                }
                Yaml::Str(name) if registry.contains(name) => {
                    self.report_near(
                        &at,
                        format!("write `- {name}: <options>` (a filter is a one-key mapping)"),
                    );
                    continue;
                }
                other => {
                    let found = other.kind();
                    self.report_near(
                        &at,
                        format!(
                            "expected a one-key mapping such as `- exclude: [\"debug/#\"]`, found {found}"
                        ),
                    );
                    continue;
                }
            };
            let Some((Yaml::Str(name), value)) = pairs.first() else {
                self.report_near(&at, "a filter name must be a string".to_owned());
                continue;
            };
            let at = key(&at, name);
            if !registry.contains(name) {
                let names = registry.names();
                let mut message = format!("unknown filter `{name}`");
                match suggestion(name, &names) {
                    Some(close) => message.push_str(&format!("; did you mean `{close}`?")),
                    None => message.push_str(&format!(" (known: {})", names.join(", "))),
                }
                self.report_near(&at, message);
                continue;
            }
            let options = self.option_value(value, &at);
            let spec = filter::Spec::new(name, options);
            if let Err(problems) = registry.build(&spec) {
                for p in problems {
                    let mut full = at.clone();
                    full.extend(p.path.into_iter().map(|step| match step {
                        Step::Key(k) => Seg::Key(k),
                        Step::Index(i) => Seg::Index(i),
                    }));
                    self.report_near(&full, p.message);
                }
            }
            out.push(spec);
        }
        out
    }

    /// Converts a filter's options to [`filter::Value`]; tags and non-string
    /// keys are problems (and become `Null` / are left out).
    fn option_value(&mut self, value: &Yaml, path: &[Seg]) -> filter::Value {
        use filter::Value;
        match value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Int(i) => Value::Int(*i),
            Yaml::Float(x) => Value::Float(*x),
            Yaml::Str(s) => Value::Str(s.clone()),
            Yaml::List(items) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.option_value(v, &child(path, Seg::Index(i))))
                    .collect(),
            ),
            Yaml::Map(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let Yaml::Str(name) = k else {
                        let kind = k.kind();
                        self.report_near(path, format!("keys must be strings, found {kind}"));
                        continue;
                    };
                    out.push((name.clone(), self.option_value(v, &key(path, name))));
                }
                Value::Map(out)
            }
            Yaml::Tagged(tag) => {
                self.report_near(
                    path,
                    format!("expected a value, found one tagged `{tag}` (tags are not supported)"),
                );
                Value::Null
            }
        }
    }

    /// The key a folder-name problem is reported on, and where it points.
    fn folder_key(f: &Fields) -> (Vec<Seg>, Vec<Seg>) {
        let at = if f.get("prefix").is_some() {
            f.at("prefix")
        } else if f.get("suffix").is_some() {
            f.at("suffix")
        } else {
            f.path.clone()
        };
        (f.at("prefix"), at)
    }

    fn performance(
        &mut self,
        value: &Yaml,
        path: &[Seg],
        enabled: bool,
    ) -> Option<PerformanceConfig> {
        let f = self.mapping(value, path, PERFORMANCE_KEYS)?;
        let topic = self.string(&f, "topic");
        match &topic {
            None if enabled && f.get("topic").is_none() => {
                self.missing(&f, "topic", " when `log-performance` is true");
            }
            Some(t) => {
                let why = mqtt_string_problem(t).or_else(|| {
                    t.contains(['+', '#'])
                        .then(|| "must not contain the wildcards `+` or `#`".to_owned())
                });
                if let Some(why) = why {
                    self.report(&f.at("topic"), why);
                }
            }
            None => {}
        }
        let qos = self.qos(&f);
        let default_id = format!("attic-{}-performance", self.host);
        let broker = self.broker(&f, default_id, enabled);
        Some(PerformanceConfig {
            broker,
            topic: topic.unwrap_or_default(),
            qos,
        })
    }

    /// The broker keys shared by streams and `log-performance-stream`.
    /// `password-file` is read only when `read_secrets` is set.
    fn broker(
        &mut self,
        f: &Fields,
        default_client_id: String,
        read_secrets: bool,
    ) -> BrokerConfig {
        let host = self
            .string(f, "mqtt-broker-address")
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        if host.is_empty() || host.contains(['\0', ' ', '/']) {
            self.report(
                &f.at("mqtt-broker-address"),
                format!("`{host}` is not a host name or IP address"),
            );
        }
        let tls = self.tls(f, &host, read_secrets);
        let default_port = match tls {
            Some(_) => tls::DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        let port = self
            .integer(f, "mqtt-broker-port", 1, 65_535)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port);
        let user = self.string(f, "user").unwrap_or_default();
        let mut password = self.string(f, "password").unwrap_or_default();
        for (k, value) in [("user", &user), ("password", &password)] {
            if !value.is_empty() {
                if let Some(why) = mqtt_string_problem(value) {
                    self.report(&f.at(k), why);
                }
            }
        }
        if let Some(file) = self.path(f, "password-file") {
            if !password.is_empty() {
                self.report(
                    &f.at("password-file"),
                    "set either `password` or `password-file`, not both".to_owned(),
                );
            } else if read_secrets {
                password = self.read_password_file(f, &file).unwrap_or_default();
            }
        }
        if !password.is_empty() && user.is_empty() {
            let k = if f.get("password").is_some() {
                "password"
            } else {
                "password-file"
            };
            self.report(
                &f.at(k),
                "a password needs a `user` (MQTT 3.1.1)".to_owned(),
            );
        }
        let client_id = match self.string(f, "client-id") {
            Some(id) => {
                if let Some(why) = mqtt_string_problem(&id) {
                    self.report(&f.at("client-id"), why);
                }
                id
            }
            None => default_client_id,
        };
        let clean_session = self.boolean(f, "clean-session").unwrap_or(true);
        let keep_alive = self
            .integer(f, "keep-alive-seconds", 1, 65_535)
            .unwrap_or(DEFAULT_KEEP_ALIVE_SECONDS);
        BrokerConfig {
            host,
            port,
            user: Some(user).filter(|u| !u.is_empty()),
            password: Some(password).filter(|p| !p.is_empty()),
            client_id,
            clean_session,
            keep_alive: Duration::from_secs(keep_alive),
            tls,
        }
    }

    /// Reads a password file (relative to the config's folder), without its
    /// trailing line end.
    fn read_password_file(&mut self, f: &Fields, file: &Path) -> Option<String> {
        let full = self.dir.join(file);
        match std::fs::read_to_string(&full) {
            Ok(text) => {
                let password = text.trim_end_matches(['\n', '\r']).to_owned();
                if password.is_empty() {
                    let shown = full.display();
                    self.report(&f.at("password-file"), format!("`{shown}` is empty"));
                    return None;
                }
                if let Some(why) = mqtt_string_problem(&password) {
                    self.report(&f.at("password-file"), format!("the password {why}"));
                }
                Some(password)
            }
            Err(e) => {
                let shown = full.display();
                self.report(
                    &f.at("password-file"),
                    format!("cannot read `{shown}`: {e}"),
                );
                None
            }
        }
    }

    /// Two streams may not share a folder; two connections to one broker may
    /// not share a client id (the broker would keep kicking one off).
    fn check_unique(
        &mut self,
        streams: &[(Vec<Seg>, StreamConfig)],
        performance: Option<&PerformanceConfig>,
    ) {
        for (i, (path, s)) in streams.iter().enumerate() {
            let earlier = streams.iter().take(i);
            if let Some((first, _)) = earlier
                .clone()
                .find(|(_, e)| e.folder_name == s.folder_name)
            {
                let (k, at) = (key(path, "prefix"), key(path, "prefix"));
                let at = if self.locator.find(&at).is_some() {
                    at
                } else {
                    path.clone()
                };
                let first = path_string(first);
                let name = &s.folder_name;
                self.report_at(
                    &k,
                    &at,
                    format!("folder `{name}` is already used by {first}"),
                );
                continue;
            }
            let same_id = |b: &BrokerConfig| {
                b.client_id == s.broker.client_id
                    && b.host == s.broker.host
                    && b.port == s.broker.port
            };
            if let Some((first, _)) = earlier.clone().find(|(_, e)| same_id(&e.broker)) {
                let k = key(path, "client-id");
                let first = path_string(first);
                self.report(
                    &k,
                    format!("client id is already used by {first} on the same broker"),
                );
            }
            if performance.is_some_and(|p| same_id(&p.broker)) {
                let k = key(path, "client-id");
                self.report(
                    &k,
                    "client id is already used by `log-performance-stream`".to_owned(),
                );
            }
        }
    }
}

/// Why `name` cannot be a stream's folder, or `None` if it can.
fn folder_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not both be empty (they name the stream's folder)")
    } else if name == "." || name == ".." {
        Some("must not be `.` or `..`")
    } else if name.contains(['/', '\0']) {
        Some("must be one folder name, without `/` or NUL")
    } else if name.len() > 255 {
        Some("must be at most 255 bytes long (one folder name)")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// `attic check`

impl Config {
    /// A human-readable summary of the resolved configuration, for
    /// `attic check`. Passwords are shown only as `(set)` or `(none)`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("data folder:      {}", self.data_folder.display()));
        line(format!(
            "log level:        {}",
            self.log_level.as_str().to_lowercase()
        ));
        line(format!("feedback period:  {:?}", self.feedback_period));
        line(format!(
            "metrics file:     {}",
            self.metrics_file
                .as_ref()
                .map_or("(none)".to_owned(), |p| p.display().to_string())
        ));
        line(format!("streams:          {}", self.streams.len()));
        for (i, s) in self.streams.iter().enumerate() {
            line(format!("  streams[{i}]: {}", s.folder_name));
            line(format!(
                "    folder:         {}",
                self.data_folder.join(&s.folder_name).display()
            ));
            describe_broker(&mut line, &s.broker);
            line(format!("    topics:         {}", s.topics.join(", ")));
            line(format!(
                "    exclude:        {}",
                if s.exclude.is_empty() {
                    "(none)".to_owned()
                } else {
                    s.exclude.join(", ")
                }
            ));
            if s.filters.is_empty() {
                line("    filters:        (none)".to_owned());
            } else {
                line("    filters:".to_owned());
                for spec in &s.filters {
                    line(format!(
                        "      - {}: {}",
                        spec.name,
                        describe_value(&spec.options)
                    ));
                }
            }
            line(format!("    qos:            {}", s.qos));
            line(format!("    rotation:       {:?}", s.rotation));
            line(format!("    commit within:  {:?}", s.commit_interval));
            line(format!("    coalesce reads: {:?}", s.coalesce));
            line(format!("    max payload:    {} bytes", s.max_payload_bytes));
            line(format!(
                "    durability:     {}",
                match s.durability {
                    Durability::Normal => "normal",
                    Durability::PowerSafe => "power-safe",
                }
            ));
            if !s.broker.clean_session && s.qos == 0 {
                line(
                    "    note: clean-session is false but qos is 0; brokers queue nothing \
                     for QoS 0 subscriptions while Attic is away"
                        .to_owned(),
                );
            }
        }
        match &self.performance {
            None => line("performance report: off".to_owned()),
            Some(p) => {
                line("performance report:".to_owned());
                line(format!("    topic:          {}", p.topic));
                line(format!("    qos:            {}", p.qos));
                describe_broker(&mut line, &p.broker);
            }
        }
        out
    }
}

/// A filter's options on one line, YAML flow style.
fn describe_value(v: &filter::Value) -> String {
    use filter::Value;
    match v {
        Value::Null => "{}".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(describe_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", describe_value(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

fn describe_broker(line: &mut impl FnMut(String), b: &BrokerConfig) {
    line(format!("    broker:         {}:{}", b.host, b.port));
    line(format!(
        "    user:           {}",
        b.user.as_deref().unwrap_or("(anonymous)")
    ));
    line(format!(
        "    password:       {}",
        if b.password.is_some() {
            "(set)"
        } else {
            "(none)"
        }
    ));
    line(format!("    client id:      {}", b.client_id));
    line(format!("    clean session:  {}", b.clean_session));
    line(format!("    keep alive:     {:?}", b.keep_alive));
    tls::describe(line, b.tls.as_ref());
}

#[cfg(test)]
mod tests;
