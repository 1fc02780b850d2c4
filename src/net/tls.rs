//! TLS between a broker socket and the MQTT framing: a rustls
//! `ClientConnection` driven nonblocking from the loop, the client
//! configuration built from `tls:` (roots, client certificate, server name),
//! and TLS failures put into words.
//!
//! ```text
//!   socket --read_tls--> ClientConnection --process_new_packets--> reader() --plaintext--> framing
//!   socket <--write_tls-- ClientConnection <--writer()-- outbox        (write_tls while wants_write)
//! ```
//!
//! Owns: [`TlsSettings`] (what `tls:` says), loading and checking the PEM
//! files, [`Tls`] (one link's TLS state across reconnects) and the one-line
//! descriptions of certificate and handshake failures. Must not: block
//! (every call returns at `WouldBlock`), start a thread, know MQTT, or read
//! the YAML (config builds a [`TlsSettings`] and uses the loaders here to
//! check the files).
//!
//! The handshake needs no state machine of ours: plaintext written before
//! it finishes is buffered by rustls and sent once it has, so the session
//! sends CONNECT as soon as TCP is up, and the CONNACK timeout covers the
//! handshake as well.

use super::ReadOutcome;
use bytes::{Buf, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `tls:` asks for, with paths resolved against the config's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ca-file`: PEM file with the CA certificate(s) to trust; `None` =
    /// the system's root certificates (the OS store).
    pub ca_file: Option<PathBuf>,
    /// `cert-file`: PEM client certificate chain, leaf first (always
    /// together with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// `key-file`: PEM private key of the client certificate (PKCS#8,
    /// PKCS#1 RSA or SEC1 EC).
    pub key_file: Option<PathBuf>,
    /// `server-name`: the name the broker's certificate must carry (a DNS
    /// name or an IP address); default `mqtt-broker-address`.
    pub server_name: String,
}

/// Why a client configuration cannot be built, tied to the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// `ca-file` is unreadable or holds no certificate.
    CaFile(String),
    /// No `ca-file`, and the OS store gave no root certificate.
    SystemRoots(String),
    /// `cert-file` is unreadable, holds no certificate, or does not match
    /// the key.
    CertFile(String),
    /// `key-file` is unreadable or holds no private key.
    KeyFile(String),
    /// `server-name` is neither a DNS name nor an IP address.
    ServerName(String),
}

impl SetupError {
    /// The `tls:` key the problem belongs to (`tls` itself for the roots).
    pub fn key(&self) -> &'static str {
        match self {
            SetupError::CaFile(_) => "ca-file",
            SetupError::SystemRoots(_) => "",
            SetupError::CertFile(_) => "cert-file",
            SetupError::KeyFile(_) => "key-file",
            SetupError::ServerName(_) => "server-name",
        }
    }

    /// What is wrong, for a person.
    pub fn message(&self) -> &str {
        match self {
            SetupError::CaFile(m)
            | SetupError::SystemRoots(m)
            | SetupError::CertFile(m)
            | SetupError::KeyFile(m)
            | SetupError::ServerName(m) => m,
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key() {
            "" => write!(f, "tls: {}", self.message()),
            k => write!(f, "tls.{k}: {}", self.message()),
        }
    }
}

/// The crypto provider: `ring` (see Cargo.toml for why not aws-lc-rs).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// The certificates of a PEM file, in file order; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "`{}` holds no certificate (expected `-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "`{}` holds no private key (expected `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
            path.display()
        ),
        other => format!("`{}` is not a valid PEM private key: {other}", path.display()),
    })
}

/// The CA certificates of `ca_file`, or the OS store's roots.
pub fn load_roots(ca_file: Option<&Path>) -> Result<RootCertStore, SetupError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = load_certs(path).map_err(SetupError::CaFile)?;
            let (_, bad) = roots.add_parsable_certificates(certs);
            if roots.is_empty() {
                return Err(SetupError::CaFile(format!(
                    "`{}` holds no usable CA certificate ({bad} could not be parsed)",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (_, bad) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(SetupError::SystemRoots(format!(
                    "the system has no usable root certificates{why}, {bad} unparsable; install \
                     the ca-certificates package or set tls.ca-file"
                )));
            }
        }
    }
    Ok(roots)
}

/// `server-name` as rustls wants it.
pub fn server_name(name: &str) -> Result<ServerName<'static>, SetupError> {
    ServerName::try_from(name.to_owned()).map_err(|_| {
        SetupError::ServerName(format!("`{name}` is neither a DNS name nor an IP address"))
    })
}

