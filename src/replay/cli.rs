//! `attic replay` arguments and exit codes: 0 done (or stopped by a
//! signal), 2 bad arguments (one line), 78 bad configuration, 1 I/O or
//! broker failure. Parses, loads the config, checks the TLS files (so a bad
//! `--tls-ca-file` is exit 2 before any connect), calls [`super::replay`].

use std::path::PathBuf;
use std::process::ExitCode;

use super::{ReplayError, ReplayOptions, replay};
use crate::cli;
use crate::config::{self, DEFAULT_CONFIG_PATH};
use crate::select::{SelectError, Selection};
use crate::tls::{self, SetupError, TlsSettings};

/// Usage text of `attic replay`.
pub const USAGE: &str = "\
usage: attic replay [--config FILE] [SELECTION] --broker HOST[:PORT] [--speed X]
                    [--qos 0|1|2] [--retain-as-stored] [--topic-prefix P]
                    [--client-id ID] [--user U] [--password-file F]
                    [--tls-ca-file F | --tls]
  SELECTION: [--stream FOLDER]... [--from TIME] [--to TIME] [--topic FILTER]... [--include-open]
  publishes the selected rows in stored order, keeping the recorded gaps divided by --speed
  (default 1; 0 = as fast as the broker takes them); QoS as stored unless --qos; retain off
  unless --retain-as-stored; --topic-prefix is prepended to every topic.
  --tls-ca-file F: TLS, trusting the CA certificates in F; --tls: TLS with the
  system's root certificates. The broker's certificate must name the --broker
  host; the port defaults to 8883 with TLS.
exit codes: 0 done, 2 bad arguments, 78 bad configuration, 1 I/O or broker failure";

/// Parsed `attic replay` arguments.
#[derive(Debug, PartialEq)]
pub enum Args {
    /// `--help`.
    Help,
    /// A replay to run.
    Run {
        /// The config file.
        config: PathBuf,
        /// What and where.
        opts: Box<ReplayOptions>,
    },
}

