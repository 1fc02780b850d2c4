//! Host name resolution off the loop.
//!
//! The system resolver (`getaddrinfo`) has no nonblocking form: a dead DNS
//! server or an mDNS `.local` name can take seconds, and on the loop that
//! would freeze every stream and starve the systemd watchdog. So each
//! lookup runs on a short-lived thread that owns only that lookup and
//! reports back through a channel and a `mio::Waker`; the loop collects the
//! answers with [`Resolver::drain`] when the waker's token is ready.
//!
//! Owns: the lookup threads, the [`Resolve`] seam (so a test can inject a
//! slow resolver) and [`Addresses`], the walk over every address of one
//! answer. Must not: touch sockets, sessions or any loop state, or keep an
//! answer beyond the connect attempt it was asked for (no cache: every
//! reconnect resolves afresh, so a changed address is picked up).

use mio::{Token, Waker};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

/// Turns a host name and port into socket addresses. Runs on a lookup
/// thread, never on the loop, so it may block.
pub trait Resolve: Send + Sync + 'static {
    /// Every address of `host:port`, in the resolver's order of preference.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system resolver (`getaddrinfo`: `/etc/hosts`, DNS, mDNS via NSS).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// A resolver that waits `delay` before asking `inner`: what a dead DNS
/// server looks like. For tests (see [`from_env`]).
#[derive(Debug)]
pub struct Delayed<R> {
    /// The resolver that answers in the end.
    pub inner: R,
    /// How long each lookup takes at least.
    pub delay: Duration,
}

impl<R: Resolve> Resolve for Delayed<R> {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        std::thread::sleep(self.delay);
        self.inner.resolve(host, port)
    }
}

/// The environment variable that makes every host-name lookup take that
/// many milliseconds longer (a test hook: it lets an end-to-end test show
/// that a slow resolver never delays the loop). IP addresses are never
/// looked up, so they are not affected.
pub const DELAY_ENV: &str = "ATTIC_TEST_RESOLVE_DELAY_MS";

/// The system resolver, slowed down by [`DELAY_ENV`] when it is set.
pub fn from_env() -> Arc<dyn Resolve> {
    match std::env::var(DELAY_ENV).ok().and_then(|v| v.parse().ok()) {
        Some(ms) => {
            log::warn!("{DELAY_ENV} is set: every host name lookup takes {ms} ms longer");
            Arc::new(Delayed {
                inner: SystemResolver,
                delay: Duration::from_millis(ms),
            })
        }
        None => Arc::new(SystemResolver),
    }
}

/// One finished lookup.
#[derive(Debug)]
pub struct Answer {
    /// The connection that asked.
    pub token: Token,
    /// The request number [`Resolver::lookup`] returned; an answer whose
    /// number is no longer awaited (the connection was closed or asked
    /// again meanwhile) must be ignored.
    pub request: u64,
    /// The addresses, or why there are none.
    pub result: Result<Vec<SocketAddr>, String>,
}

/// The loop's end of the resolver: answers arrive here. Lookups are asked
/// through a [`ResolverHandle`], which each connection keeps a clone of.
#[derive(Debug)]
pub struct Resolver {
    /// Asks for lookups (the connections hold clones).
    handle: ResolverHandle,
    /// Answers from the lookup threads.
    rx: Receiver<Answer>,
}

/// Asks for lookups; cheap to clone, one per connection.
#[derive(Clone)]
pub struct ResolverHandle {
    /// The resolver every lookup thread calls.
    resolve: Arc<dyn Resolve>,
    /// Wakes the loop when an answer is ready.
    waker: Arc<Waker>,
    /// Lookup threads send their answers here.
    tx: Sender<Answer>,
    /// The number of the next request, shared by every clone.
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for ResolverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverHandle").finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver whose answers wake the loop through `waker` (mio allows
    /// one waker per poll: the loop shares it with the finaliser).
    pub fn new(waker: Arc<Waker>, resolve: Arc<dyn Resolve>) -> Self {
        let (tx, rx) = mpsc::channel();
        Resolver {
            handle: ResolverHandle {
                resolve,
                waker,
                tx,
                next: Arc::new(AtomicU64::new(1)),
            },
            rx,
        }
    }

