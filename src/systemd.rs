//! systemd integration: `sd_notify` over the unix datagram socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract name starting with `@`), and the
//! watchdog interval from `WATCHDOG_USEC` / `WATCHDOG_PID`.
//!
//! Owns: the environment variables and the message format. Must not: block
//! the loop (the socket is nonblocking; a message that cannot be sent is
//! dropped with a debug line) or decide *when* to notify (that is `app`).
//! Without `NOTIFY_SOCKET` every call does nothing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The notification socket, if systemd gave us one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half the watchdog interval, if systemd expects pings from us.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. A socket
    /// that cannot be set up is logged and notifications are skipped.
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            match connect(&name) {
                Ok(t) => Some(t),
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET={name}: {e}; not notifying systemd");
                    None
                }
            }
        });
        let watchdog = target.as_ref().and_then(|_| {
            watchdog_interval(
                std::env::var("WATCHDOG_USEC").ok().as_deref(),
                std::env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            )
        });
        Notifier { target, watchdog }
    }

    /// A notifier that does nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), if at all.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`: start-up is complete.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// `STATUS=<line>`: shown by `systemctl status`.
    pub fn status(&self, line: &str) {
        self.send(&status_message(line));
    }

    /// `WATCHDOG=1`: the loop is alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STOPPING=1`: the stop sequence has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
                log::debug!("cannot notify systemd ({msg:?}): {e}");
            }
        }
    }
}

/// An unbound, nonblocking datagram socket and the address of `name`.
fn connect(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let addr = socket_address(name)?;
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    Ok((sock, addr))
}

/// `@name` is an abstract socket (Linux); anything else a path.
fn socket_address(name: &str) -> io::Result<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes())
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@...)",
        ))
    }
}

/// `STATUS=` with the line made single-line (newlines would start new
/// assignments in the notify protocol).
pub fn status_message(line: &str) -> String {
    let one_line: String = line
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={one_line}")
}

/// Half the watchdog interval, when `WATCHDOG_USEC` is set to a positive
/// number and `WATCHDOG_PID` is unset or names `our_pid`.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_runs_at_half_the_interval_and_only_for_our_pid() {
        let half = Some(Duration::from_millis(500));
        assert_eq!(watchdog_interval(Some("1000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("1000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn status_messages_are_one_line() {
        assert_eq!(status_message("a\nb\rc"), "STATUS=a b c");
    }

    #[test]
    fn socket_names_are_paths_or_abstract() {
        assert!(socket_address("/run/systemd/notify").is_ok());
        let a = socket_address("@attic-test").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(a.as_abstract_name(), Some(&b"attic-test"[..]));
        assert!(socket_address("relative").is_err());
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("attic-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            target: Some(connect(&format!("@{name}")).unwrap()),
            watchdog: None,
        };
        n.ready();
        n.status("x\ny");
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"READY=1");
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"STATUS=x y");
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let n = Notifier::disabled();
        n.ready();
        n.stopping();
        assert_eq!(n.watchdog_every(), None);
    }
}
