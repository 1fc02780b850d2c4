//! The `attic` binary: command line, logging set-up and exit codes. All the
//! work is in the library (`attic::app::run`).

use attic::cli;
use attic::config::DEFAULT_CONFIG_PATH;
use attic::run_options::RunOptions;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
attic: logs everything that happens on an MQTT broker into time-rotated SQLite files

usage:
  attic [run] [--config FILE]     run the service (default FILE: config/config.yaml)
        [--ready-file FILE]       write FILE (JSON) once every stream is subscribed; removed at exit
        [--stop-after DURATION]   stop gracefully after 500ms, 90s, 2m, 1h, ...
        [--stop-after-messages N] stop gracefully once N messages are stored
        [--summary FILE|-]        write a JSON summary at exit (- = stdout)
  attic check [--config FILE]     validate the configuration, print the resolved streams
  attic export [--config FILE] [SELECTION] [--format jsonl|csv|sqlite|parquet]
               [--output FILE | --output-dir DIR] [--decode json|avro] [--field NAME=POINTER]...
                                  stored rows in reception order (attic export --help)
  attic replay [--config FILE] [SELECTION] --broker HOST[:PORT] [--speed X] ...
                                  publish stored rows to a broker (attic replay --help)
  attic --help | --version

exit codes: 0 clean stop, 78 bad configuration, 1 other start-up failure, 2 bad arguments
signals: SIGINT/SIGTERM stop gracefully (a second one exits at once),
         SIGHUP closes the current files and starts new ones";

#[derive(Debug, PartialEq)]
enum Command {
    Run(PathBuf, RunOptions),
    Check(PathBuf),
    Help,
    Version,
}

/// A bad command line; `usage`: whether the usage text helps (not for a
/// bad value of a known flag, which is one clear line).
#[derive(Debug, PartialEq)]
struct ArgError {
    message: String,
    usage: bool,
}

impl From<String> for ArgError {
    fn from(message: String) -> Self {
        ArgError {
            message,
            usage: true,
        }
    }
}

fn parse_args(args: &[String]) -> Result<Command, ArgError> {
    let mut sub: Option<&str> = None;
    let mut config: Option<PathBuf> = None;
    let mut opts = RunOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => match it.next() {
                Some(f) => config = Some(PathBuf::from(f)),
                None => return Err(format!("{a} needs a file name").into()),
            },
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "run" | "check" if sub.is_none() => {
                sub = Some(if a == "run" { "run" } else { "check" })
            }
            other => {
                let ours = opts.accept(other, &mut it).map_err(|message| ArgError {
                    message,
                    usage: false,
                })?;
                if !ours {
                    return Err(unexpected(other));
                }
            }
        }
    }
    let config = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    Ok(match sub {
        Some("check") if !opts.is_empty() => {
            return Err(ArgError {
                message: "--ready-file, --stop-after, --stop-after-messages and --summary \
                          belong to `attic run`, not `attic check`"
                    .into(),
                usage: false,
            });
        }
        Some("check") => Command::Check(config),
        _ => Command::Run(config, opts),
    })
}

/// `attic check` of a config that loaded: what `attic run` would meet on
/// this machine (an error = exit 1, as run would), then the streams.
fn check(path: &std::path::Path, c: &attic::config::Config) -> ExitCode {
    use attic::app::preflight::{self, Finding};
    let findings = preflight::check(c);
    let mut errors = 0;
    for f in &findings {
        match f {
            Finding::Error(e) => {
                errors += 1;
                eprintln!("attic: {}: {e}", path.display());
            }
            Finding::Warning(w) => eprintln!("attic: {}: warning: {w}", path.display()),
        }
    }
    if errors > 0 {
        return ExitCode::from(1);
    }
    cli::print_out(&format!("{}: OK\n{}", path.display(), c.describe()))
}