    /// A handle for a connection to ask for lookups with.
    pub fn handle(&self) -> ResolverHandle {
        self.handle.clone()
    }

    /// Starts a lookup (see [`ResolverHandle::lookup`]).
    pub fn lookup(&mut self, token: Token, host: &str, port: u16) -> u64 {
        self.handle.lookup(token, host, port)
    }

    /// Every answer that has arrived, without waiting.
    pub fn drain(&mut self, out: &mut Vec<Answer>) {
        out.extend(self.rx.try_iter());
    }
}

impl ResolverHandle {
    /// Starts looking up `host:port` for the connection `token` and returns
    /// the request's number. The answer arrives through [`Resolver::drain`],
    /// at once for an IP address (no thread, no lookup). A thread that
    /// cannot be started is answered as a failed lookup.
    pub fn lookup(&self, token: Token, host: &str, port: u16) -> u64 {
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(ip) = literal(host) {
            self.answer(token, request, Ok(vec![SocketAddr::new(ip, port)]));
            return request;
        }
        let this = self.clone();
        let owned = host.to_owned();
        let spawned = std::thread::Builder::new()
            .name("attic-resolve".into())
            .spawn(move || {
                let result = match this.resolve.resolve(&owned, port) {
                    Ok(addrs) if addrs.is_empty() => Err(format!("{owned}: no address")),
                    Ok(addrs) => Ok(addrs),
                    Err(e) => Err(format!("cannot resolve {owned}: {e}")),
                };
                this.answer(token, request, result);
            });
        if let Err(e) = spawned {
            let why = format!("cannot start a lookup of {host}: {e}");
            self.answer(token, request, Err(why));
        }
        request
    }

    /// Sends an answer and wakes the loop (unless the loop is gone).
    fn answer(&self, token: Token, request: u64, result: Result<Vec<SocketAddr>, String>) {
        let answer = Answer {
            token,
            request,
            result,
        };
        if self.tx.send(answer).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// `host` as an IP address, if it is one (IPv6 also in brackets).
pub fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// The addresses of one answer, tried one after the other: a connect that
/// fails moves on to the next address; only when every address has failed
/// does the connection count as down (and the next attempt, after the
/// backoff, resolves again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    /// The answer's addresses, in the resolver's order.
    list: Vec<SocketAddr>,
    /// Index of the next address to try.
    next: usize,
}

impl Addresses {
    /// The addresses of one answer, none tried yet.
    pub fn new(list: Vec<SocketAddr>) -> Self {
        Addresses { list, next: 0 }
    }

    /// The next address to try, or `None` when every one has been tried.
    pub fn next_addr(&mut self) -> Option<SocketAddr> {
        let addr = self.list.get(self.next).copied();
        if addr.is_some() {
            self.next += 1;
        }
        addr
    }

    /// How many addresses the answer had.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The answer had no address.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Instant;

    const WAKE: Token = Token(7);

    /// Answers with fixed addresses after an optional delay, per host.
    struct Fixed {
        slow_host: &'static str,
        delay: Duration,
    }

