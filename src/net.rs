//! Nonblocking TCP for the loop: connect, finish a connect, read and write
//! until `WouldBlock`. No protocol knowledge here.

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
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
