//! A stream's retention limits, as resolved from the config (`config`
//! parses and checks them; this module only holds and shows them).

use std::time::Duration;

/// Bytes in one MB as `retention` counts them (MiB, as `du -m`, `df -m`).
pub const MB: f64 = 1_048_576.0;

/// A stream's resolved retention limits. Both `None` = keep everything
/// (unless the top-level `min-free-mb` needs room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `max-age-days`: finished files created longer ago than this go.
    pub max_age: Option<Duration>,
    /// `max-size-mb`, in bytes: the stream's oldest finished files go until
    /// its finished files take at most this much.
    pub max_size_bytes: Option<u64>,
}

impl Limits {
    /// The limits in the words of the config file, for `attic check`.
    pub fn describe(&self) -> String {
        let age = self.max_age.map_or("unlimited".to_owned(), |d| {
            format!("{} days", trim_float(d.as_secs_f64() / 86_400.0))
        });
        let size = self.max_size_bytes.map_or("unlimited".to_owned(), |b| {
            format!("{} MB", trim_float(b as f64 / MB))
        });
        format!("max-age-days {age}, max-size-mb {size}")
    }
}

/// `1.5` stays `1.5`, `30.0` becomes `30`.
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
