//! Why a [`Link`](super::Link) failed: every variant prints as the reason
//! in the session's log line (`connection closed: <reason>; retrying in
//! ...`), in the words users and tests look for.
//!
//! Owns: those reasons and their words. Must not: decide what follows (the
//! session backs off and reconnects).

use std::fmt;
use std::io;

/// Why a link could not be opened, or failed once open.
#[derive(Debug)]
pub enum LinkError {
    /// The TLS connection could not be set up (a file went missing since
    /// start-up, ...): `TLS setup: <detail>`.
    TlsSetup(String),
    /// A host name, but no resolver to look it up.
    NoResolver {
        /// The host name.
        host: String,
    },
    /// The lookup of the host name failed, in the resolver's words.
    Lookup(String),
    /// Connecting to one address failed (the last of an attempt is
    /// reported).
    Connect {
        /// The address (or `host:port`).
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// The lookup gave no address to connect to.
    NoAddress {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// Reading failed (a TLS failure is its own sentence, see
    /// [`read_failure`](super::read_failure)).
    Read(io::Error),
    /// Writing failed.
    Write(io::Error),
    /// The socket could not go back into the poll set.
    Register(io::Error),
    /// The broker closed the connection.
    Closed,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::TlsSetup(detail) => write!(f, "TLS setup: {detail}"),
            LinkError::NoResolver { host } => write!(f, "cannot resolve {host}: no resolver"),
            LinkError::Lookup(words) => f.write_str(words),
            LinkError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            LinkError::NoAddress { host, port } => {
                write!(f, "cannot connect to {host}:{port}: no address")
            }
            LinkError::Read(e) => f.write_str(&super::read_failure(e)),
            LinkError::Write(e) => write!(f, "write error: {e}"),
            LinkError::Register(e) => write!(f, "cannot register socket: {e}"),
            LinkError::Closed => f.write_str("the broker closed the connection"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Connect { source, .. } => Some(source),
            LinkError::Read(e) | LinkError::Write(e) | LinkError::Register(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_prints_the_words_of_the_log_line() {
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        let cases = [
            (
                LinkError::TlsSetup("tls.ca-file: gone".into()),
                "TLS setup: tls.ca-file: gone".to_owned(),
            ),
            (
                LinkError::NoResolver {
                    host: "broker.lan".into(),
                },
                "cannot resolve broker.lan: no resolver".to_owned(),
            ),
            (
                LinkError::Lookup("cannot resolve x: no such host".into()),
                "cannot resolve x: no such host".to_owned(),
            ),
            (
                LinkError::Connect {
                    addr: "127.0.0.1:1".into(),
                    source: refused(),
                },
                format!("cannot connect to 127.0.0.1:1: {}", refused()),
            ),
            (
                LinkError::NoAddress {
                    host: "b".into(),
                    port: 1883,
                },
                "cannot connect to b:1883: no address".to_owned(),
            ),
            (
                LinkError::Read(refused()),
                format!("read error: {}", refused()),
            ),
            (
                LinkError::Write(refused()),
                format!("write error: {}", refused()),
            ),
            (
                LinkError::Register(refused()),
                format!("cannot register socket: {}", refused()),
            ),
            (
                LinkError::Closed,
                "the broker closed the connection".to_owned(),
            ),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
    }
}
