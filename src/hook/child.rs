//! One running hook process: started in its own process group with stdin
//! from `/dev/null`, reaped through a pidfd in the loop's poll (or, where
//! the kernel has no `pidfd_open`, by a `waitpid(WNOHANG)` every
//! [`POLL_EXIT`]), its stdout and stderr read from nonblocking pipes in
//! the same poll, line by line into Attic's log, bounded.
//!
//! ```text
//!   spawn --> running --exit (pidfd readable)--> ended { status, last stderr line }
//!                |--timeout--> SIGTERM to the group --5 s--> SIGKILL to the group
//! ```
//!
//! Owns: the process, its pidfd, its pipes and their line buffers. Must
//! not: block (no `wait`, no blocking read), or decide what a run means
//! (that is `hook`).

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Between SIGTERM and SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(5);

/// Without a pidfd, how often the exit is looked for.
pub const POLL_EXIT: Duration = Duration::from_millis(200);

/// Longest line of output logged (longer ones are cut).
const MAX_LINE: usize = 400;

/// Lines of output logged per run; the rest is read and dropped.
const MAX_LINES: u32 = 40;

/// The three tokens of one running hook.
#[derive(Debug, Clone, Copy)]
pub struct Tokens {
    /// The pidfd.
    pub exit: Token,
    /// The stdout pipe.
    pub out: Token,
    /// The stderr pipe.
    pub err: Token,
}

/// One output pipe and its partial line.
#[derive(Debug)]
struct Pipe {
    fd: OwnedFd,
    /// Bytes of the line being read (at most [`MAX_LINE`] kept).
    line: Vec<u8>,
    /// The line being read was already cut.
    cut: bool,
    /// Reached end of file (or an error): deregistered.
    closed: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The exit status.
    pub status: ExitStatus,
    /// It was ended at its timeout.
    pub timed_out: bool,
    /// The last line it wrote to stderr, if any.
    pub last_stderr: Option<String>,
    /// How long it ran.
    pub took: Duration,
}

