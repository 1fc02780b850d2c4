//! `attic export` arguments and exit codes: 0 done, 2 bad arguments (one
//! line), 78 bad configuration, 1 I/O error. Parses, loads the config,
//! calls [`super::export`]; holds no export logic itself.

use std::path::PathBuf;
use std::process::ExitCode;

use super::decode::{DecodeKind, DecodeOptions, SchemaSource, fields};
use super::{ExportError, ExportOptions, Format, export};
use crate::cli;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::select::Selection;

/// Usage text of `attic export`.
pub const USAGE: &str = "\
usage: attic export [--config FILE] [SELECTION] [--format jsonl|csv|sqlite|parquet]
                    [--output FILE | --output-dir DIR] [DECODING] [--sessions]
  SELECTION: [--stream FOLDER]... [--from TIME] [--to TIME] [--topic FILTER]... [--include-open]
  DECODING: [--decode json|avro] [--avro-schema FILE | --avro-schemas DIR]
            [--field NAME=POINTER[:TYPE]]...   (TYPE: f64, i64, str, bool, json; default inferred)
  TIME: 2026-11-27T10:00:00Z (RFC 3339, offsets allowed), 2026-11-27 (UTC midnight),
        1764237600.5 (unix seconds), -90s / -30m / -2h / -7d (relative to now)
  --from is inclusive, --to exclusive; rows come in reception order across streams.
  --format defaults to the --output extension (.jsonl/.ndjson, .csv, .sqlite/.db, .parquet),
  else jsonl (parquet with --output-dir); output goes to stdout unless --output (sqlite
  needs --output, parquet --output or --output-dir: DIR/stream=S/date=YYYY-MM-DD/*.parquet).
  --field implies --decode json; a row whose payload does not decode keeps a decode_error.
  --sessions: the connections to the broker recorded in the selected files, as JSON lines.
exit codes: 0 done, 2 bad arguments, 78 bad configuration, 1 I/O error";

/// Parsed `attic export` arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Args {
    /// `--help`.
    Help,
    /// An export to run.
    Run {
        /// The config file.
        config: PathBuf,
        /// What and where.
        opts: Box<ExportOptions>,
    },
}

/// Parses the arguments after `export`. `now_us` resolves relative times.
pub fn parse(args: &[String], now_us: i64) -> Result<Args, String> {
    let mut config = None;
    let mut selection = Selection::default();
    let mut format = None;
    let mut output = None;
    let mut sessions = false;
    let mut output_dir = None;
    let mut decode = DecodeOptions::default();
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        if selection.take_arg(&a, &mut it, now_us)? {
            continue;
        }
        let (name, inline) = cli::split_flag(&a);
        let mut value = |what: &str| cli::flag_value(name, inline, &mut it, what);
        match name {
            "-h" | "--help" => return Ok(Args::Help),
            "--sessions" if inline.is_none() => sessions = true,
            "-c" | "--config" => config = Some(PathBuf::from(value("a file name")?)),
            "-o" | "--output" => output = Some(PathBuf::from(value("a file name")?)),
            "--output-dir" => output_dir = Some(PathBuf::from(value("a folder")?)),
            "-f" | "--format" => {
                let v = value("jsonl, csv, sqlite or parquet")?;
                format = Some(Format::from_name(&v).ok_or_else(|| {
                    format!("unknown format {v:?}: expected jsonl, csv, sqlite or parquet")
                })?);
            }
            "--decode" => {
                let v = value("json or avro")?;
                decode.kind = Some(match v.as_str() {
                    "json" => DecodeKind::Json,
                    "avro" => DecodeKind::Avro,
                    _ => return Err(format!("unknown --decode {v:?}: expected json or avro")),
                });
            }
            "--avro-schema" | "--avro-schemas" => {
                if decode.schemas.is_some() {
                    return Err("give one of --avro-schema FILE or --avro-schemas DIR".to_owned());
                }
                decode.schemas = Some(if name == "--avro-schema" {
                    SchemaSource::File(PathBuf::from(value("an .avsc file")?))
                } else {
                    SchemaSource::Dir(PathBuf::from(value("a folder of .avsc files")?))
                });
            }
            "--field" => {
                let f = fields::parse_field(&value("NAME=POINTER[:TYPE]")?)?;
                if decode.fields.iter().any(|g| g.name == f.name) {
                    return Err(format!("--field {:?} given twice", f.name));
                }
                decode.fields.push(f);
            }
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    selection.validate()?;
    if sessions && (format.is_some_and(|f| f != Format::Jsonl) || output_dir.is_some()) {
        return Err("--sessions prints JSON lines: --format must be jsonl".to_owned());
    }
    decode.validate()?;
    if output.is_some() && output_dir.is_some() {
        return Err("give one of --output FILE or --output-dir DIR".to_owned());
    }
    let format = match (format, &output_dir) {
        _ if sessions => Format::Jsonl,
        (None, Some(_)) => Format::Parquet,
        (Some(f), Some(_)) if f != Format::Parquet => {
            return Err("--output-dir writes Parquet partitions: use --format parquet".to_owned());
        }
        _ => Format::choose(format, output.as_deref()),
    };
    if format == Format::Parquet
        && output_dir.is_none()
        && output
            .as_deref()
            .is_none_or(|p| p == std::path::Path::new("-"))
    {
        return Err("--format parquet needs --output FILE or --output-dir DIR".to_owned());
    }
    if format == Format::Sqlite
        && output
            .as_deref()
            .is_none_or(|p| p == std::path::Path::new("-"))
    {
        return Err("--format sqlite needs --output FILE".to_owned());
    }
    Ok(Args::Run {
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        opts: Box::new(ExportOptions {
            selection,
            format,
            output,
            sessions,
            output_dir,
            decode,
        }),
    })
}

/// `attic export ARGS`: runs it and returns the exit code.
pub fn main(args: &[String]) -> ExitCode {
    let (config_path, opts) = match parse(args, crate::clock::now_us()) {
        Ok(Args::Help) => return cli::print_out(USAGE),
        Ok(Args::Run { config, opts }) => (config, opts),
        Err(e) => return cli::usage_error("attic export", &e),
    };
    let config = match cli::load_config(&config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(log::LevelFilter::Warn);
    match export(&config, &opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(ExportError::Usage(e)) => cli::usage_error("attic export", &e),
        // A closed pipe (`attic export | head`) is the reader's choice.
        Err(ExportError::Write { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("attic export: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            1_000_000_000,
        )
    }

    fn opts(args: &[&str]) -> ExportOptions {
        match p(args) {
            Ok(Args::Run { opts, .. }) => *opts,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_format_comes_from_the_flag_then_the_extension_then_jsonl() {
        assert_eq!(opts(&[]).format, Format::Jsonl);
        assert_eq!(opts(&["-o", "x.csv"]).format, Format::Csv);
        assert_eq!(opts(&["-o", "x.ndjson"]).format, Format::Jsonl);
        assert_eq!(opts(&["-o", "x.DB"]).format, Format::Sqlite);
        assert_eq!(opts(&["-o", "x.sqlite"]).format, Format::Sqlite);
        assert_eq!(opts(&["-o", "x.txt"]).format, Format::Jsonl);
        assert_eq!(
            opts(&["-o", "x.csv", "--format", "jsonl"]).format,
            Format::Jsonl
        );
        assert_eq!(opts(&["--format=csv"]).format, Format::Csv);
        assert_eq!(opts(&["-o", "x.parquet"]).format, Format::Parquet);
        assert_eq!(opts(&["--output-dir", "lake"]).format, Format::Parquet);
    }

    #[test]
    fn the_selection_options_are_collected() {
        let o = opts(&[
            "--stream",
            "a",
            "--stream=b",
            "--from",
            "-1s",
            "--to",
            "1000",
            "--topic",
            "x/#",
            "--include-open",
        ]);
        assert_eq!(o.selection.streams, ["a", "b"]);
        assert_eq!(o.selection.from_us, Some(999_000_000));
        assert_eq!(o.selection.to_us, Some(1_000_000_000));
        assert_eq!(o.selection.topics, ["x/#"]);
        assert!(o.selection.include_open);
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        for (args, needle) in [
            (&["--from", "noon"][..], "invalid time \"noon\""),
            (&["--topic", "a/#/b"], "invalid topic filter"),
            (&["--topic", "$share/g/a"], "shared subscription"),
            (&["--format", "xml"], "unknown format"),
            (&["--format", "sqlite"], "needs --output"),
            (&["--from", "2000", "--to", "1000"], "empty time window"),
            (&["--to"], "--to needs a time"),
            (&["--frobnicate"], "unexpected argument"),
            (
                &["--format", "parquet"],
                "needs --output FILE or --output-dir DIR",
            ),
            (
                &["--format", "parquet", "-o", "-"],
                "needs --output FILE or --output-dir",
            ),
            (
                &["--output-dir", "d", "--format", "csv"],
                "use --format parquet",
            ),
            (&["--decode", "xml"], "unknown --decode"),
            (&["--decode", "avro"], "needs --avro-schema"),
            (&["--avro-schema", "a.avsc"], "need --decode avro"),
            (&["--field", "t=t"], "not a JSON Pointer"),
            (&["--field", "t=/t", "--field", "t=/u"], "given twice"),
        ] {
            let e = p(args).expect_err(needle);
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: {e}");
        }
    }
}
