//! The summary `attic check` prints: the resolved configuration, one
//! line per setting, passwords shown only as `(set)` or `(none)`.
//!
//! Owns: [`Config::describe`]. Must not: validate (that is done before).

use super::{BrokerConfig, Config, Durability};
use crate::filter;

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
        line(format!(
            "min free space:   {}",
            self.min_free_bytes.map_or("(none)".to_owned(), |b| format!(
                "{} MB (retention.min-free-mb)",
                b / 1_048_576
            ))
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
            line(format!("    retention:      {}", s.retention.describe()));
            line(format!(
                "    on-finish:      {}",
                super::OnFinish::describe(s.on_finish.as_ref())
            ));
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
    line(super::mqtt5::describe(b));
    super::tls::describe(line, b.tls.as_ref());
}
