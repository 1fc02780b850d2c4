//! What every subcommand (`run`, `check`, `export`, `replay`) shares on the
//! command line: the exit codes, the two spellings of a flag's value
//! (`--x value` and `--x=value`), "load the config or exit 78", usage
//! errors (one line, exit 2) and printing to stdout that treats a closed
//! pipe (`attic --help | head -1`) as the normal end it is.
//!
//! It parses no subcommand's flags and runs nothing; it never logs (logging
//! may not be set up yet when it speaks).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config, DEFAULT_CONFIG_PATH};

/// Exit code of a bad configuration (`EX_CONFIG` of sysexits.h).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code of bad command-line arguments.
pub const EXIT_USAGE: u8 = 2;

/// Splits `--name=value` into its name and inline value; any other
/// argument (`--name`, `-c`, a plain word) has no inline value.
pub fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((name, value)) if name.starts_with("--") => (name, Some(value)),
        _ => (arg, None),
    }
}

/// The value of flag `name`: its inline value (`--name=value`), else the
/// next argument (`--name value`); without either, one line saying that
/// `name` needs `what`.
pub fn flag_value(
    name: &str,
    inline: Option<&str>,
    next: &mut dyn Iterator<Item = String>,
    what: &str,
) -> Result<String, String> {
    match inline {
        Some(v) => Ok(v.to_owned()),
        None => next.next().ok_or_else(|| format!("{name} needs {what}")),
    }
}

/// Writes `text` and a newline to stdout. A reader that closed the pipe
/// early ends the command quietly with success; any other write error is
/// one line on stderr and exit 1.
pub fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attic: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// A usage error of `command` (`"attic export"`, ...): one line on stderr,
/// exit 2.
pub fn usage_error(command: &str, message: &str) -> ExitCode {
    eprintln!("{command}: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Loads and validates the configuration at `path`, or prints every
/// problem (one per line) and returns exit 78. When `path` is the default
/// and does not exist, says how to give another one.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("attic: {line}");
        }
        if let Some(hint) = missing_default_hint(path) {
            eprintln!("attic: {hint}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The hint for a missing default config file, if `path` is that.
fn missing_default_hint(path: &Path) -> Option<String> {
    (path == Path::new(DEFAULT_CONFIG_PATH) && !path.exists()).then(|| {
        format!(
            "{DEFAULT_CONFIG_PATH} is the default configuration file; \
             give another one with --config FILE (for example --config config.example.yaml)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_takes_its_value_inline_or_as_the_next_argument() {
        assert_eq!(split_flag("--from=-2h"), ("--from", Some("-2h")));
        assert_eq!(split_flag("--from"), ("--from", None));
        assert_eq!(split_flag("-c=x"), ("-c=x", None));
        assert_eq!(split_flag("a=b"), ("a=b", None));
        let mut rest = vec!["next".to_owned()].into_iter();
        assert_eq!(
            flag_value("--x", Some("in"), &mut rest, "v"),
            Ok("in".into())
        );
        assert_eq!(flag_value("--x", None, &mut rest, "v"), Ok("next".into()));
        assert_eq!(
            flag_value("--x", None, &mut rest, "a value"),
            Err("--x needs a value".into())
        );
    }

    #[test]
    fn a_missing_default_config_names_the_flag_to_give_another_one() {
        // Tests run in the package root, where config/config.yaml is absent.
        let hint = missing_default_hint(Path::new(DEFAULT_CONFIG_PATH)).unwrap();
        assert!(hint.contains("--config FILE"), "{hint}");
        assert_eq!(missing_default_hint(Path::new("other.yaml")), None);
    }
}
