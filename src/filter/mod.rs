//! The filter pipeline between a stream's session and its writer.
//!
//! Owns: the [`Filter`] trait, the [`Chain`] that runs a stream's filters in
//! order and counts what each one drops, and the registry that maps a name
//! in `filters:` to a filter's `build` function. Must not: read the YAML
//! itself (`config` hands over an [`options::Value`]), read a clock (time
//! comes in with each message and with [`Filter::tick`]), or touch sockets
//! and files.
//!
//! ```text
//!  session --Message--> [exclude] -> [filter 1] -> ... -> [filter n] --> writer
//!                          | drop        | drop               | drop
//!                          +-------------+--------------------+--> counted per filter
//! ```
//!
//! Adding a filter: write `src/filter/<name>.rs` with a type implementing
//! [`Filter`] and a `pub fn build(options: &mut Options) -> Option<Box<dyn
//! Filter>>`, then add one line to the `builtins!` list below.

pub mod options;
pub mod state;

pub use options::{OptionProblem, Options, Value};

use crate::message::Message;

/// What a filter decides about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the message on (possibly rewritten in place) to the next filter.
    Keep,
    /// Do not store the message; the chain counts it for this filter. Its
    /// QoS 1/2 acknowledgement is still sent after the next commit.
    Drop,
}

/// One stage of the pipeline.
///
/// `check` sees every message in arrival order with its topic, payload,
/// QoS, retain flag and reception time (`msg.timestamp_us`, unix µs; use it
/// as "now"). To rewrite, change `msg` and return [`Verdict::Keep`]. State
/// kept per topic must be bounded (see [`state::TopicTable`]).
///
/// ```
/// use attic::filter::{Filter, Verdict};
/// use attic::message::Message;
///
/// /// Drops messages with an empty payload.
/// struct DropEmpty;
///
/// impl Filter for DropEmpty {
///     fn check(&mut self, msg: &mut Message) -> Verdict {
///         if msg.payload.is_empty() { Verdict::Drop } else { Verdict::Keep }
///     }
/// }
/// ```
pub trait Filter {
    /// Decides about one message; may rewrite it in place.
    fn check(&mut self, msg: &mut Message) -> Verdict;

    /// True if [`Filter::tick`] should be called (about once a second).
    fn wants_ticks(&self) -> bool {
        false
    }

    /// Time-based work such as expiring per-topic state; `now_us` is unix µs.
    fn tick(&mut self, _now_us: i64) {}
}

/// A filter's constructor: reads its options (recording any problem in
/// them) and returns the filter, or `None` if the options are unusable.
pub type Build = fn(&mut Options) -> Option<Box<dyn Filter>>;

/// Declares the built-in filters: `"yaml-name" => module,` per line. Each
/// module is `src/filter/<module>.rs` and has a `build` function.
macro_rules! builtins {
    ($($name:literal => $module:ident,)*) => {
        $(pub mod $module;)*
        /// The built-in filters: YAML name and constructor.
        pub const BUILTINS: &[(&str, Build)] = &[$(($name, $module::build),)*];
    };
}

builtins! {
    "exclude" => exclude,
    "include" => include,
    "changes-only" => changes_only,
    "min-interval" => min_interval,
    "max-payload-bytes" => max_payload,
}

/// One entry of a stream's `filters:` list: a registered name and its
/// options, checked by `config`, built by [`Registry::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The filter's name, e.g. `changes-only`.
    pub name: String,
    /// What follows the name in the YAML.
    pub options: Value,
}

impl Spec {
    /// A spec for `name` with these options.
    pub fn new(name: &str, options: Value) -> Self {
        Spec {
            name: name.to_owned(),
            options,
        }
    }
}

