//! The options of `attic run` for scripts and benchmark harnesses:
//! `--ready-file`, `--stop-after`, `--stop-after-messages`, `--summary`.
//!
//! It owns their parsing and validation (one clear message per bad value)
//! and nothing else: it does no I/O, and what the options *do* lives in
//! `harness` (ready file, stop conditions) and `summary` (the JSON at exit).

use std::path::PathBuf;
use std::time::Duration;

/// Where `--summary` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryTarget {
    /// `--summary -`: standard output (Attic's log lines go to stderr).
    Stdout,
    /// `--summary FILE`: written atomically (temporary file + rename).
    File(PathBuf),
}

/// The scripting options of `attic run`; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--ready-file`: written once every stream's first subscription is
    /// acknowledged, removed at exit.
    pub ready_file: Option<PathBuf>,
    /// `--stop-after`: graceful stop this long after start-up.
    pub stop_after: Option<Duration>,
    /// `--stop-after-messages`: graceful stop once this many messages are
    /// stored, all streams together.
    pub stop_after_messages: Option<u64>,
    /// `--summary`: the JSON summary at exit.
    pub summary: Option<SummaryTarget>,
}

/// The flags [`RunOptions::accept`] knows, for error messages.
pub const FLAGS: [&str; 4] = [
    "--ready-file",
    "--stop-after",
    "--stop-after-messages",
    "--summary",
];

impl RunOptions {
    /// True when no option is set (plain `attic run`).
    pub fn is_empty(&self) -> bool {
        *self == RunOptions::default()
    }

    /// Takes `arg` if it is one of [`FLAGS`], as `--flag VALUE` (the value
    /// taken from `rest`) or `--flag=VALUE`. `Ok(false)`: not one of ours.
    /// An error is one line naming the flag and what is wrong.
    pub fn accept<'a>(
        &mut self,
        arg: &str,
        rest: &mut impl Iterator<Item = &'a String>,
    ) -> Result<bool, String> {
        let (flag, inline) = crate::cli::split_flag(arg);
        if !FLAGS.contains(&flag) {
            return Ok(false);
        }
        let value = crate::cli::flag_value(flag, inline, &mut rest.cloned(), "a value")?;
        let already = match flag {
            "--ready-file" => self.ready_file.is_some(),
            "--stop-after" => self.stop_after.is_some(),
            "--stop-after-messages" => self.stop_after_messages.is_some(),
            _ => self.summary.is_some(),
        };
        if already {
            return Err(format!("{flag} is given twice"));
        }
        match flag {
            "--ready-file" => self.ready_file = Some(file_name(flag, &value)?),
            "--stop-after" => {
                self.stop_after =
                    Some(parse_duration(&value).map_err(|why| format!("{flag} {value:?}: {why}"))?)
            }
            "--stop-after-messages" => {
                self.stop_after_messages =
                    Some(parse_count(&value).map_err(|why| format!("{flag} {value:?}: {why}"))?)
            }
            _ => {
                self.summary = Some(if value == "-" {
                    SummaryTarget::Stdout
                } else {
                    SummaryTarget::File(file_name(flag, &value)?)
                })
            }
        }
        Ok(true)
    }
}

fn file_name(flag: &str, value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(format!("{flag} needs a file name, not an empty string"));
    }
    if value.ends_with('/') {
        return Err(format!("{flag} {value:?}: a file name, not a folder"));
    }
    Ok(PathBuf::from(value))
}

/// A positive whole number of messages (`_` separators allowed: `200_000`).
pub fn parse_count(text: &str) -> Result<u64, String> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a whole number of messages".into());
    }
    match digits.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("too large".into()),
    }
}

/// A positive duration: a number (fractions allowed) and a unit, `ms`,
/// `s`, `m`, `h` or `d`, with nothing between them: `500ms`, `90s`, `2m`,
/// `1.5h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const HELP: &str = "not a duration (examples: 500ms, 90s, 2m, 1h)";
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_s = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "" if !number.is_empty() => {
            return Err(format!("needs a unit ({number}s, {number}ms, ...)"));
        }
        _ => return Err(HELP.into()),
    };
    let valid_number = !number.is_empty()
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    let value: f64 = match number.parse() {
        Ok(v) if valid_number => v,
        _ => return Err(HELP.into()),
    };
    let d = Duration::try_from_secs_f64(value * unit_s).map_err(|_| "too long".to_owned())?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept_all(args: &[&str]) -> Result<RunOptions, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut opts = RunOptions::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if !opts.accept(a, &mut it)? {
                return Err(format!("not ours: {a}"));
            }
        }
        Ok(opts)
    }

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn durations_may_have_a_fraction() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25m"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn a_duration_without_a_unit_is_refused_with_a_hint() {
        let e = parse_duration("90").unwrap_err();
        assert!(e.contains("90s"), "{e}");
    }

    #[test]
    fn malformed_or_zero_durations_are_refused() {
        for bad in [
            "", "s", "ms", "-1s", "1x", "1 s", "1.2.3s", ".s", "1sec", "90S", "0s", "0ms", "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_absurdly_long_duration_is_refused() {
        assert!(parse_duration("99999999999999999999999d").is_err());
    }

    #[test]
    fn message_counts_are_positive_whole_numbers() {
        assert_eq!(parse_count("200000"), Ok(200_000));
        assert_eq!(parse_count("200_000"), Ok(200_000));
        for bad in ["", "0", "-5", "1.5", "ten", "99999999999999999999999"] {
            assert!(parse_count(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_flag_takes_a_separate_or_an_inline_value() {
        let o = accept_all(&[
            "--ready-file",
            "r.json",
            "--stop-after=2m",
            "--stop-after-messages",
            "1000",
            "--summary=-",
        ])
        .unwrap();
        assert_eq!(
            o,
            RunOptions {
                ready_file: Some("r.json".into()),
                stop_after: Some(Duration::from_secs(120)),
                stop_after_messages: Some(1000),
                summary: Some(SummaryTarget::Stdout),
            }
        );
        let o = accept_all(&["--summary", "s.json"]).unwrap();
        assert_eq!(o.summary, Some(SummaryTarget::File("s.json".into())));
    }

    #[test]
    fn other_arguments_are_left_alone() {
        let mut o = RunOptions::default();
        let none: Vec<String> = Vec::new();
        assert_eq!(o.accept("--config", &mut none.iter()), Ok(false));
        assert_eq!(o.accept("--stop", &mut none.iter()), Ok(false));
        assert!(o.is_empty());
    }

    #[test]
    fn bad_values_name_the_flag_and_the_value_on_one_line() {
        for (args, expect) in [
            (&["--stop-after", "soon"][..], "--stop-after \"soon\""),
            (
                &["--stop-after-messages", "0"][..],
                "--stop-after-messages \"0\"",
            ),
            (&["--ready-file"][..], "--ready-file needs a value"),
            (&["--summary="][..], "--summary needs a file name"),
            (&["--ready-file", "out/"][..], "not a folder"),
            (
                &["--stop-after", "1s", "--stop-after", "2s"][..],
                "--stop-after is given twice",
            ),
        ] {
            let e = accept_all(args).unwrap_err();
            assert!(e.contains(expect), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: {e}");
        }
    }
}
