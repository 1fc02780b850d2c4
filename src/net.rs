//! Nonblocking TCP for the loop: connect, finish a connect, read and write
//! until `WouldBlock`, and [`Link`], a connection with its poll
//! registration. No protocol knowledge here.
//!
//! With `tls:`, [`tls`] sits between the socket and the caller: [`Link::read`]
//! returns plaintext and [`Link::flush`] takes plaintext, so the framing
//! above never knows whether the connection is encrypted.

pub mod tls;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

/// Starts a nonblocking connect to `host:port`.
///
/// An IP address is used as is; a host name is resolved with the system
/// resolver, which blocks (for `/etc/hosts` names such as `localhost` this
/// is immediate; a slow DNS server would stall the loop for that long).
pub fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let addr: SocketAddr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port).to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"))
        })?,
    };
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether a nonblocking connect has finished: `Ok(true)` connected,
/// `Ok(false)` still in progress, `Err` failed. (mio: a connect is done only
/// when `take_error` is clear and `peer_addr` answers.)
pub fn connect_finished(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The outcome of one read.
#[derive(Debug)]
pub enum ReadOutcome {
    /// `n` bytes were read into the buffer.
    Data(usize),
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed the connection.
    Closed,
}

/// Why a read failed, for the log: a TLS failure as its own sentence,
/// anything else as `read error: ...`.
pub fn read_failure(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<tls::Failure>())
    {
        Some(failure) => failure.to_string(),
        None => format!("read error: {e}"),
    }
}

/// One `read`, retrying `Interrupted`.
pub fn read_once(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        return match stream.read(buf) {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// Writes as much of `out` as the socket takes and advances past it.
/// `Ok(true)` when everything was written.
pub fn write_some(stream: &mut TcpStream, out: &mut BytesMut) -> io::Result<bool> {
    while !out.is_empty() {
        match stream.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One broker connection as the loop holds it: the socket, its poll token
/// and the interest registered for it. Shared by the streams and the
/// report publisher; knows nothing of MQTT.
#[derive(Debug)]
pub struct Link {
    /// Broker host name or address.
    host: String,
    /// Broker port.
    port: u16,
    /// The poll token of this connection.
    token: Token,
    /// The socket, while a connection is wanted.
    socket: Option<TcpStream>,
    /// The nonblocking connect has not finished yet.
    connecting: bool,
    /// WRITABLE interest is wanted (only while bytes wait to be written).
    want_write: bool,
    /// Out of the poll set for a while (read coalescing).
    parked: bool,
    /// `tls:`: the TLS layer over the socket; `None` = plain TCP.
    tls: Option<tls::Tls>,
}

impl Link {
    /// A closed link to `host:port`, registered under `token` once opened.
    pub fn new(host: &str, port: u16, token: Token) -> Self {
        Link {
            host: host.to_owned(),
            port,
            token,
            socket: None,
            connecting: false,
            want_write: false,
            parked: false,
            tls: None,
        }
    }

    /// The same link with TLS over every connection it opens (`None`:
    /// plain TCP).
    pub fn with_tls(mut self, settings: Option<crate::tls::TlsSettings>) -> Self {
        let peer = format!("{}:{}", self.host, self.port);
        self.tls = settings.map(|s| tls::Tls::new(s, peer));
        self
    }

    /// Starts a connect and registers the socket. `Err` says why (the caller
    /// reports the transport as down).
    pub fn open(&mut self, registry: &Registry) -> Result<(), String> {
        self.close(registry);
        if let Some(tls) = self.tls.as_mut() {
            tls.start()?;
        }
        let mut sock = connect(&self.host, self.port)
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        registry
            .register(
                &mut sock,
                self.token,
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("cannot register socket: {e}"))?;
        self.socket = Some(sock);
        self.connecting = true;
        self.want_write = true;
        Ok(())
    }

    /// Closes the socket, if any.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(tls) = self.tls.as_mut() {
            tls.stop(self.socket.as_mut().filter(|_| !self.connecting));
        }
        if let Some(mut sock) = self.socket.take() {
            // The socket is closed right after; closing also removes it
            // from epoll, so a failed deregister does not matter.
            if !self.parked {
                let _ = registry.deregister(&mut sock);
            }
        }
        self.connecting = false;
        self.want_write = false;
        self.parked = false;
    }

    /// A socket is open (connecting or connected).
    pub fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// After a readiness event while connecting: `Ok(true)` the connect
    /// has just finished, `Ok(false)` nothing to do (still connecting, or
    /// connected long ago), `Err` it failed (with the reason).
    pub fn finish_connect(&mut self) -> Result<bool, String> {
        if !self.connecting {
            return Ok(false);
        }
        let Some(sock) = &self.socket else {
            return Ok(false);
        };
        match connect_finished(sock) {
            Ok(true) => {
                self.connecting = false;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            )),
        }
    }

    /// The connect is still in progress.
    pub fn is_connecting(&self) -> bool {
        self.connecting
    }

    /// One read (see [`read_once`]); a closed link reads as `Closed`.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        match (self.socket.as_mut(), self.tls.as_mut()) {
            (Some(sock), Some(tls)) => tls.read(sock, buf),
            (Some(sock), None) => read_once(sock, buf),
            (None, _) => Ok(ReadOutcome::Closed),
        }
    }

    /// Writes as much of `out` as the socket takes; holds WRITABLE interest
    /// only while bytes remain. `Err` says why the connection failed.
    pub fn flush(&mut self, registry: &Registry, out: &mut BytesMut) -> Result<(), String> {
        if self.connecting {
            return Ok(());
        }
        let Some(sock) = self.socket.as_mut() else {
            return Ok(());
        };
        let done = match self.tls.as_mut() {
            Some(tls) => tls.write(sock, out),
            None => write_some(sock, out),
        }
        .map_err(|e| format!("write error: {e}"))?;
        if self.parked {
            // The interest is set when the socket goes back in the poll set.
            self.want_write = !done;
        } else if done == self.want_write {
            let interest = if done {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            if registry.reregister(sock, self.token, interest).is_ok() {
                self.want_write = !done;
            }
        }
        Ok(())
    }

    /// Bytes taken by [`Link::flush`] still wait for the socket (TLS
    /// records; plain TCP hands everything to the kernel or keeps it in
    /// `out`).
    pub fn unsent(&self) -> bool {
        self.socket.is_some() && self.tls.as_ref().is_some_and(tls::Tls::unsent)
    }

    /// Takes the socket out of the poll set (no events until `unpark`).
    pub fn park(&mut self, registry: &Registry) -> bool {
        if self.parked {
            return false;
        }
        let Some(sock) = self.socket.as_mut() else {
            return false;
        };
        self.parked = registry.deregister(sock).is_ok();
        self.parked
    }

    /// Puts a parked socket back into the poll set.
    pub fn unpark(&mut self, registry: &Registry) -> Result<(), String> {
        if !self.parked {
            return Ok(());
        }
        self.parked = false;
        let interest = if self.want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self.socket.as_mut() {
            Some(sock) => registry
                .register(sock, self.token, interest)
                .map_err(|e| format!("cannot register socket: {e}")),
            None => Ok(()),
        }
    }
}
