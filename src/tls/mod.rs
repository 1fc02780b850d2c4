//! TLS settings and certificates: what `tls:` says ([`TlsSettings`]),
//! reading and checking its PEM files, and the rustls client configuration
//! built from them (roots from `ca-file` or the OS store, an optional client
//! certificate, the `ring` crypto provider). [`words`] puts TLS failures
//! into one line.
//!
//! Owns: everything about certificates and keys. Must not: open sockets or
//! drive a connection (that is `net::tls`), or read the YAML (config builds
//! a [`TlsSettings`] and calls the loaders here to check the files, so
//! `attic check` and a connect read them alike).

pub mod words;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
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
    /// Where the settings came from, so that a failure names the setting
    /// the user can change.
    pub origin: Origin,
}

/// Where [`TlsSettings`] came from: a `tls:` block of the config, or the
/// flags of `attic replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// A `tls:` block (`tls.ca-file`, `tls.server-name`, ...).
    #[default]
    Config,
    /// `attic replay --tls-ca-file / --tls / --broker`.
    ReplayFlags,
}

impl Origin {
    /// The name of the setting that holds the CA certificates.
    pub fn ca_file(self) -> &'static str {
        match self {
            Origin::Config => "tls.ca-file",
            Origin::ReplayFlags => "--tls-ca-file",
        }
    }

    /// What to change for another certificate name.
    pub fn server_name(self) -> &'static str {
        match self {
            Origin::Config => "set tls.server-name to",
            Origin::ReplayFlags => "give --broker as",
        }
    }

    /// What to set for a client certificate.
    pub fn client_cert(self) -> &'static str {
        match self {
            Origin::Config => "set tls.cert-file and tls.key-file",
            Origin::ReplayFlags => {
                "attic replay has no client certificate option; use a broker listener without one"
            }
        }
    }
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
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
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
                    rustls::Error::InvalidCertificate(why) => {
                        SetupError::CertFile(unusable_certificate(cert, &why))
                    }
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

/// Why the certificate in `path` cannot be used, for a person.
fn unusable_certificate(path: &Path, why: &rustls::CertificateError) -> String {
    let detail = format!("{why:?}");
    if detail.contains("UnsupportedCertVersion") {
        format!(
            "`{}` is an X.509 version 1 certificate, which TLS refuses; issue it with \
             extensions (for openssl: `-extfile` with `extendedKeyUsage=clientAuth`)",
            path.display()
        )
    } else {
        format!(
            "`{}` is not a usable certificate ({detail})",
            path.display()
        )
    }
}

#[cfg(test)]
pub(crate) mod test_pki;
#[cfg(test)]
mod tests;
