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

use super::{Checker, Fields, Yaml};
use crate::net::tls::{self, SetupError, TlsSettings};
use std::path::PathBuf;

/// The keys of a `tls:` block.
const TLS_KEYS: &[&str] = &["ca-file", "cert-file", "key-file", "server-name"];

/// `mqtt-broker-port` when `tls:` is on and no port is given.
pub(super) const DEFAULT_TLS_PORT: u16 = 8883;

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
            let before = problems.len();
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
            // Each file is fine on its own: does the whole build (a key
            // that belongs to its certificate, ...)?
            if problems.len() == before {
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
                    full.push(super::Seg::Key(k.to_owned()));
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
