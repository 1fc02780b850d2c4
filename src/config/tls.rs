//! The `tls:` block of a stream and of `log-performance-stream`: its keys,
//! defaults and checks, and its lines in `attic check`.
//!
//! ```yaml
//! tls:                                  # present = TLS on; the default port becomes 8883
//!   ca-file: "/etc/attic/ca.pem"        # default: the system's root certificates
//!   cert-file: "/etc/attic/client.pem"  # client certificate, optional
//!   key-file: "/etc/attic/client.key"   # its key, required with cert-file
//!   server-name: "broker.example"       # default: mqtt-broker-address
//! ```
//!
//! `tls: true` (or a bare `tls:`) is TLS with every default; `tls: false`
//! is plain TCP. Relative paths are relative to the config file's folder.
//!
//! Owns: turning the block into [`TlsSettings`] and checking that every
//! file named can be read and holds what it should (using the loaders of
//! `net::tls`, so `attic check` and a connect read them alike). Must not:
//! connect, or keep anything but paths (the files are read again at the
//! first connect, so a renewed certificate is picked up at a restart).

use super::Seg;
use super::checker::{Checker, Fields};
use super::yaml::Yaml;
use crate::tls::{self, SetupError, TlsSettings};
use std::path::PathBuf;

/// The keys of a `tls:` block.
const TLS_KEYS: &[&str] = &["ca-file", "cert-file", "key-file", "server-name"];

/// `mqtt-broker-port` when `tls:` is on and no port is given.
const DEFAULT_TLS_PORT: u16 = 8883;

/// The default `mqtt-broker-port`: 8883 with TLS, else `plain`.
pub(super) fn default_port(tls: Option<&TlsSettings>, plain: u16) -> u16 {
    match tls {
        Some(_) => DEFAULT_TLS_PORT,
        None => plain,
    }
}

impl Checker<'_> {
    /// `tls:` of a broker block `f` whose address is `host`; `None` = plain
    /// TCP. With `check_files`, every file is read and checked (as
    /// `password-file` is read only for a connection that will be made).
    pub(super) fn tls(&mut self, f: &Fields, host: &str, check_files: bool) -> Option<TlsSettings> {
        let path = f.at("tls");
        let block = match f.get("tls") {
            // A bare `tls:` is null, which the mapping reader drops: the
            // key being in the text is what counts ("present = on").
            None if self.locator.find(&path).is_some() => None,
            None => return None,
            Some(Yaml::Bool(false)) => return None,
            Some(Yaml::Bool(true)) => None,
            Some(value @ Yaml::Map(_)) => Some(self.mapping(value, &path, TLS_KEYS)?),
            Some(other) => {
                self.wrong_type(&path, "a mapping of TLS keys, or true", other);
                return None;
            }
        };
        let file = |me: &mut Self, k: &str| {
            let b = block.as_ref()?;
            me.path(b, k).map(|p| me.dir.join(p))
        };
        let ca_file = file(self, "ca-file");
        let cert_file = file(self, "cert-file");
        let key_file = file(self, "key-file");
        let server_name = block
            .as_ref()
            .and_then(|b| self.string(b, "server-name"))
            .unwrap_or_else(|| host.to_owned());
        let settings = TlsSettings {
            ca_file,
            cert_file,
            key_file,
            server_name,
            origin: crate::tls::Origin::Config,
        };
        self.check_tls(f, block.as_ref(), &settings, check_files);
        Some(settings)
    }

    /// Records every problem of `s`, each on its own key.
    fn check_tls(
        &mut self,
        f: &Fields,
        block: Option<&Fields>,
        s: &TlsSettings,
        check_files: bool,
    ) {
        let at = |k: &str| match block {
            Some(b) if b.get(k).is_some() => b.at(k),
            Some(b) => b.path.clone(),
            None => f.at("tls"),
        };
        let mut problems = Vec::new();
        if let Err(e) = tls::server_name(&s.server_name) {
            problems.push(e);
        }
        match (&s.cert_file, &s.key_file) {
            (Some(_), None) => problems.push(SetupError::KeyFile(
                "is required with `cert-file` (the client certificate's private key)".to_owned(),
            )),
            (None, Some(_)) => problems.push(SetupError::CertFile(
                "is required with `key-file` (the client certificate)".to_owned(),
            )),
            _ => {}
        }
        if check_files {
            if let Err(e) = tls::load_roots(s.ca_file.as_deref()) {
                problems.push(e);
            }
            if let Some(cert) = &s.cert_file {
                if let Err(e) = tls::load_certs(cert) {
                    problems.push(SetupError::CertFile(e));
                }
            }
            if let Some(key) = &s.key_file {
                if let Err(e) = tls::load_key(key) {
                    problems.push(SetupError::KeyFile(e));
                }
            }
            // Nothing is wrong on its own (a missing half of the client
            // certificate included, which would be said twice): does the
            // whole build (a key that belongs to its certificate, ...)?
            if problems.is_empty() {
                if let Err(e) = tls::client_config(s) {
                    problems.push(e);
                }
            }
        }
        for p in problems {
            let key = match p.key() {
                "" => f.at("tls"),
                k => {
                    let mut full = f.at("tls");
                    full.push(Seg::Key(k.to_owned()));
                    full
                }
            };
            let pos = at(p.key());
            self.report_at(&key, &pos, p.message().to_owned());
        }
    }
}