/// Builds the client configuration: roots, optional client certificate.
/// Reads the files named in `s` (so a renewed certificate is picked up by
/// the next call).
pub fn client_config(s: &TlsSettings) -> Result<Arc<ClientConfig>, SetupError> {
    let roots = load_roots(s.ca_file.as_deref())?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::SystemRoots(format!("no TLS version available: {e}")))?
        .with_root_certificates(roots);
    let config = match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert).map_err(SetupError::CertFile)?;
            let key_der = load_key(key).map_err(SetupError::KeyFile)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => SetupError::KeyFile(format!(
                        "`{}` is not the key of the certificate in `{}`",
                        key.display(),
                        cert.display()
                    )),
                    other => SetupError::KeyFile(format!(
                        "cannot use `{}` with `{}`: {other}",
                        key.display(),
                        cert.display()
                    )),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(SetupError::KeyFile(
                "is required with `cert-file`".to_owned(),
            ));
        }
        (None, Some(_)) => {
            return Err(SetupError::CertFile(
                "is required with `key-file`".to_owned(),
            ));
        }
    };
    Ok(Arc::new(config))
}

/// One link's TLS: the settings, the client configuration (built at the
/// first connect and rebuilt after a failed handshake, so fixed or renewed
/// files are picked up), and the TLS connection on the current socket.
pub struct Tls {
    /// What `tls:` says.
    settings: TlsSettings,
    /// `host:port`, for messages.
    peer: String,
    /// Built on first use; dropped after a failure.
    config: Option<Arc<ClientConfig>>,
    /// The TLS state of the current socket; `None` between connections.
    conn: Option<ClientConnection>,
    /// The current connection failed (no close_notify is sent then).
    failed: bool,
    /// The handshake of the current connection has been logged.
    announced: bool,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .field("peer", &self.peer)
            .field("connected", &self.conn.is_some())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Tls {
    /// TLS with `settings` to the broker at `peer` (`host:port`).
    pub fn new(settings: TlsSettings, peer: String) -> Self {
        Tls {
            settings,
            peer,
            config: None,
            conn: None,
            failed: false,
            announced: false,
        }
    }

    /// A new TLS connection for a new socket. `Err` says why none can be
    /// made (a file went missing since start-up, ...).
    pub fn start(&mut self) -> Result<(), String> {
        self.conn = None;
        self.failed = false;
        self.announced = false;
        let config = match &self.config {
            Some(c) => Arc::clone(c),
            None => {
                let c = client_config(&self.settings).map_err(|e| format!("TLS setup: {e}"))?;
                self.config = Some(Arc::clone(&c));
                c
            }
        };
        let name =
            server_name(&self.settings.server_name).map_err(|e| format!("TLS setup: {e}"))?;
        let conn = ClientConnection::new(config, name).map_err(|e| format!("TLS setup: {e}"))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// The socket is about to close: a clean TLS close (close_notify, one
    /// try) unless the connection failed; then forget the connection.
    pub fn stop<S: Write>(&mut self, sock: Option<&mut S>) {
        if let (Some(conn), Some(sock), false) = (self.conn.as_mut(), sock, self.failed) {
            if !conn.is_handshaking() {
                conn.send_close_notify();
                let _ = conn.write_tls(sock);
            }
        }
        self.conn = None;
    }

    /// TLS records are waiting for the socket to take them.
    pub fn unsent(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.wants_write())
    }

    /// Reads plaintext into `buf`: what rustls has decrypted already, then
    /// records from the socket, until `buf` is full or the socket would
    /// block. So a short `Data` means the socket is drained (as for plain
    /// TCP, where the caller relies on it under edge-triggered polling).
    /// `Err` carries a one-line description of a TLS failure.
    pub fn read<S: Read + Write>(
        &mut self,
        sock: &mut S,
        buf: &mut [u8],
    ) -> io::Result<ReadOutcome> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(ReadOutcome::Closed);
        };
        let mut filled = 0;
        let data_or = |filled: usize, otherwise: ReadOutcome| {
            if filled > 0 {
                Ok(ReadOutcome::Data(filled))
            } else {
                Ok(otherwise)
            }
        };
        loop {
            let Some(free) = buf.get_mut(filled..).filter(|b| !b.is_empty()) else {
                return Ok(ReadOutcome::Data(filled));
            };
            match conn.reader().read(free) {
                // A clean close (close_notify) once everything is read.
                Ok(0) => return data_or(filled, ReadOutcome::Closed),
                Ok(n) => {
                    filled += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // TCP closed without close_notify: most brokers do that.
                    return data_or(filled, ReadOutcome::Closed);
                }
                Err(e) => return Err(e),
            }
            match conn.read_tls(sock) {
                Ok(0) => {
                    if conn.is_handshaking() {
                        self.failed = true;
                        return Err(io::Error::other(format!(
                            "TLS: {} closed the connection during the TLS handshake; is that port \
                             a TLS listener? (plain MQTT is usually 1883, TLS 8883)",
                            self.peer
                        )));
                    }
                    // The reader now reports the end (clean or not).
                }
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        self.failed = true;
                        // Tell the broker why (the alert rustls queued), once.
                        let _ = conn.write_tls(sock);
                        self.config = None;
                        return Err(io::Error::other(describe(&e, &self.settings, &self.peer)));
                    }
                    if !self.announced && !conn.is_handshaking() {
                        self.announced = true;
                        log::debug!(
                            "TLS with {}: {:?}, {:?}",
                            self.peer,
                            conn.protocol_version(),
                            conn.negotiated_cipher_suite().map(|s| s.suite())
                        );
                    }
                    // Handshake messages or alerts for the broker go out at
                    // once; what the socket does not take waits for `write`.
                    while conn.wants_write() {
                        match conn.write_tls(sock) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return data_or(filled, ReadOutcome::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if conn.is_handshaking() => {
                    self.failed = true;
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "TLS: {} broke off the TLS handshake ({e}); is that port a TLS \
                             listener? (plain MQTT is usually 1883, TLS 8883)",
                            self.peer
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves `out` into the TLS connection and its records into the socket,
    /// as far as the socket takes them. `Ok(true)` when nothing waits for
    /// the socket (plaintext may still wait for the handshake to finish: it
    /// goes out on a later call, after a read).
    pub fn write<S: Write>(&mut self, sock: &mut S, out: &mut BytesMut) -> io::Result<bool> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(true);
        };
        loop {
            if !out.is_empty() {
                let n = conn.writer().write(out)?;
                out.advance(n);
            }
            if !conn.wants_write() {
                return Ok(true);
            }
            match conn.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One line, in words, for a TLS failure with `peer` under settings `s`.
pub fn describe(e: &rustls::Error, s: &TlsSettings, peer: &str) -> String {
    use rustls::Error as E;
    let name = &s.server_name;
    let roots = match &s.ca_file {
        Some(p) => format!("the CA in tls.ca-file `{}`", p.display()),
        None => "any of the system's root certificates (no tls.ca-file)".to_owned(),
    };
    let has_client_cert = s.cert_file.is_some();
    let date = |t: &rustls::pki_types::UnixTime| {
        let us = i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 1_000_000) * 1_000_000;
        crate::store::rotation::day_folder(us)
    };
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "TLS: certificate of {peer} has an unknown issuer: it is not signed by {roots}; \
                 set tls.ca-file to the CA that signed it"
            ),
            CertificateError::NotValidForName => format!(
                "TLS: name mismatch: the certificate of {peer} is not valid for `{name}`; set \
                 tls.server-name to a name it carries"
            ),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "TLS: name mismatch: the certificate of {peer} is not valid for `{name}` (it \
                 names {}); set tls.server-name to one of those",
                if presented.is_empty() {
                    "nothing".to_owned()
                } else {
                    presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::Expired => {
                format!("TLS: the certificate of {peer} has expired")
            }
            CertificateError::ExpiredContext { time, not_after } => format!(
                "TLS: the certificate of {peer} has expired (valid until {}, today is {}; is this \
                 machine's clock right?)",
                date(not_after),
                date(time)
            ),
            CertificateError::NotValidYet => format!(
                "TLS: the certificate of {peer} is not valid yet; is this machine's clock right?"
            ),
            CertificateError::NotValidYetContext { time, not_before } => format!(
                "TLS: the certificate of {peer} is not valid yet (valid from {}, today is {}); is \
                 this machine's clock right?",
                date(not_before),
                date(time)
            ),
            CertificateError::Revoked => {
                format!("TLS: the certificate of {peer} has been revoked")
            }
            other => format!("TLS: the certificate of {peer} was rejected: {other:?}"),
        },
        E::AlertReceived(AlertDescription::CertificateRequired) => format!(
            "TLS: client certificate required: {peer} wants one; set tls.cert-file and \
             tls.key-file"
        ),
        E::AlertReceived(AlertDescription::HandshakeFailure) if !has_client_cert => format!(
            "TLS: {peer} refused the handshake; if it requires a client certificate, set \
             tls.cert-file and tls.key-file"
        ),
        E::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::DecryptError
            | AlertDescription::HandshakeFailure),
        ) if has_client_cert => format!(
            "TLS: {peer} rejected our client certificate ({a:?}); is tls.cert-file signed by a \
             CA the broker trusts, and still valid?"
        ),
        E::AlertReceived(a) => format!("TLS: {peer} ended the connection with the alert {a:?}"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "TLS: {peer} does not answer in TLS ({e}); is that port a TLS listener? (plain MQTT \
             is usually 1883, TLS 8883)"
        ),
        other => format!("TLS with {peer} failed: {other}"),
    }
}

/// `localhost` from rustls's `DnsName("localhost")`, `127.0.0.1` from
/// `IpAddress(127.0.0.1)`; anything else as it is.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests;