/// Maps filter names to constructors.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<(&'static str, Build)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// The built-in filters.
    pub fn builtin() -> Self {
        Registry {
            entries: BUILTINS.to_vec(),
        }
    }

    /// Adds (or replaces) a filter under `name`.
    pub fn with(mut self, name: &'static str, build: Build) -> Self {
        self.entries.retain(|(n, _)| *n != name);
        self.entries.push((name, build));
        self
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(n, _)| *n).collect()
    }

    /// True if a filter is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| *n == name)
    }

    /// Builds the filter `spec` names. `Err` lists every problem in its
    /// options (an unknown name is one problem at the entry).
    pub fn build(&self, spec: &Spec) -> Result<Box<dyn Filter>, Vec<OptionProblem>> {
        let Some((_, build)) = self.entries.iter().find(|(n, _)| *n == spec.name) else {
            return Err(vec![OptionProblem {
                path: Vec::new(),
                message: format!("unknown filter `{}`", spec.name),
            }]);
        };
        let mut options = Options::new(&spec.options);
        let filter = build(&mut options);
        let problems = options.finish();
        match filter {
            Some(f) if problems.is_empty() => Ok(f),
            _ if problems.is_empty() => Err(vec![OptionProblem {
                path: Vec::new(),
                message: "invalid options".to_owned(),
            }]),
            _ => Err(problems),
        }
    }
}

struct Stage {
    /// Unique within the chain: the filter's name, `#2`, `#3`... on repeats.
    name: String,
    filter: Box<dyn Filter>,
    dropped: u64,
}

/// A stream's filters, run in order, with a drop counter per filter.
#[derive(Default)]
pub struct Chain {
    stages: Vec<Stage>,
    /// Some stage wants [`Filter::tick`].
    ticks: bool,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.dropped()).finish()
    }
}

impl Chain {
    /// An empty chain: keeps everything.
    pub fn new() -> Self {
        Chain::default()
    }

    /// Builds the chain for `specs`, in order.
    pub fn build(specs: &[Spec], registry: &Registry) -> Result<Chain, Vec<OptionProblem>> {
        let mut chain = Chain::new();
        for spec in specs {
            chain.push(&spec.name, registry.build(spec)?);
        }
        Ok(chain)
    }

    /// Appends `filter` under `name` (made unique with `#2`, `#3`...).
    pub fn push(&mut self, name: &str, filter: Box<dyn Filter>) {
        let mut unique = name.to_owned();
        let mut n = 1;
        while self.stages.iter().any(|s| s.name == unique) {
            n += 1;
            unique = format!("{name}#{n}");
        }
        self.ticks |= filter.wants_ticks();
        self.stages.push(Stage {
            name: unique,
            filter,
            dropped: 0,
        });
    }

    /// Runs `msg` through every filter until one drops it.
    pub fn check(&mut self, msg: &mut Message) -> Verdict {
        for stage in &mut self.stages {
            if stage.filter.check(msg) == Verdict::Drop {
                stage.dropped += 1;
                return Verdict::Drop;
            }
        }
        Verdict::Keep
    }

    /// True if some filter wants [`Chain::tick`] about once a second.
    pub fn wants_ticks(&self) -> bool {
        self.ticks
    }

    /// Passes the time on to every filter.
    pub fn tick(&mut self, now_us: i64) {
        for stage in &mut self.stages {
            stage.filter.tick(now_us);
        }
    }

    /// Messages dropped by each filter since start, in chain order.
    pub fn dropped(&self) -> impl Iterator<Item = (&str, u64)> {
        self.stages.iter().map(|s| (s.name.as_str(), s.dropped))
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// No filters.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}

/// A message for filter tests: `topic`, `payload`, at `ts` unix µs, QoS 0.
#[cfg(test)]
pub(crate) fn msg(topic: &str, payload: &[u8], ts: i64) -> Message {
    Message {
        timestamp_us: ts,
        topic: topic.to_owned(),
        payload: bytes::Bytes::copy_from_slice(payload),
        qos: 0,
        retain: false,
        properties: None,
    }
}

#[cfg(test)]
mod tests;