/// The `tls` lines of `attic check` for one broker.
pub(super) fn describe(line: &mut impl FnMut(String), tls: Option<&TlsSettings>) {
    let Some(t) = tls else {
        line("    tls:            off".to_owned());
        return;
    };
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    line("    tls:            on".to_owned());
    line(format!(
        "      ca:           {}",
        shown(&t.ca_file).unwrap_or_else(|| "the system's root certificates".to_owned())
    ));
    match (shown(&t.cert_file), shown(&t.key_file)) {
        (Some(cert), Some(key)) => {
            line(format!("      client cert:  {cert}"));
            line(format!("      client key:   {key}"));
        }
        _ => line("      client cert:  (none)".to_owned()),
    }
    line(format!("      server name:  {}", t.server_name));
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Problem, parse_with_host};
    use std::path::PathBuf;

    /// A folder with a config file's neighbours: a CA, and a client
    /// certificate with its key, as PEM files. Removed at the end.
    struct Files {
        dir: PathBuf,
    }

    impl Files {
        fn new(tag: &str) -> Files {
            let dir =
                std::env::temp_dir().join(format!("attic-config-tls-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = ca.self_signed(&ca_key).unwrap();
            let client_key = rcgen::KeyPair::generate().unwrap();
            let client = rcgen::CertificateParams::new(vec!["attic".to_owned()])
                .unwrap()
                .signed_by(&client_key, &ca, &ca_key)
                .unwrap();
            std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
            std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
            std::fs::write(dir.join("other.key"), ca_key.serialize_pem()).unwrap();
            Files { dir }
        }

        fn config_path(&self) -> PathBuf {
            self.dir.join("attic.yaml")
        }

        fn parse(&self, text: &str) -> Result<Config, Vec<Problem>> {
            parse_with_host(text, &self.config_path(), "node").map_err(|e| e.problems)
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn stream(extra: &str) -> String {
        format!(
            "data-folder: d\nstreams:\n  - topic: a/b\n    prefix: p\n    mqtt-broker-address: broker.example\n{extra}"
        )
    }

    #[test]
    fn a_tls_block_turns_tls_on_and_makes_the_default_port_8883() {
        let f = Files::new("on");
        let c = f
            .parse(&stream("    tls:\n      ca-file: ca.pem\n"))
            .unwrap();
        let b = &c.streams[0].broker;
        assert_eq!(b.port, 8883);
        let t = b.tls.as_ref().unwrap();
        assert_eq!(t.ca_file.as_deref(), Some(f.dir.join("ca.pem").as_path()));
        assert_eq!(t.server_name, "broker.example");
        assert_eq!(t.cert_file, None);
    }

    #[test]
    fn an_explicit_port_wins_over_the_tls_default() {
        let f = Files::new("port");
        let text = stream("    mqtt-broker-port: 18883\n    tls: {ca-file: ca.pem}\n");
        assert_eq!(f.parse(&text).unwrap().streams[0].broker.port, 18883);
    }

    #[test]
    fn tls_false_or_absent_is_plain_tcp_on_1883() {
        let f = Files::new("off");
        for extra in ["", "    tls: false\n"] {
            let b = &f.parse(&stream(extra)).unwrap().streams[0].broker;
            assert_eq!((b.port, b.tls.is_some()), (1883, false), "{extra:?}");
        }
    }

    #[test]
    fn a_bare_tls_key_or_true_is_tls_with_the_system_roots() {
        let f = Files::new("bare");
        for extra in ["    tls:\n", "    tls: true\n", "    tls: {}\n"] {
            match f.parse(&stream(extra)) {
                Ok(c) => {
                    let t = c.streams[0].broker.tls.clone().unwrap();
                    assert_eq!(t.ca_file, None, "{extra:?}");
                    assert_eq!(c.streams[0].broker.port, 8883);
                }
                // A machine without an OS store says so, on `tls`.
                Err(p) => {
                    assert_eq!(p[0].key, "streams[0].tls", "{p:?}");
                    assert!(p[0].message.contains("ca-certificates"), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn a_missing_ca_file_is_reported_with_key_path_and_line() {
        let f = Files::new("missing");
        let p = f
            .parse(&stream("    tls:\n      ca-file: nowhere.pem\n"))
            .unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "streams[0].tls.ca-file");
        assert_eq!(p[0].line, Some(7));
        assert!(p[0].message.contains("cannot read"), "{p:?}");
        assert!(p[0].message.contains("nowhere.pem"), "{p:?}");
    }

    #[test]
    fn a_key_file_that_holds_no_key_and_a_cert_file_that_holds_no_certificate_are_both_reported() {
        let f = Files::new("swapped");
        let text = stream(
            "    tls:\n      ca-file: ca.pem\n      cert-file: client.key\n      key-file: client.pem\n",
        );
        let p = f.parse(&text).unwrap_err();
        let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [
                ("streams[0].tls.cert-file", Some(8)),
                ("streams[0].tls.key-file", Some(9))
            ]
        );
        assert!(p[0].message.contains("holds no certificate"), "{p:?}");
        assert!(p[1].message.contains("holds no private key"), "{p:?}");
    }

    #[test]
    fn a_cert_file_needs_its_key_file_and_the_key_must_match() {
        let f = Files::new("pair");
        let p = f
            .parse(&stream(
                "    tls:\n      ca-file: ca.pem\n      cert-file: client.pem\n",
            ))
            .unwrap_err();
        assert_eq!(p[0].key, "streams[0].tls.key-file");
        assert!(
            p[0].message.contains("is required with `cert-file`"),
            "{p:?}"
        );
        assert_eq!(p.len(), 1, "the missing key is said once: {p:?}");
        let text = stream(
            "    tls:\n      ca-file: ca.pem\n      cert-file: client.pem\n      key-file: other.key\n",
        );
        let p = f.parse(&text).unwrap_err();
        assert_eq!(p[0].key, "streams[0].tls.key-file");
        assert!(p[0].message.contains("is not the key of"), "{p:?}");
    }

    #[test]
    fn a_client_certificate_and_server_name_are_taken_as_given() {
        let f = Files::new("client");
        let text = stream(
            "    tls:\n      ca-file: ca.pem\n      cert-file: client.pem\n      key-file: client.key\n      server-name: 10.0.0.7\n",
        );
        let c = f.parse(&text).unwrap();
        let t = c.streams[0].broker.tls.as_ref().unwrap();
        assert_eq!(
            t.cert_file.as_deref(),
            Some(f.dir.join("client.pem").as_path())
        );
        assert_eq!(
            t.key_file.as_deref(),
            Some(f.dir.join("client.key").as_path())
        );
        assert_eq!(t.server_name, "10.0.0.7");
        let described = c.describe();
        assert!(
            described.contains("    tls:            on\n"),
            "{described}"
        );
        assert!(described.contains("client key:"), "{described}");
        assert!(described.contains("server name:  10.0.0.7"), "{described}");
    }

    #[test]
    fn unknown_tls_keys_and_wrong_types_are_problems() {
        let f = Files::new("unknown");
        let p = f
            .parse(&stream("    tls:\n      ca-fle: ca.pem\n"))
            .unwrap_err();
        assert_eq!(p[0].key, "streams[0].tls.ca-fle");
        assert!(p[0].message.contains("did you mean `ca-file`"), "{p:?}");
        let p = f.parse(&stream("    tls: 1\n")).unwrap_err();
        assert_eq!(p[0].key, "streams[0].tls");
    }

    #[test]
    fn the_performance_stream_takes_tls_too() {
        let f = Files::new("perf");
        let text = format!(
            "{}log-performance: true\nlog-performance-stream:\n  topic: t\n  tls:\n    ca-file: ca.pem\n",
            stream("")
        );
        let c = f.parse(&text).unwrap();
        let p = c.performance.unwrap();
        assert_eq!(p.broker.port, 8883);
        assert!(p.broker.tls.is_some());
    }
}