    impl Resolve for Fixed {
        fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            if host == self.slow_host {
                std::thread::sleep(self.delay);
            }
            match host {
                "two.example" => Ok(vec![
                    SocketAddr::from(([127, 0, 0, 2], port)),
                    SocketAddr::from(([127, 0, 0, 1], port)),
                ]),
                "none.example" => Ok(Vec::new()),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "unknown host")),
            }
        }
    }

    /// Polls until `want` answers have arrived or `limit` has passed.
    fn wait_for(
        poll: &mut Poll,
        r: &mut Resolver,
        want: usize,
        limit: Duration,
    ) -> (Vec<Answer>, Duration) {
        let start = Instant::now();
        let mut events = Events::with_capacity(8);
        let mut got = Vec::new();
        while got.len() < want && start.elapsed() < limit {
            poll.poll(&mut events, Some(limit.saturating_sub(start.elapsed())))
                .unwrap();
            r.drain(&mut got);
        }
        (got, start.elapsed())
    }

    #[test]
    fn a_lookup_returns_at_once_and_the_answer_wakes_the_poll_with_every_address() {
        let mut poll = Poll::new().unwrap();
        let resolve = Arc::new(Fixed {
            slow_host: "two.example",
            delay: Duration::from_millis(300),
        });
        let mut r = Resolver::new(
            Arc::new(Waker::new(poll.registry(), WAKE).unwrap()),
            resolve,
        );
        let t = Instant::now();
        let id = r.lookup(Token(1), "two.example", 1883);
        assert!(t.elapsed() < Duration::from_millis(100), "lookup blocked");
        let (got, took) = wait_for(&mut poll, &mut r, 1, Duration::from_secs(5));
        assert!(took >= Duration::from_millis(300));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].token, got[0].request), (Token(1), id));
        let addrs = got[0].result.as_ref().unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[0], SocketAddr::from(([127, 0, 0, 2], 1883)));
    }

    #[test]
    fn a_slow_lookup_does_not_hold_back_the_answer_of_another() {
        let mut poll = Poll::new().unwrap();
        let resolve = Arc::new(Fixed {
            slow_host: "slow.example",
            delay: Duration::from_secs(5),
        });
        let mut r = Resolver::new(
            Arc::new(Waker::new(poll.registry(), WAKE).unwrap()),
            resolve,
        );
        r.lookup(Token(1), "slow.example", 1883);
        let fast = r.lookup(Token(2), "two.example", 1883);
        let (got, took) = wait_for(&mut poll, &mut r, 1, Duration::from_secs(3));
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].token, got[0].request), (Token(2), fast));
    }

    #[test]
    fn an_ip_address_is_answered_without_a_lookup_and_failures_say_why() {
        let mut poll = Poll::new().unwrap();
        let resolve = Arc::new(Fixed {
            slow_host: "",
            delay: Duration::ZERO,
        });
        let mut r = Resolver::new(
            Arc::new(Waker::new(poll.registry(), WAKE).unwrap()),
            resolve,
        );
        r.lookup(Token(1), "::1", 8883);
        r.lookup(Token(2), "none.example", 1);
        r.lookup(Token(3), "bad.example", 1);
        let (mut got, _) = wait_for(&mut poll, &mut r, 3, Duration::from_secs(5));
        got.sort_by_key(|a| a.token);
        assert_eq!(
            got[0].result.as_ref().unwrap(),
            &vec!["[::1]:8883".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            got[1].result.as_ref().unwrap_err(),
            "none.example: no address"
        );
        assert!(got[2].result.as_ref().unwrap_err().contains("unknown host"));
    }

    #[test]
    fn request_numbers_are_never_reused() {
        let poll = Poll::new().unwrap();
        let resolve = Arc::new(SystemResolver);
        let mut r = Resolver::new(
            Arc::new(Waker::new(poll.registry(), WAKE).unwrap()),
            resolve,
        );
        let a = r.lookup(Token(1), "127.0.0.1", 1);
        let b = r.lookup(Token(1), "127.0.0.1", 1);
        assert_ne!(a, b);
    }

    #[test]
    fn every_address_is_tried_once_in_order() {
        let a = SocketAddr::from(([10, 0, 0, 1], 1));
        let b = SocketAddr::from(([10, 0, 0, 2], 1));
        let mut addrs = Addresses::new(vec![a, b]);
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs.next_addr(), Some(a));
        assert_eq!(addrs.next_addr(), Some(b));
        assert_eq!(addrs.next_addr(), None);
        assert_eq!(addrs.next_addr(), None);
        assert!(Addresses::default().is_empty());
    }

    #[test]
    fn literals_are_recognised_with_and_without_brackets() {
        assert!(literal("127.0.0.1").is_some());
        assert!(literal("[::1]").is_some());
        assert!(literal("::1").is_some());
        assert!(literal("localhost").is_none());
        assert!(literal("pi.local").is_none());
    }
}
