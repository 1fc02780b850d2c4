//! `Mosquitto`: a real mosquitto on 127.0.0.1 and a free port, with its
//! config, log and persistence in a `TempDir`. Stop (SIGTERM, which saves
//! persistence), kill (SIGKILL) and restart on the same port. Optionally a
//! second, TLS listener on its own free port ([`TlsListener`]).

use super::{TempDir, tail, wait_for};
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long mosquitto may take to listen or to stop.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the mosquitto binary: `$PATH`, then `/usr/sbin` and `/usr/local/sbin`
/// (Debian installs it in /usr/sbin, often not on a non-root PATH).
pub fn mosquitto_path() -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("mosquitto not found on PATH: apt-get install mosquitto"))
}

/// Asks the kernel for a free port on 127.0.0.1 (bind to port 0, then release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr().expect("local_addr of probe listener").port()
}

/// Options for the broker's config file; `Mosquitto::builder()` starts one.
#[derive(Debug, Clone, Default)]
pub struct MosquittoBuilder {
    /// `persistence true` + `persistence_location` in the temp dir.
    persistence: bool,
    /// `autosave_interval` in seconds (only with persistence).
    autosave_interval: Option<u32>,
    /// `max_queued_messages` (mosquitto's default is 1000; 0 = unlimited).
    max_queued_messages: Option<u32>,
    /// `max_inflight_messages` (mosquitto's default is 20).
    max_inflight_messages: Option<u32>,
    /// Any further config lines, written verbatim.
    extra: Vec<String>,
    /// A second listener with TLS, besides the plain one.
    tls: Option<TlsListener>,
}

/// The files and options of a TLS listener (mosquitto's `cafile`,
/// `certfile`, `keyfile`, `require_certificate`).
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// CA that signed the client certificates it accepts.
    pub cafile: PathBuf,
    /// The broker's certificate (PEM).
    pub certfile: PathBuf,
    /// The broker's private key (PEM).
    pub keyfile: PathBuf,
    /// Refuse clients without a certificate signed by `cafile`.
    pub require_certificate: bool,
}

impl MosquittoBuilder {
    /// Keep retained messages and persistent sessions across a stop/restart.
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }
    /// Seconds between automatic saves of the persistence file.
    pub fn autosave_interval(mut self, secs: u32) -> Self {
        self.autosave_interval = Some(secs);
        self
    }
    /// Per-client queue limit for QoS 1/2 messages (0 = no limit).
    pub fn max_queued_messages(mut self, n: u32) -> Self {
        self.max_queued_messages = Some(n);
        self
    }
    /// Per-client limit of unacknowledged outgoing QoS 1/2 messages.
    pub fn max_inflight_messages(mut self, n: u32) -> Self {
        self.max_inflight_messages = Some(n);
        self
    }
    /// Also listen with TLS on a second free port ([`Mosquitto::tls_port`]).
    pub fn tls_listener(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Adds a verbatim config line, e.g. `"max_packet_size 1000"`.
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// Writes the config and starts the broker; retries on a new port if the
    /// chosen one was taken in between.
    pub fn start(self) -> Mosquitto {
        let dir = TempDir::new("mosquitto");
        let mut m = Mosquitto {
            exe: mosquitto_path(),
            config_path: dir.join("mosquitto.conf"),
            log_path: dir.join("mosquitto.log"),
            stderr_path: dir.join("mosquitto.stderr"),
            child: None,
            port: 0,
            tls_port: None,
            dir,
        };
        let mut attempt = 0;
        loop {
            m.port = free_port();
            m.tls_port = self.tls.as_ref().map(|_| free_port());
            let mut text = self.config_text(m.port, m.dir.path());
            if let (Some(tls), Some(port)) = (&self.tls, m.tls_port) {
                // Last, so that these per-listener options apply to it.
                text.push_str(&format!(
                    "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                    tls.cafile.display(),
                    tls.certfile.display(),
                    tls.keyfile.display(),
                    tls.require_certificate
                ));
            }
            std::fs::write(&m.config_path, text).expect("write mosquitto.conf");
            match m.spawn_and_wait_listening(BROKER_TIMEOUT) {
                Ok(()) => return m,
                // Someone took the port between our probe and mosquitto's bind.
                Err(log) if log.contains("in use") && attempt < 5 => attempt += 1,
                Err(log) => panic!(
                    "mosquitto did not start (config and log in {}):\n{}",
                    m.dir.path().display(),
                    tail(&log, 30)
                ),
            }
        }
    }

    fn config_text(&self, port: u16, dir: &Path) -> String {
        let mut c = String::new();
        c.push_str(&format!("listener {port} 127.0.0.1\n"));
        c.push_str("allow_anonymous true\n");
        c.push_str(&format!(
            "log_dest file {}\n",
            dir.join("mosquitto.log").display()
        ));
        c.push_str("log_type all\n");
        c.push_str("log_timestamp_format %H:%M:%S\n");
        // As root, mosquitto drops to user "mosquitto" and could no longer
        // write the log or persistence files in our temp dir.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            c.push_str("user root\n");
        }
        if self.persistence {
            c.push_str("persistence true\n");
            // The trailing slash matters: mosquitto appends the file name as is.
            c.push_str(&format!("persistence_location {}/\n", dir.display()));
            c.push_str("persistence_file mosquitto.db\n");
            if let Some(s) = self.autosave_interval {
                c.push_str(&format!("autosave_interval {s}\n"));
            }
        }
        if let Some(n) = self.max_queued_messages {
            c.push_str(&format!("max_queued_messages {n}\n"));
        }
        if let Some(n) = self.max_inflight_messages {
            c.push_str(&format!("max_inflight_messages {n}\n"));
        }
        for line in &self.extra {
            c.push_str(line);
            c.push('\n');
        }
        c
    }
}

