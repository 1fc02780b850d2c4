//! Nonblocking TCP for the loop: connect, finish a connect, read and write
//! until `WouldBlock`, and [`Link`], a connection with its poll
//! registration. No protocol knowledge here.
//!
//! A host name is never resolved here: [`Link::open`] asks the resolver
//! (off the loop, see `resolve`) and connects when the answer comes back
//! ([`Link::on_resolved`]), trying every address in turn. An IP address is
//! connected to at once.
//!
//! With `tls:`, [`tls`] sits between the socket and the caller: [`Link::read`]
//! returns plaintext and [`Link::flush`] takes plaintext, so the framing
//! above never knows whether the connection is encrypted.

mod error;
pub mod tls;

pub use error::LinkError;

use crate::resolve::{self, Addresses, Answer, ResolverHandle};
use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Starts a nonblocking connect to `addr`.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
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
    /// Asks for host-name lookups (off the loop); `None` until
    /// [`Link::set_resolver`], and then only IP addresses can be opened.
    resolver: Option<ResolverHandle>,
    /// The lookup this link waits for (an answer with another number is
    /// stale and ignored).
    resolving: Option<u64>,
    /// The addresses of the current attempt not tried yet.
    addrs: Addresses,
    /// Why the last address failed (reported when none is left).
    last_error: Option<LinkError>,
    /// The address being connected to.
    current: Option<SocketAddr>,
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
            resolver: None,
            resolving: None,
            addrs: Addresses::default(),
            last_error: None,
            current: None,
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

    /// Host names are resolved through `resolver` (off the loop).
    pub fn set_resolver(&mut self, resolver: ResolverHandle) {
        self.resolver = Some(resolver);
    }

    /// Starts a connection attempt: an IP address is connected to at once;
    /// a host name is looked up off the loop and connected to when
    /// [`on_resolved`](Self::on_resolved) brings the answer. `Err` says why
    /// (the caller reports the transport as down).
    pub fn open(&mut self, registry: &Registry) -> Result<(), LinkError> {
        self.close(registry);
        if let Some(tls) = self.tls.as_mut() {
            // Nothing is sent before a connect finishes, so one TLS
            // connection serves every address of the attempt.
            tls.start()?;
        }
        if let Some(ip) = resolve::literal(&self.host) {
            self.addrs = Addresses::new(vec![SocketAddr::new(ip, self.port)]);
            return self.connect_next(registry);
        }
        match &self.resolver {
            Some(r) => {
                self.resolving = Some(r.lookup(self.token, &self.host, self.port));
                Ok(())
            }
            None => Err(LinkError::NoResolver {
                host: self.host.clone(),
            }),
        }
    }

    /// A lookup finished. A stale answer (the link was closed or opened
    /// again since) is ignored: `Ok(false)`. Otherwise the first address
    /// is connected to: `Ok(true)`; `Err` if the lookup failed or no
    /// address could be connected to.
    pub fn on_resolved(&mut self, registry: &Registry, answer: Answer) -> Result<bool, LinkError> {
        if self.resolving != Some(answer.request) {
            return Ok(false);
        }
        self.resolving = None;
        self.addrs = Addresses::new(answer.result.map_err(LinkError::Lookup)?);
        self.connect_next(registry).map(|()| true)
    }

    /// A lookup is in progress.
    pub fn is_resolving(&self) -> bool {
        self.resolving.is_some()
    }

    /// Connects to the next untried address of the current attempt.
    fn connect_next(&mut self, registry: &Registry) -> Result<(), LinkError> {
        if let Some(mut sock) = self.socket.take() {
            let _ = registry.deregister(&mut sock);
        }
        while let Some(addr) = self.addrs.next_addr() {
            let registered = connect(addr).and_then(|mut sock| {
                registry.register(
                    &mut sock,
                    self.token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(sock)
            });
            match registered {
                Ok(sock) => {
                    self.current = Some(addr);
                    self.socket = Some(sock);
                    self.connecting = true;
                    self.want_write = true;
                    return Ok(());
                }
                Err(source) => {
                    self.last_error = Some(LinkError::Connect {
                        addr: addr.to_string(),
                        source,
                    });
                }
            }
        }
        self.connecting = false;
        Err(self
            .last_error
            .take()
            .unwrap_or_else(|| LinkError::NoAddress {
                host: self.host.clone(),
                port: self.port,
            }))
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
        self.resolving = None;
        self.addrs = Addresses::default();
        self.last_error = None;
    }

    /// A socket is open (connecting or connected).
    pub fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// Bytes have arrived that nobody has read yet (they wait in the
    /// kernel while the owner does not read): the peer was alive.
    pub fn has_unread_bytes(&self) -> bool {
        let Some(socket) = self.socket.as_ref() else {
            return false;
        };
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD on an open socket writes one c_int.
        let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut n) };
        rc == 0 && n > 0
    }

    /// After a readiness event while connecting: `Ok(true)` the connect
    /// has just finished, `Ok(false)` nothing to do (still connecting, or
    /// connected long ago, or that address failed and the next one is being
    /// tried), `Err` it failed on every address (with the last reason).
    pub fn finish_connect(&mut self, registry: &Registry) -> Result<bool, LinkError> {
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
            Err(source) => {
                let addr = self
                    .current
                    .map_or_else(|| format!("{}:{}", self.host, self.port), |a| a.to_string());
                self.last_error = Some(LinkError::Connect { addr, source });
                self.connect_next(registry).map(|()| false)
            }
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
    pub fn flush(&mut self, registry: &Registry, out: &mut BytesMut) -> Result<(), LinkError> {
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
        .map_err(LinkError::Write)?;
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
    pub fn unpark(&mut self, registry: &Registry) -> Result<(), LinkError> {
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
                .map_err(LinkError::Register),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::{Resolver, SystemResolver};
    use mio::{Events, Poll, Waker};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A loopback address nobody listens on.
    fn dead_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// A link to a host name (never really looked up: the test answers),
    /// opened and waiting for its lookup.
    fn resolving_link(poll: &Poll, port: u16) -> (Link, Resolver) {
        let waker = Arc::new(Waker::new(poll.registry(), Token(99)).unwrap());
        let resolver = Resolver::new(waker, Arc::new(SystemResolver));
        let mut link = Link::new("broker.invalid", port, Token(1));
        link.set_resolver(resolver.handle());
        link.open(poll.registry()).unwrap();
        assert!(link.is_resolving() && !link.is_open());
        (link, resolver)
    }

    /// Polls until the connect finishes (`Ok`) or fails on every address.
    fn drive(poll: &mut Poll, link: &mut Link) -> Result<(), LinkError> {
        let mut events = Events::with_capacity(8);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            if link.finish_connect(poll.registry())? {
                return Ok(());
            }
        }
        panic!("the connect neither finished nor failed");
    }

    #[test]
    fn a_refused_address_is_followed_by_the_next_one_of_the_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let good = listener.local_addr().unwrap();
        let mut poll = Poll::new().unwrap();
        let (mut link, _resolver) = resolving_link(&poll, good.port());
        let request = link.resolving.unwrap();
        let answer = Answer {
            token: Token(1),
            request,
            result: Ok(vec![dead_addr(), good]),
        };
        assert!(matches!(
            link.on_resolved(poll.registry(), answer),
            Ok(true)
        ));
        drive(&mut poll, &mut link).unwrap();
        listener.accept().unwrap();
        // The late answer of the real lookup is stale: ignored.
        let stale = Answer {
            token: Token(1),
            request,
            result: Err("late".into()),
        };
        assert!(matches!(
            link.on_resolved(poll.registry(), stale),
            Ok(false)
        ));
        assert!(link.is_open());
    }

    #[test]
    fn when_every_address_fails_the_last_reason_is_given() {
        let mut poll = Poll::new().unwrap();
        let (a, b) = (dead_addr(), dead_addr());
        let (mut link, _resolver) = resolving_link(&poll, a.port());
        let request = link.resolving.unwrap();
        let answer = Answer {
            token: Token(1),
            request,
            result: Ok(vec![a, b]),
        };
        let opened = link.on_resolved(poll.registry(), answer);
        let why = match opened {
            Ok(true) => drive(&mut poll, &mut link).unwrap_err(),
            other => other.unwrap_err(),
        };
        assert!(why.to_string().contains(&b.to_string()), "{why}");
    }

    #[test]
    fn a_failed_lookup_fails_the_attempt_and_a_close_forgets_the_lookup() {
        let poll = Poll::new().unwrap();
        let (mut link, _resolver) = resolving_link(&poll, 1883);
        let request = link.resolving.unwrap();
        let failed = Answer {
            token: Token(1),
            request,
            result: Err("cannot resolve broker.invalid: no such host".into()),
        };
        assert!(matches!(
            link.on_resolved(poll.registry(), failed),
            Err(LinkError::Lookup(words)) if words == "cannot resolve broker.invalid: no such host"
        ));
        link.open(poll.registry()).unwrap();
        let request = link.resolving.unwrap();
        link.close(poll.registry());
        assert!(!link.is_resolving());
        let late = Answer {
            token: Token(1),
            request,
            result: Ok(vec![dead_addr()]),
        };
        assert!(matches!(link.on_resolved(poll.registry(), late), Ok(false)));
        assert!(!link.is_open());
    }
}