/// An argument that is no flag and no subcommand. A file name (it ends in
/// `.yaml`/`.yml` or names a file) was most likely meant as the config.
fn unexpected(arg: &str) -> ArgError {
    let looks_like_config = !arg.starts_with('-')
        && (arg.ends_with(".yaml") || arg.ends_with(".yml") || std::path::Path::new(arg).is_file());
    if looks_like_config {
        ArgError {
            message: format!(
                "unexpected argument {arg:?}: a configuration file is given with --config {arg}"
            ),
            usage: false,
        }
    } else {
        format!("unexpected argument {arg:?}").into()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("export") => return attic::export::cli::main(&args[1..]),
        Some("replay") => return attic::replay::cli::main(&args[1..]),
        _ => {}
    }
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) if e.usage => {
            return cli::usage_error("attic", &format!("{}\n\n{USAGE}", e.message));
        }
        Err(e) => return cli::usage_error("attic", &e.message),
    };
    match cmd {
        Command::Help => cli::print_out(USAGE),
        Command::Version => cli::print_out(&format!("attic {}", env!("CARGO_PKG_VERSION"))),
        Command::Check(path) => match cli::load_config(&path) {
            Ok(c) => check(&path, &c),
            Err(code) => code,
        },
        Command::Run(path, opts) => {
            let config = match cli::load_config(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            attic::logging::init(config.log_level);
            match attic::app::run_with(&config, &opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One line: the log line when logging is on (it goes to
                    // stderr, or to the journal with its priority), else a
                    // plain one.
                    if log::log_enabled!(log::Level::Error) {
                        log::error!("{e}");
                    } else {
                        eprintln!("attic: {e}");
                    }
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgError> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn no_arguments_runs_with_the_default_config() {
        assert_eq!(
            p(&[]),
            Ok(Command::Run(
                PathBuf::from("config/config.yaml"),
                RunOptions::default()
            ))
        );
    }

    #[test]
    fn run_and_check_take_a_config_file() {
        assert_eq!(
            p(&["run", "--config", "a.yaml"]),
            Ok(Command::Run("a.yaml".into(), RunOptions::default()))
        );
        assert_eq!(
            p(&["check", "-c", "b.yaml"]),
            Ok(Command::Check("b.yaml".into()))
        );
        assert_eq!(
            p(&["--config=c.yaml"]),
            Ok(Command::Run("c.yaml".into(), RunOptions::default()))
        );
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--config"]).is_err());
    }

    #[test]
    fn run_takes_the_scripting_options_in_any_order() {
        let Ok(Command::Run(config, opts)) = p(&[
            "--stop-after-messages",
            "10",
            "run",
            "--summary",
            "-",
            "--config",
            "a.yaml",
            "--stop-after=2m",
            "--ready-file",
            "r.json",
        ]) else {
            panic!("not a run command");
        };
        assert_eq!(config, PathBuf::from("a.yaml"));
        assert_eq!(opts.stop_after_messages, Some(10));
        assert_eq!(opts.stop_after, Some(std::time::Duration::from_secs(120)));
        assert_eq!(opts.ready_file, Some(PathBuf::from("r.json")));
        assert!(opts.summary.is_some());
    }

    #[test]
    fn a_bad_value_is_one_line_without_the_usage_text() {
        let e = p(&["run", "--stop-after", "10"]).unwrap_err();
        assert!(!e.usage);
        assert!(
            e.message.starts_with("--stop-after \"10\""),
            "{}",
            e.message
        );
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn a_config_file_given_without_the_flag_is_one_line_naming_the_flag() {
        let e = p(&["check", "record.yaml"]).unwrap_err();
        assert!(!e.usage);
        assert!(e.message.contains("--config record.yaml"), "{}", e.message);
        assert!(p(&["frobnicate"]).unwrap_err().usage);
    }

    #[test]
    fn check_refuses_the_scripting_options() {
        let e = p(&["check", "--ready-file", "r.json"]).unwrap_err();
        assert!(e.message.contains("attic run"), "{}", e.message);
    }
}