/// One running hook process.
#[derive(Debug)]
pub struct Running {
    proc: std::process::Child,
    /// Its process group (= its pid).
    pgid: libc::pid_t,
    /// Readable once the process has exited; `None` without pidfd support.
    pidfd: Option<OwnedFd>,
    out: Pipe,
    err: Pipe,
    started: Instant,
    /// When SIGTERM is due (the timeout).
    term_at: Instant,
    /// When SIGKILL is due (after SIGTERM was sent).
    kill_at: Option<Instant>,
    timed_out: bool,
    /// Without a pidfd: when to look for the exit next.
    poll_at: Option<Instant>,
    last_stderr: Option<String>,
    /// Lines logged so far.
    logged: u32,
    /// Log lines start with this (`[stream] on-finish <file>:`).
    prefix: String,
    tokens: Tokens,
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `pidfd_open(pid, 0)`, or `None` where the kernel has no such call.
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: a plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Running {
    /// Starts `argv` with `env` added to Attic's environment. Costs one
    /// fork and exec on the loop; never waits for the hook.
    pub fn spawn(
        argv: &[String],
        env: &[(&str, String)],
        timeout: Duration,
        registry: &Registry,
        tokens: Tokens,
        prefix: String,
        now: Instant,
    ) -> io::Result<Running> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The loop blocks SIGINT, SIGTERM and SIGHUP for its signalfd, and
        // a blocked mask survives exec: the hook must get them unblocked,
        // or the SIGTERM of its timeout would wait for the SIGKILL.
        // SAFETY: the closure only calls sigemptyset and pthread_sigmask,
        // both async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                match libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) {
                    0 => Ok(()),
                    e => Err(io::Error::from_raw_os_error(e)),
                }
            });
        }
        let mut proc = cmd.spawn()?;
        let pid = libc::pid_t::try_from(proc.id()).unwrap_or(0);
        let pipes = (proc.stdout.take(), proc.stderr.take());
        let (Some(out), Some(err)) = pipes else {
            return Err(io::Error::other("no pipes to the hook"));
        };
        let out: OwnedFd = out.into();
        let err: OwnedFd = err.into();
        let pidfd = pidfd_open(pid);
        let mut running = Running {
            proc,
            pgid: pid,
            poll_at: pidfd.is_none().then(|| now + POLL_EXIT),
            pidfd,
            out: Pipe {
                fd: out,
                line: Vec::new(),
                cut: false,
                closed: false,
            },
            err: Pipe {
                fd: err,
                line: Vec::new(),
                cut: false,
                closed: false,
            },
            started: now,
            term_at: now + timeout,
            kill_at: None,
            timed_out: false,
            last_stderr: None,
            logged: 0,
            prefix,
            tokens,
        };
        running.register(registry)?;
        Ok(running)
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (pipe, token) in [(&self.out, self.tokens.out), (&self.err, self.tokens.err)] {
            set_nonblocking(pipe.fd.as_raw_fd())?;
            registry.register(
                &mut SourceFd(&pipe.fd.as_raw_fd()),
                token,
                Interest::READABLE,
            )?;
        }
        if let Some(fd) = &self.pidfd {
            registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                self.tokens.exit,
                Interest::READABLE,
            )?;
        }
        Ok(())
    }

    /// The process id (tests, log lines).
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// When [`on_timer`](Self::on_timer) must run next.
    pub fn next_deadline(&self) -> Instant {
        let signal = self.kill_at.unwrap_or(self.term_at);
        self.poll_at.map_or(signal, |p| p.min(signal))
    }

    /// Readiness of one of its tokens: reads output; returns how it ended
    /// once it has exited.
    pub fn on_ready(&mut self, registry: &Registry, token: Token, now: Instant) -> Option<Ended> {
        if token == self.tokens.out {
            self.read_pipe(registry, false);
        } else if token == self.tokens.err {
            self.read_pipe(registry, true);
        }
        self.try_end(registry, now)
    }

    /// Timeout (SIGTERM, then SIGKILL) and, without a pidfd, the look for
    /// its exit; returns how it ended once it has exited.
    pub fn on_timer(&mut self, registry: &Registry, now: Instant) -> Option<Ended> {
        if let Some(kill_at) = self.kill_at {
            if now >= kill_at {
                self.signal(libc::SIGKILL);
                // Nothing more to send; the exit comes through the pidfd.
                self.kill_at = Some(now + Duration::from_secs(3600));
            }
        } else if now >= self.term_at {
            log::warn!(
                "{} ran past its timeout of {} s; sending SIGTERM to its process group",
                self.prefix,
                (self.term_at - self.started).as_secs()
            );
            self.timed_out = true;
            self.signal(libc::SIGTERM);
            self.kill_at = Some(now + KILL_AFTER);
        }
        if self.poll_at.is_some_and(|p| now >= p) {
            self.poll_at = Some(now + POLL_EXIT);
        }
        self.try_end(registry, now)
    }

    /// SIGTERM to its process group now (the stop).
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    fn signal(&self, sig: libc::c_int) {
        if self.pgid > 0 {
            // SAFETY: kill(2) on our own child's process group.
            unsafe {
                libc::kill(-self.pgid, sig);
            }
        }
    }

    /// If the process has exited: the last output, deregistration, the end.
    fn try_end(&mut self, registry: &Registry, now: Instant) -> Option<Ended> {
        let status = match self.proc.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("{}: cannot wait for it: {e}", self.prefix);
                return None;
            }
        };
        self.read_pipe(registry, false);
        self.read_pipe(registry, true);
        self.close(registry);
        Some(Ended {
            status,
            timed_out: self.timed_out,
            last_stderr: self.last_stderr.take(),
            took: now.saturating_duration_since(self.started),
        })
    }

    /// Deregisters everything (the descriptors close when dropped).
    pub fn close(&mut self, registry: &Registry) {
        for pipe in [&mut self.out, &mut self.err] {
            if !pipe.closed {
                let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
                pipe.closed = true;
            }
        }
        if let Some(fd) = self.pidfd.take() {
            let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
    }

    /// Reads one pipe until it would block, logging whole lines.
    fn read_pipe(&mut self, registry: &Registry, stderr: bool) {
        let mut buf = [0u8; 4096];
        loop {
            let pipe = if stderr { &mut self.err } else { &mut self.out };
            if pipe.closed {
                return;
            }
            // SAFETY: the descriptor is owned by `pipe` and stays open for
            // the read; ManuallyDrop keeps the File from closing it.
            let mut file = std::mem::ManuallyDrop::new(unsafe {
                std::fs::File::from_raw_fd(pipe.fd.as_raw_fd())
            });
            match file.read(&mut buf) {
                Ok(0) => {
                    let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
                    pipe.closed = true;
                    if !pipe.line.is_empty() {
                        let line = std::mem::take(&mut pipe.line);
                        self.line(&line, stderr);
                    }
                    return;
                }
                Ok(n) => {
                    for &b in buf.get(..n).unwrap_or(&[]) {
                        let pipe = if stderr { &mut self.err } else { &mut self.out };
                        if b == b'\n' {
                            let line = std::mem::take(&mut pipe.line);
                            pipe.cut = false;
                            self.line(&line, stderr);
                        } else if pipe.line.len() < MAX_LINE {
                            pipe.line.push(b);
                        } else {
                            pipe.cut = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
                    pipe.closed = true;
                    return;
                }
            }
        }
    }

    /// One line of output: logged (bounded), and kept if it is stderr's.
    fn line(&mut self, bytes: &[u8], stderr: bool) {
        let text = String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_owned();
        if stderr && !text.trim().is_empty() {
            self.last_stderr = Some(text.clone());
        }
        self.logged += 1;
        if self.logged <= MAX_LINES {
            let stream = if stderr { "stderr" } else { "stdout" };
            log::info!("{} {stream}: {text}", self.prefix);
        } else if self.logged == MAX_LINES + 1 {
            log::info!("{}: further output is not logged", self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const TOKENS: Tokens = Tokens {
        exit: Token(10),
        out: Token(11),
        err: Token(12),
    };

    fn run_to_end(poll: &mut Poll, r: &mut Running, limit: Duration) -> Option<Ended> {
        let start = Instant::now();
        let mut events = Events::with_capacity(8);
        while start.elapsed() < limit {
            let now = Instant::now();
            let wait = r.next_deadline().saturating_duration_since(now);
            match poll.poll(&mut events, Some(wait.min(Duration::from_millis(100)))) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r.unwrap(),
            }
            let now = Instant::now();
            for ev in events.iter() {
                if let Some(end) = r.on_ready(poll.registry(), ev.token(), now) {
                    return Some(end);
                }
            }
            if let Some(end) = r.on_timer(poll.registry(), now) {
                return Some(end);
            }
        }
        None
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn a_hook_that_fails_ends_with_its_status_and_last_stderr_line() {
        let mut poll = Poll::new().unwrap();
        let argv = sh("echo hello; echo first >&2; echo \"$ATTIC_DAY\" >&2; exit 3");
        let env = [("ATTIC_DAY", "2026-12-03".to_owned())];
        let mut r = Running::spawn(
            &argv,
            &env,
            Duration::from_secs(30),
            poll.registry(),
            TOKENS,
            "[t] on-finish x".into(),
            Instant::now(),
        )
        .unwrap();
        let end = run_to_end(&mut poll, &mut r, Duration::from_secs(20)).unwrap();
        assert_eq!(end.status.code(), Some(3));
        assert!(!end.timed_out);
        assert_eq!(end.last_stderr.as_deref(), Some("2026-12-03"));
    }

    #[test]
    fn a_hook_past_its_timeout_is_ended_with_its_whole_process_group() {
        let mut poll = Poll::new().unwrap();
        // A child of the hook that would outlive it, in the same group.
        let dir = std::env::temp_dir().join(format!("attic-child-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let mut r = Running::spawn(
            &sh(&script),
            &[],
            Duration::from_millis(300),
            poll.registry(),
            TOKENS,
            "[t] on-finish y".into(),
            Instant::now(),
        )
        .unwrap();
        let t = Instant::now();
        let end = run_to_end(&mut poll, &mut r, Duration::from_secs(20)).unwrap();
        assert!(end.timed_out);
        assert!(!end.status.success());
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild got the SIGTERM too (it may linger as a zombie of
        // init for a moment: wait for it to go).
        let gone = (0..100).any(|_| {
            // SAFETY: signal 0 only checks for existence.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "));
            if alive {
                std::thread::sleep(Duration::from_millis(50));
            }
            !alive
        });
        assert!(gone, "the hook's child {pid} outlived the timeout");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn long_and_many_lines_are_bounded_in_the_log_and_the_last_stderr_line_is_cut() {
        let mut poll = Poll::new().unwrap();
        let argv = sh(
            "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done; head -c 5000 /dev/zero | tr '\\0' e >&2; exit 1",
        );
        let mut r = Running::spawn(
            &argv,
            &[],
            Duration::from_secs(30),
            poll.registry(),
            TOKENS,
            "[t] on-finish z".into(),
            Instant::now(),
        )
        .unwrap();
        let end = run_to_end(&mut poll, &mut r, Duration::from_secs(20)).unwrap();
        assert_eq!(end.status.code(), Some(1));
        assert_eq!(end.last_stderr.map(|s| s.len()), Some(MAX_LINE));
        assert_eq!(r.logged, 501);
    }

    #[test]
    fn a_hook_starts_with_no_signal_blocked_even_when_the_loop_blocks_its_own() {
        let got = std::thread::spawn(|| {
            // As `signals` does for the loop's thread.
            // SAFETY: plain sigset manipulation for this thread only.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
            let mut poll = Poll::new().unwrap();
            let mut r = Running::spawn(
                &sh("grep SigBlk /proc/self/status >&2"),
                &[],
                Duration::from_secs(30),
                poll.registry(),
                TOKENS,
                "[t] on-finish m".into(),
                Instant::now(),
            )
            .unwrap();
            run_to_end(&mut poll, &mut r, Duration::from_secs(20)).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(
            got.last_stderr.as_deref(),
            Some("SigBlk:\t0000000000000000")
        );
    }
}
