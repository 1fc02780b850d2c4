//! TLS on a broker socket: a rustls `ClientConnection` driven nonblocking
//! from the loop, between the socket and the framing.
//!
//! ```text
//!   socket --read_tls--> ClientConnection --process_new_packets--> reader() --plaintext--> framing
//!   socket <--write_tls-- ClientConnection <--writer()-- outbox        (write_tls while wants_write)
//! ```
//!
//! Owns: [`Tls`], one link's TLS state across reconnects. Must not: block
//! (every call returns at `WouldBlock`), start a thread, or know MQTT.
//! Settings, certificates and the wording of failures are `crate::tls`.
//!
//! The handshake needs no state machine of ours: plaintext written before
//! it finishes is buffered by rustls and sent once it has, so the session
//! sends CONNECT as soon as TCP is up, and the CONNACK timeout covers the
//! handshake as well.

use super::{LinkError, ReadOutcome};
use crate::tls::{TlsSettings, client_config, server_name, words};
use bytes::{Buf, BytesMut};
use rustls::{ClientConfig, ClientConnection};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// A TLS failure put into words (inside an `io::Error`, so that the
/// transport's error path carries it unchanged): [`super::read_failure`]
/// logs it as it is, without a "read error" prefix.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    fn io(message: String) -> io::Error {
        io::Error::other(Failure(message))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

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
    /// TLS with `settings` to the broker at `peer` (`host:port`). The
    /// files are read here, at start-up, so that the loop reads them only
    /// again after a failed handshake (if they cannot be read now, the
    /// first connect says why).
    pub fn new(settings: TlsSettings, peer: String) -> Self {
        let config = client_config(&settings).ok();
        Tls {
            settings,
            peer,
            config,
            conn: None,
            failed: false,
            announced: false,
        }
    }

    /// A new TLS connection for a new socket. `Err` says why none can be
    /// made (a file went missing since start-up, ...).
    pub fn start(&mut self) -> Result<(), LinkError> {
        self.conn = None;
        self.failed = false;
        self.announced = false;
        let config = match &self.config {
            Some(c) => Arc::clone(c),
            None => {
                let c = client_config(&self.settings)
                    .map_err(|e| LinkError::TlsSetup(e.to_string()))?;
                self.config = Some(Arc::clone(&c));
                c
            }
        };
        let name = server_name(&self.settings.server_name)
            .map_err(|e| LinkError::TlsSetup(e.to_string()))?;
        let conn =
            ClientConnection::new(config, name).map_err(|e| LinkError::TlsSetup(e.to_string()))?;
        self.conn = Some(conn);
        Ok(())
    }

    /// The socket is about to close: a clean TLS close (close_notify, one
    /// try) unless the connection failed; then forget the connection.
    /// After a failure, or a connection that never finished its
    /// handshake, the files are read again at the next start.
    pub fn stop<S: Write>(&mut self, sock: Option<&mut S>) {
        let handshaking = self.conn.as_ref().is_some_and(|c| c.is_handshaking());
        if let (Some(conn), Some(sock), false) = (self.conn.as_mut(), sock, self.failed) {
            if !handshaking {
                conn.send_close_notify();
                let _ = conn.write_tls(sock);
            }
        }
        if self.failed || handshaking {
            self.config = None;
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
                        return Err(Failure::io(format!(
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
                        return Err(Failure::io(words::describe(&e, &self.settings, &self.peer)));
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
                    return Err(Failure::io(format!(
                        "TLS: {} broke off the TLS handshake ({e}); is that port a TLS \
                             listener? (plain MQTT is usually 1883, TLS 8883)",
                        self.peer
                    )));
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

#[cfg(test)]
mod tests;
