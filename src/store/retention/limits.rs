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
            let days = format!("{} days", trim_float(d.as_secs_f64() / 86_400.0));
            // Less than a day also in the unit a person would use.
            match d.as_secs_f64() {
                s if s < 60.0 => format!("{days} ({} s)", trim_float(s)),
                s if s < 3_600.0 => format!("{days} ({} min)", trim_float(s / 60.0)),
                s if s < 86_400.0 => format!("{days} ({} h)", trim_float(s / 3_600.0)),
                _ => days,
            }
        });
        let size = self.max_size_bytes.map_or("unlimited".to_owned(), |b| {
            format!("{} MB", trim_float(b as f64 / MB))
        });
        format!("max-age-days {age}, max-size-mb {size}")
    }
}

/// `1.5` stays `1.5`, `30.0` becomes `30`, `0.0001` stays `0.0001` (never
/// rounded to a misleading 0).
fn trim_float(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_age_is_not_shown_as_zero_days() {
        let l = Limits {
            max_age: Some(Duration::from_secs_f64(0.0001 * 86_400.0)),
            max_size_bytes: None,
        };
        assert_eq!(
            l.describe(),
            "max-age-days 0.0001 days (8.64 s), max-size-mb unlimited"
        );
        let l = Limits {
            max_age: Some(Duration::from_secs(36 * 3_600)),
            max_size_bytes: Some(1_572_864),
        };
        assert_eq!(l.describe(), "max-age-days 1.5 days, max-size-mb 1.5 MB");
    }
}