/// Parses the arguments after `replay`. `now_us` resolves relative times;
/// `read_file` reads `--password-file` (a parameter so tests need no file).
pub fn parse(
    args: &[String],
    now_us: i64,
    read_file: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Args, String> {
    let mut config = None;
    let mut selection = Selection::default();
    let mut broker: Option<(String, Option<u16>)> = None;
    let mut tls_ca_file: Option<PathBuf> = None;
    let mut tls_system = false;
    let mut opts = ReplayOptions {
        selection: Selection::default(),
        host: String::new(),
        port: 1883,
        speed: 1.0,
        qos: None,
        retain_as_stored: false,
        topic_prefix: String::new(),
        client_id: format!(
            "attic-replay-{}-{}",
            config::host_name(),
            std::process::id()
        ),
        user: None,
        password: None,
        tls: None,
    };
    let mut it = args.iter().cloned();
    while let Some(a) = it.next() {
        if selection.take_arg(&a, &mut it, now_us)? {
            continue;
        }
        let (name, inline) = cli::split_flag(&a);
        let mut value = |what: &str| cli::flag_value(name, inline, &mut it, what);
        match name {
            "-h" | "--help" => return Ok(Args::Help),
            "-c" | "--config" => config = Some(PathBuf::from(value("a file name")?)),
            "--broker" => broker = Some(parse_broker(&value("HOST[:PORT]")?)?),
            "--speed" => {
                let v = value("a number")?;
                opts.speed = match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => x,
                    _ => {
                        return Err(format!(
                            "invalid speed {v:?}: expected a number >= 0 (0 = no waiting)"
                        ));
                    }
                };
            }
            "--qos" => {
                let v = value("0, 1 or 2")?;
                opts.qos = Some(match v.as_str() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(format!("invalid QoS {v:?}: expected 0, 1 or 2")),
                });
            }
            "--retain-as-stored" if inline.is_none() => opts.retain_as_stored = true,
            "--topic-prefix" => opts.topic_prefix = value("a topic prefix")?,
            "--client-id" => opts.client_id = value("a client id")?,
            "--user" => opts.user = Some(value("a user name")?),
            "--password-file" => {
                let f = value("a file name")?;
                let text = read_file(&f)?;
                opts.password = Some(text.trim_end_matches(['\n', '\r']).to_owned());
            }
            "--tls-ca-file" => tls_ca_file = Some(PathBuf::from(value("a file name")?)),
            "--tls" if inline.is_none() => tls_system = true,
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    selection.validate()?;
    let Some((host, port)) = broker else {
        return Err("--broker HOST[:PORT] is required".to_owned());
    };
    if opts.topic_prefix.contains(['+', '#']) {
        return Err(format!(
            "invalid topic prefix {:?}: a topic cannot contain + or #",
            opts.topic_prefix
        ));
    }
    if tls_system && tls_ca_file.is_some() {
        return Err("--tls and --tls-ca-file exclude each other: --tls trusts the system's root certificates, --tls-ca-file the file's".to_owned());
    }
    if tls_system || tls_ca_file.is_some() {
        opts.tls = Some(TlsSettings {
            ca_file: tls_ca_file,
            cert_file: None,
            key_file: None,
            server_name: host.clone(),
            origin: crate::tls::Origin::ReplayFlags,
        });
    }
    opts.port = port.unwrap_or(if opts.tls.is_some() { 8883 } else { 1883 });
    opts.host = host;
    opts.selection = selection;
    Ok(Args::Run {
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        opts: Box::new(opts),
    })
}

/// `HOST`, `HOST:PORT` or `[IPv6]:PORT`; no port = the default (1883,
/// or 8883 with TLS).
fn parse_broker(s: &str) -> Result<(String, Option<u16>), String> {
    let bad = || format!("invalid broker {s:?}: expected HOST or HOST:PORT");
    if let Some((scheme, rest)) = s.split_once("://") {
        let tls = if matches!(scheme, "mqtts" | "ssl" | "tls") {
            " and --tls (or --tls-ca-file F) for TLS"
        } else {
            ""
        };
        return Err(format!(
            "invalid broker {s:?}: give HOST[:PORT] without a scheme (--broker {rest}){tls}"
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(bad)?;
        (h, p.strip_prefix(':'))
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        (s, None)
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        None => None,
    };
    Ok((host.to_owned(), port))
}

/// Reads and checks the TLS files and the server name once, before any
/// connect, with the tls module's own loaders (as `attic check` does for
/// `tls:`). `Err` is one line naming the option at fault.
pub fn check_tls(settings: &TlsSettings) -> Result<(), String> {
    let named = |e: SetupError| {
        let option = match e {
            SetupError::CaFile(_) => "--tls-ca-file",
            SetupError::ServerName(_) => "--broker",
            _ => "--tls",
        };
        format!("{option}: {}", e.message())
    };
    tls::server_name(&settings.server_name).map_err(named)?;
    tls::client_config(settings).map(|_| ()).map_err(named)
}

/// The one line a finished (or stopped) replay ends with.
fn summary_line(s: &super::ReplaySummary, opts: &ReplayOptions) -> String {
    let rows = crate::progress::count(s.published, "row", "rows");
    let skipped = match s.skipped {
        0 => String::new(),
        n => format!(
            "; {} skipped (topic too long with the prefix)",
            crate::progress::count(n, "row", "rows")
        ),
    };
    if s.interrupted {
        format!(
            "stopped after {rows} published to {}:{}{skipped}",
            opts.host, opts.port
        )
    } else {
        format!("{rows} published to {}:{}{skipped}", opts.host, opts.port)
    }
}

/// `attic replay ARGS`: runs it and returns the exit code.
pub fn main(args: &[String]) -> ExitCode {
    let read =
        |f: &str| std::fs::read_to_string(f).map_err(|e| format!("--password-file {f}: {e}"));
    let now = crate::clock::now_us();
    let (config_path, opts) = match parse(args, now, &read) {
        Ok(Args::Help) => return cli::print_out(USAGE),
        Ok(Args::Run { config, opts }) => (config, opts),
        Err(e) => return cli::usage_error("attic replay", &e),
    };
    if let Some(Err(e)) = opts.tls.as_ref().map(check_tls) {
        return cli::usage_error("attic replay", &e.to_string());
    }
    let config = match cli::load_config(&config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(log::LevelFilter::Warn);
    match replay(&config, &opts) {
        Ok(s) => {
            eprintln!("attic replay: {}", summary_line(&s, &opts));
            ExitCode::SUCCESS
        }
        Err(ReplayError::Select(SelectError::Usage(e))) => cli::usage_error("attic replay", &e),
        Err(e) => {
            eprintln!("attic replay: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        let read = |f: &str| {
            if f == "pw" {
                Ok("secret\n".to_owned())
            } else {
                Err(format!("--password-file {f}: missing"))
            }
        };
        parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            0,
            &read,
        )
    }

    fn opts(args: &[&str]) -> ReplayOptions {
        match p(args) {
            Ok(Args::Run { opts, .. }) => *opts,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_broker_takes_a_host_and_an_optional_port() {
        let o = opts(&["--broker", "localhost"]);
        assert_eq!((o.host.as_str(), o.port), ("localhost", 1883));
        let o = opts(&["--broker=10.0.0.1:1884"]);
        assert_eq!((o.host.as_str(), o.port), ("10.0.0.1", 1884));
        let o = opts(&["--broker", "[::1]:2000"]);
        assert_eq!((o.host.as_str(), o.port), ("::1", 2000));
    }

    #[test]
    fn defaults_are_speed_1_stored_qos_and_retain_off() {
        let o = opts(&["--broker", "h"]);
        assert_eq!(o.speed, 1.0);
        assert_eq!(o.qos, None);
        assert!(!o.retain_as_stored);
        assert!(o.topic_prefix.is_empty());
        let o = opts(&[
            "--broker",
            "h",
            "--speed",
            "0",
            "--qos",
            "2",
            "--retain-as-stored",
            "--topic-prefix",
            "replayed/",
            "--user",
            "u",
            "--password-file",
            "pw",
            "--stream",
            "s",
        ]);
        assert_eq!((o.speed, o.qos, o.retain_as_stored), (0.0, Some(2), true));
        assert_eq!(o.topic_prefix, "replayed/");
        assert_eq!(o.password.as_deref(), Some("secret"));
        assert_eq!(o.selection.streams, ["s"]);
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        for (args, needle) in [
            (&["--speed", "1"][..], "--broker HOST[:PORT] is required"),
            (&["--broker", "h:0"], "invalid broker"),
            (&["--broker", "h:x"], "invalid broker"),
            (
                &["--broker", "mqtt://h:1883"],
                "without a scheme (--broker h:1883)",
            ),
            (&["--broker", "mqtts://h"], "and --tls"),
            (&["--broker", "h", "--speed", "-1"], "invalid speed"),
            (&["--broker", "h", "--speed", "fast"], "invalid speed"),
            (&["--broker", "h", "--qos", "3"], "invalid QoS"),
            (&["--broker", "h", "--from", "noon"], "invalid time"),
            (&["--broker", "h", "--topic", "#/a"], "invalid topic filter"),
            (
                &["--broker", "h", "--topic-prefix", "a/#"],
                "invalid topic prefix",
            ),
            (&["--broker", "h", "--password-file", "nope"], "missing"),
            (
                &["--broker", "h", "--tls", "--tls-ca-file", "ca.pem"],
                "exclude each other",
            ),
            (&["--broker", "h", "--tls-ca-file"], "--tls-ca-file needs"),
        ] {
            let e = p(args).expect_err(needle);
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn a_tls_ca_file_turns_tls_on_named_after_the_broker_host_on_port_8883() {
        let o = opts(&["--broker", "broker.example", "--tls-ca-file", "ca.pem"]);
        assert_eq!(o.port, 8883);
        let t = o.tls.expect("TLS on");
        assert_eq!(t.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(t.server_name, "broker.example");
        assert_eq!((t.cert_file, t.key_file), (None, None));
        let o = opts(&["--broker=10.0.0.1:9000", "--tls-ca-file=ca.pem"]);
        assert_eq!(o.port, 9000);
        assert_eq!(o.tls.expect("TLS on").server_name, "10.0.0.1");
    }

    #[test]
    fn tls_alone_trusts_the_system_roots_and_plain_tcp_stays_on_1883() {
        let o = opts(&["--broker", "h", "--tls"]);
        assert_eq!(o.port, 8883);
        assert_eq!(o.tls.expect("TLS on").ca_file, None);
        let o = opts(&["--broker", "h"]);
        assert_eq!((o.port, o.tls), (1883, None));
    }

    #[test]
    fn an_unreadable_or_certificate_free_ca_file_is_one_line_naming_the_option() {
        let dir = std::env::temp_dir().join(format!("attic-replay-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let not_pem = dir.join("not-a-ca.pem");
        std::fs::write(&not_pem, "hello\n").expect("write");
        let settings = |ca: PathBuf| TlsSettings {
            ca_file: Some(ca),
            cert_file: None,
            key_file: None,
            server_name: "localhost".into(),
            origin: crate::tls::Origin::ReplayFlags,
        };
        let e = check_tls(&settings(dir.join("missing.pem"))).expect_err("missing file");
        assert!(e.starts_with("--tls-ca-file: cannot read"), "{e}");
        let e = check_tls(&settings(not_pem)).expect_err("no certificate");
        assert!(
            e.starts_with("--tls-ca-file: ") && e.contains("holds no certificate"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
