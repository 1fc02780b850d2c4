//! Signals as a poll source: SIGINT, SIGTERM and SIGHUP are blocked and read
//! from a `signalfd` (fine for a strictly single-threaded process).

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop gracefully.
    Stop,
    /// SIGHUP: finalise the current files now.
    Rotate,
}

/// The signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// Blocks SIGINT, SIGTERM and SIGHUP for this thread and opens a
    /// nonblocking signalfd for them. Call before any other thread exists.
    pub fn new() -> io::Result<Self> {
        // SAFETY: sigset_t is plain data; every libc call below gets valid
        // pointers to it, and the returned fd is owned exactly once.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Registers the signalfd with the loop.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    /// Reads every pending signal (edge-triggered: drain until EAGAIN).
    pub fn drain(&self, out: &mut Vec<Signal>) -> io::Result<()> {
        loop {
            // SAFETY: signalfd_siginfo is plain data; read writes at most its size.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: the buffer is valid for `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&raw mut info).cast::<libc::c_void>(),
                    size,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if usize::try_from(n).ok() != Some(size) {
                return Ok(());
            }
            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
            match signo {
                libc::SIGHUP => out.push(Signal::Rotate),
                libc::SIGINT | libc::SIGTERM => out.push(Signal::Stop),
                _ => {}
            }
        }
    }
}