/// A running (or stopped, restartable) mosquitto. Dropping it kills it.
#[derive(Debug)]
pub struct Mosquitto {
    /// The mosquitto binary found by [`mosquitto_path`].
    exe: PathBuf,
    /// `mosquitto.conf` in `dir`; kept for restarts.
    config_path: PathBuf,
    /// mosquitto's own log (`log_dest file`), appended across restarts.
    log_path: PathBuf,
    /// stdout+stderr: start-up errors happen before the log file is opened.
    stderr_path: PathBuf,
    /// The process, `None` once stopped or killed.
    child: Option<Child>,
    /// Listening port, the same across restarts.
    port: u16,
    /// The TLS listener's port, if it has one.
    tls_port: Option<u16>,
    /// Holds config, logs and persistence; kept if the test fails.
    dir: TempDir,
}

impl Mosquitto {
    /// A broker with the default config (no persistence).
    pub fn start() -> Mosquitto {
        Mosquitto::builder().start()
    }

    /// Config options before starting.
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS listener's port; panics if it was started without one.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("this mosquitto has no TLS listener (MosquittoBuilder::tls_listener)")
    }

    /// The folder with config, logs and persistence file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of mosquitto's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// mosquitto's log plus anything it printed to stdout/stderr.
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(&self.stderr_path).unwrap_or_default());
        s
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// SIGTERM and wait for exit (with persistence, mosquitto saves its
    /// database on SIGTERM). Panics if it does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// SIGKILL and wait: a crash, nothing is saved.
    pub fn kill(&mut self) -> ExitStatus {
        self.signal_and_wait(libc::SIGKILL)
    }

    /// Stops the broker if it runs, then starts it again on the same port
    /// with the same config and persistence.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let deadline = Instant::now() + BROKER_TIMEOUT;
        loop {
            match self.spawn_and_wait_listening(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(()) => return,
                Err(log) if log.contains("in use") && Instant::now() < deadline => {
                    // The old socket is still bound; try again shortly.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(log) => panic!(
                    "mosquitto did not restart on port {} (log: {}):\n{}",
                    self.port,
                    self.log_path.display(),
                    tail(&log, 30)
                ),
            }
        }
    }

    fn signal_and_wait(&mut self, sig: libc::c_int) -> ExitStatus {
        let port = self.port;
        let log = self.log_path.display().to_string();
        let Some(child) = self.child.as_mut() else {
            panic!("mosquitto on port {port} is not running (log: {log})");
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
        unsafe { libc::kill(pid, sig) };
        // The child stays in `self` until it exited, so a timeout panic
        // still kills it in Drop.
        let status = wait_for(
            BROKER_TIMEOUT,
            format_args!("mosquitto on port {port} to exit after signal {sig} (log: {log})"),
            || child.try_wait().expect("try_wait on mosquitto"),
        );
        self.child = None;
        status
    }

    /// Spawns the process and waits until the port accepts connections.
    /// Err(log text) if the process exits first.
    fn spawn_and_wait_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open mosquitto.stderr");
        let child = Command::new(&self.exe)
            .arg("-c")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone file handle")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.exe.display()));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let port = self.port;
        let log_path = self.log_path.display().to_string();
        let mut exited = false;
        wait_for(
            timeout,
            format_args!("mosquitto to listen on port {port} (log: {log_path})"),
            || {
                let child = self.child.as_mut().expect("child just spawned");
                if child.try_wait().expect("try_wait on mosquitto").is_some() {
                    exited = true;
                    return Some(());
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                    .ok()
                    .map(|_| ())
            },
        );
        if exited {
            self.child = None;
            return Err(self.log());
        }
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("mosquitto log: {}", self.log_path.display());
        }
    }
}
