//! The sections of a config file: top level, streams, their filters, the
//! performance stream and broker logins, with their keys and defaults.
//!
//! Owns: the key lists, the defaults and the cross-section checks (unique
//! folders and client ids). Must not: touch the network or open databases;
//! reading a `password-file` is its only file access.

use super::bounds;
use super::checker::{Checker, Fields};
use super::yaml::Yaml;
use super::{
    BrokerConfig, Config, Durability, PerformanceConfig, Seg, StreamConfig, child, key, path_string,
};
use crate::mqtt::identity;
use crate::mqtt::topic::mqtt_string_problem;
use std::path::Path;
use std::time::Duration;

pub(super) const TOP_KEYS: &[&str] = &[
    "data-folder",
    "console-feedback-period-seconds",
    "streams",
    "log-performance",
    "log-performance-stream",
    "log-level",
    "metrics-file",
    "retention",
    "on-finish",
];

pub(super) const STREAM_KEYS: &[&str] = &[
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
    "mqtt-version",
    "session-expiry-seconds",
    "topic-alias-maximum",
    "tls",
    "retention",
    "on-finish",
];

pub(super) const PERFORMANCE_KEYS: &[&str] = &[
    "topic",
    "mqtt-broker-address",
    "mqtt-broker-port",
    "user",
    "password",
    "password-file",
    "client-id",
    "keep-alive-seconds",
    "qos",
    "mqtt-version",
    "tls",
];

pub(super) const DEFAULT_FEEDBACK_SECONDS: u64 = 3;
pub(super) const DEFAULT_HOST: &str = "127.0.0.1";
pub(super) const DEFAULT_PORT: u16 = 1883;
pub(super) const DEFAULT_ROTATION_SECONDS: u64 = 300;
pub(super) const DEFAULT_KEEP_ALIVE_SECONDS: u64 = 30;
pub(super) const DEFAULT_COMMIT_MS: u64 = 1000;
/// Default `coalesce-ms`: at most this much later reception timestamps at
/// low rates, for several times fewer wake-ups (see README, Performance).
pub(super) const DEFAULT_COALESCE_MS: u64 = 50;
/// Largest `coalesce-ms` (longer would delay keep-alive handling).
pub(super) const MAX_COALESCE_MS: u64 = 1000;
pub(super) const DEFAULT_MAX_PAYLOAD: u64 = 16 * 1024 * 1024;
/// The largest payload MQTT's remaining-length field can describe.
pub(super) const MAX_PAYLOAD_LIMIT: u64 = 268_435_455;
/// Upper bound for second/millisecond counts, so later arithmetic on
/// deadlines cannot overflow.
pub(super) const MAX_COUNT: u64 = u32::MAX as u64;

impl Checker<'_> {
    pub(super) fn config(&mut self, root: &Yaml) -> Option<Config> {
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
        if let Some(folder) = &data_folder {
            self.tag = identity::instance_tag(folder);
        }
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
        let retention = self.top_retention(&top);
        let on_finish = self.top_on_finish(&top);

        let mut streams = Vec::new();
        match top.get("streams") {
            None => self.missing(&top, "streams", ""),
            Some(Yaml::List(items)) if items.is_empty() => {
                self.report(&top.at("streams"), "needs at least one stream".to_owned());
            }
            Some(Yaml::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = child(&top.at("streams"), Seg::Index(i));
                    if let Some(mut stream) = self.stream(item, &path) {
                        stream.retention = self.stream_retention(item, &path, &retention);
                        stream.on_finish = self.stream_on_finish(item, &path, on_finish.as_ref());
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
            min_free_bytes: retention.min_free_bytes,
        })
    }

    /// `console-feedback-period-seconds`: a number of seconds > 0.
    pub(super) fn feedback_period(&mut self, top: &Fields) -> Duration {
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
        match (
            bounds::feedback_problem(seconds),
            Duration::try_from_secs_f64(seconds),
        ) {
            (None, Ok(d)) => d,
            (why, _) => {
                let why = why.unwrap_or_else(|| format!("is not a duration: {seconds}"));
                self.report(&top.at(k), why);
                default
            }
        }
    }

    pub(super) fn stream(&mut self, value: &Yaml, path: &[Seg]) -> Option<StreamConfig> {
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
        let now = std::time::SystemTime::now();
        if let Some(why) = crate::layout::wall_deadline_problem_at(rotation, now) {
            self.report(&f.at("file-rotation-time-seconds"), why);
        }
        let qos = self.qos(&f);
        let commit_ms = self
            .integer(&f, "commit-interval-ms", bounds::MIN_COMMIT_MS, MAX_COUNT)
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
        let default_id = identity::default_client_id(self.host, &folder_name, &self.tag);
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
            retention: Default::default(),
            on_finish: None,
        })
    }

    /// The key a folder-name problem is reported on, and where it points.
    pub(super) fn folder_key(f: &Fields) -> (Vec<Seg>, Vec<Seg>) {
        let at = if f.get("prefix").is_some() {
            f.at("prefix")
        } else if f.get("suffix").is_some() {
            f.at("suffix")
        } else {
            f.path.clone()
        };
        (f.at("prefix"), at)
    }

    pub(super) fn performance(
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
        let default_id = identity::default_client_id(self.host, "performance", &self.tag);
        let broker = self.broker(&f, default_id, enabled);
        Some(PerformanceConfig {
            broker,
            topic: topic.unwrap_or_default(),
            qos,
        })
    }

    /// The broker keys shared by streams and `log-performance-stream`.
    /// `password-file` is read only when `read_secrets` is set.
    pub(super) fn broker(
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
        let port = self
            .integer(f, "mqtt-broker-port", 1, 65_535)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(super::tls::default_port(tls.as_ref(), DEFAULT_PORT));
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
            mqtt5: self.mqtt5(f, clean_session),
            tls,
        }
    }

    /// Reads a password file (relative to the config's folder), without its
    /// trailing line end.
    pub(super) fn read_password_file(&mut self, f: &Fields, file: &Path) -> Option<String> {
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
    pub(super) fn check_unique(
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
pub(super) fn folder_problem(name: &str) -> Option<&'static str> {
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
