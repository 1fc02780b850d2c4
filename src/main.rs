//! The `attic` binary: command line, logging set-up and exit codes. All the
//! work is in the library (`attic::app::run`).

use attic::config::{self, Config, DEFAULT_CONFIG_PATH};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
attic: logs everything that happens on an MQTT broker into time-rotated SQLite files

usage:
  attic [run] [--config FILE]     run the service (default FILE: config/config.yaml)
  attic check [--config FILE]     validate the configuration, print the resolved streams
  attic export [--config FILE] [SELECTION] [--format jsonl|csv|sqlite] [--output FILE]
                                  stored rows in reception order (attic export --help)
  attic --help | --version

exit codes: 0 clean stop, 78 bad configuration, 1 other start-up failure
signals: SIGINT/SIGTERM stop gracefully (a second one exits at once),
         SIGHUP closes the current files and starts new ones";

#[derive(Debug, PartialEq)]
enum Command {
    Run(PathBuf),
    Check(PathBuf),
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut sub: Option<&str> = None;
    let mut config: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => match it.next() {
                Some(f) => config = Some(PathBuf::from(f)),
                None => return Err(format!("{a} needs a file name")),
            },
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]))
            }
            "run" | "check" if sub.is_none() => {
                sub = Some(if a == "run" { "run" } else { "check" })
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let config = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    Ok(match sub {
        Some("check") => Command::Check(config),
        _ => Command::Run(config),
    })
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("attic: {line}");
        }
        ExitCode::from(78)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "export") {
        return attic::export::cli::main(&args[1..]);
    }
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("attic: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("attic {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check(path) => match load(&path) {
            Ok(c) => {
                println!("{}: OK\n{}", path.display(), c.describe());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run(path) => {
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            attic::logging::init(config.log_level);
            match attic::app::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e}");
                    eprintln!("attic: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn no_arguments_runs_with_the_default_config() {
        assert_eq!(
            p(&[]),
            Ok(Command::Run(PathBuf::from("config/config.yaml")))
        );
    }

    #[test]
    fn run_and_check_take_a_config_file() {
        assert_eq!(
            p(&["run", "--config", "a.yaml"]),
            Ok(Command::Run("a.yaml".into()))
        );
        assert_eq!(
            p(&["check", "-c", "b.yaml"]),
            Ok(Command::Check("b.yaml".into()))
        );
        assert_eq!(p(&["--config=c.yaml"]), Ok(Command::Run("c.yaml".into())));
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["--config"]).is_err());
    }
}
