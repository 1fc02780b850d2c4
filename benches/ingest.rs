//! End-to-end ingest benchmark (`cargo bench --bench ingest`): a real
//! mosquitto on loopback, C publishers (`mosquitto_pub -l`), and Attic and
//! `mosquitto_sub` measured one after the other in the same run, so that
//! their ratios are comparable on a noisy machine.
//!
//! It builds nothing: run `cargo build --release` first; it uses
//! `target/release/attic` (or `$ATTIC_BIN`). Each measurement prints one JSON
//! line, then a `"bench":"summary"` line holds the ratios of SPEC section 10.
//!
//! Settings (environment variables, defaults in brackets):
//! `INGEST_N` [200000] messages at full speed, `INGEST_PUBLISHERS` [4],
//! `INGEST_PAYLOAD` [64] bytes, `INGEST_PACED_RATE` [500] msg/s for
//! `INGEST_PACED_SECONDS` [10], `INGEST_QOS1_N` [50000] messages at QoS 1,
//! `INGEST_ROTATION_RATE` [20000] msg/s for `INGEST_ROTATION_SECONDS` [5]
//! with 1-second rotation, `INGEST_WEAR_RATE` [1000] msg/s for
//! `INGEST_WEAR_SECONDS` [90] with `INGEST_WEAR_ROTATION` [60] s rotation
//! (storage writes), `INGEST_STREAMS` [100] streams in one process receiving
//! `INGEST_STREAM_MSGS` [16000] messages of `INGEST_STREAM_PAYLOAD` [80]
//! bytes each, then idle for `INGEST_IDLE_SECONDS` [5], `INGEST_TLS_N`
//! [100000] messages for the TLS comparison, `INGEST_ONLY` (comma list of
//! `saturate`, `paced`, `qos1`, `rotation`, `wear`, `streams`, `tls`,
//! `mqtt5`) to run a subset.
//!
//! Storage writes are read from `/proc/<pid>/io` after Attic has exited and
//! before it is reaped, so they include finalisation at stop: `device` =
//! `write_bytes - cancelled_write_bytes` (what the disk sees), `logical` =
//! `wchar` (what Attic asked to write, sockets and log included). The temp
//! folder (`$TMPDIR`) must be on a real disk, not tmpfs.
//!
//! `tls`: the full-speed QoS 0 load four times in one run: Attic and
//! `mosquitto_sub` over plain TCP, then both over TLS (a second mosquitto
//! listener with a certificate made by rcgen; Attic with `tls: ca-file`,
//! `mosquitto_sub --cafile`), so the CPU cost of TLS per message is read
//! side by side.
//!
//! `mqtt5`: Attic with `mqtt-version: 5` beside 3.1.1 and `mosquitto_sub`,
//! at QoS 0 (`INGEST_N`) and QoS 1 (`INGEST_QOS1_N`).
//!
//! Attic runs with `--ready-file` (the load starts the moment its
//! subscription is acknowledged, no settling time) and `--summary` (its own
//! count of stored messages, CPU seconds and peak RSS appear as `summary_*`
//! beside the figures measured from outside; a stored count that differs
//! from the rows in its files is reported on stderr).
//!
//! Every wait has a deadline; every child is killed and reaped and the
//! temporary folder removed on every exit path (guards' `Drop`).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Benchmark sizes and rates are small whole numbers: casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest time a subscriber may take to drain after the publishers finish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(180);
/// A subscriber whose CPU time has not moved for this long is idle.
const IDLE_FOR: Duration = Duration::from_secs(1);
/// How often the subscriber's CPU time is sampled.
const SAMPLE: Duration = Duration::from_millis(20);
/// Longest time a subscriber may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The benchmark's settings.
struct Settings {
    n: u64,
    publishers: u64,
    payload: usize,
    paced_rate: u64,
    paced_seconds: u64,
    qos1_n: u64,
    rotation_rate: u64,
    rotation_seconds: u64,
    wear_rate: u64,
    wear_seconds: u64,
    wear_rotation: u64,
    streams: u64,
    stream_msgs: u64,
    stream_payload: usize,
    idle_seconds: u64,
    tls_n: u64,
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            n: env_num("INGEST_N", 200_000),
            publishers: env_num("INGEST_PUBLISHERS", 4).max(1),
            payload: env_num("INGEST_PAYLOAD", 64) as usize,
            paced_rate: env_num("INGEST_PACED_RATE", 500).max(1),
            paced_seconds: env_num("INGEST_PACED_SECONDS", 10).max(1),
            qos1_n: env_num("INGEST_QOS1_N", 50_000),
            rotation_rate: env_num("INGEST_ROTATION_RATE", 20_000).max(1),
            rotation_seconds: env_num("INGEST_ROTATION_SECONDS", 5).max(1),
            wear_rate: env_num("INGEST_WEAR_RATE", 1000).max(1),
            wear_seconds: env_num("INGEST_WEAR_SECONDS", 90).max(1),
            wear_rotation: env_num("INGEST_WEAR_ROTATION", 60).max(1),
            streams: env_num("INGEST_STREAMS", 100).max(1),
            stream_msgs: env_num("INGEST_STREAM_MSGS", 16_000),
            stream_payload: env_num("INGEST_STREAM_PAYLOAD", 80) as usize,
            idle_seconds: env_num("INGEST_IDLE_SECONDS", 5).max(1),
            tls_n: env_num("INGEST_TLS_N", 100_000),
            only: std::env::var("INGEST_ONLY")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect()),
        }
    }

    fn wants(&self, what: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p == what))
    }
}

// ---------------------------------------------------------- utilities

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p =
            std::env::temp_dir().join(format!("attic-ingest-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped on drop unless already reaped.
struct Proc {
    child: Child,
    reaped: bool,
}

/// What `wait4` reports about an exited child.
struct Exit {
    code: i32,
    cpu_s: f64,
    maxrss_kib: i64,
    /// `/proc/<pid>/io` read after the exit and before the reaping, so that
    /// it covers the whole run (finalisation at stop included).
    io: Option<ProcIo>,
}

/// The storage counters of `/proc/<pid>/io`, in bytes.
#[derive(Clone, Copy, Default)]
struct ProcIo {
    /// Bytes passed to write(2) and friends (files, sockets, the log).
    wchar: u64,
    /// Bytes the process dirtied in the page cache (what the device will see).
    write_bytes: u64,
    /// Dirty bytes truncated away before the kernel wrote them back.
    cancelled_write_bytes: u64,
}

impl ProcIo {
    fn read(pid: i32) -> Option<ProcIo> {
        let text = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let get = |key: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key))?
                .trim()
                .parse()
                .ok()
        };
        Some(ProcIo {
            wchar: get("wchar:")?,
            write_bytes: get("write_bytes:")?,
            cancelled_write_bytes: get("cancelled_write_bytes:")?,
        })
    }

    /// What reached (or will reach) the device: dirtied minus cancelled.
    fn device(&self) -> u64 {
        self.write_bytes.saturating_sub(self.cancelled_write_bytes)
    }
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Proc {
            child,
            reaped: false,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// User + system CPU seconds so far, from `/proc/<pid>/stat`.
    fn cpu_s(&self) -> Option<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks / hz)
    }

    /// Peak resident set of this process image in KiB (`VmHWM`): unlike
    /// wait4's `ru_maxrss`, it does not include what the forked bench
    /// process had resident before `exec`.
    fn vm_hwm_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn signal(&self, sig: i32) {
        if !self.reaped {
            // SAFETY: plain kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(self.pid(), sig) };
        }
    }

    /// Reaps the child with `wait4` within `deadline`, SIGKILLing it if it
    /// does not exit in time; returns its rusage.
    fn wait4(&mut self, deadline: Duration) -> Exit {
        let t0 = Instant::now();
        let mut killed = false;
        let mut io = None;
        loop {
            if io.is_none() && self.exited_unreaped() {
                io = ProcIo::read(self.pid());
            }
            let mut status = 0i32;
            // SAFETY: an all-zero rusage is a valid value to be overwritten.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if killed { 0 } else { libc::WNOHANG };
            // SAFETY: valid pointers to locals; the pid is our child.
            let r = unsafe { libc::wait4(self.pid(), &mut status, flags, &mut ru) };
            if r == self.pid() {
                self.reaped = true;
                let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                return Exit {
                    code,
                    cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
                    maxrss_kib: ru.ru_maxrss,
                    io,
                };
            }
            assert!(r >= 0, "wait4 failed: {}", std::io::Error::last_os_error());
            if !killed && t0.elapsed() > deadline {
                eprintln!(
                    "ingest: pid {} did not exit in time; killing it",
                    self.pid()
                );
                self.signal(libc::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The child has exited and is not reaped yet (a zombie whose
    /// `/proc/<pid>/io` still holds its totals): `waitid` with `WNOWAIT`.
    fn exited_unreaped(&self) -> bool {
        // SAFETY: an all-zero siginfo is a valid value to be overwritten.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a local; the pid is our unreaped child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read for a WEXITED waitid result.
        r == 0 && unsafe { info.si_pid() } == self.pid()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find_mosquitto() -> PathBuf {
    let candidates = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"];
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return p;
    }
    PathBuf::from("mosquitto")
}

/// A mosquitto broker on a free loopback port, like the shared e2e harness
/// configures it (no queue limit, 100 in flight, no persistence).
struct Broker {
    port: u16,
    /// The TLS listener's port, when started with a certificate.
    tls_port: Option<u16>,
    _proc: Proc,
}

impl Broker {
    /// A broker; with `tls`, a second listener with TLS using its certificate.
    fn start_with_tls(dir: &Path, tls: Option<&BenchPki>) -> Broker {
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let conf = dir.join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n\
             max_inflight_messages 100\npersistence false\nlog_dest none\n"
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // mosquitto 2 drops to user `mosquitto` when started as root.
            text.push_str("user root\n");
        }
        if let (Some(pki), Some(tp)) = (tls, tls_port) {
            text.push_str(&format!(
                "listener {tp} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
                pki.server_cert.display(),
                pki.server_key.display()
            ));
        }
        fs::write(&conf, text).unwrap();
        let proc = Proc::spawn(
            Command::new(find_mosquitto())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "mosquitto (apt-get install mosquitto)",
        );
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen on port {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            port,
            tls_port,
            _proc: proc,
        }
    }
}

/// A CA and a broker certificate for 127.0.0.1 and `localhost`, as PEM
/// files (rcgen).
struct BenchPki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl BenchPki {
    fn new(dir: &Path) -> BenchPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // Distinct subjects: OpenSSL takes a leaf whose subject equals its
        // issuer for self-signed.
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "attic bench CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "attic bench broker");
        let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            fs::write(&p, text).unwrap();
            p
        };
        BenchPki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", cert.pem()),
            server_key: write("server.key", key.serialize_pem()),
        }
    }
}

/// One line of a publisher: JSON-ish, padded with `x` to `payload` bytes.
fn line(id: u64, seq: u64, payload: usize, out: &mut Vec<u8>) {
    let start = out.len();
    write!(out, "{{\"id\":{id},\"seq\":{seq:09},\"v\":21.5,\"p\":\"").unwrap();
    let used = out.len() - start + 2;
    out.extend(std::iter::repeat_n(b'x', payload.saturating_sub(used)));
    out.extend_from_slice(b"\"}\n");
}

fn publisher(port: u16, qos: u8, topic: &str) -> (Proc, ChildStdin) {
    let mut p = Proc::spawn(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-q", &qos.to_string(), "-t", topic, "-l"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "mosquitto_pub (apt-get install mosquitto-clients)",
    );
    let stdin = p.child.stdin.take().unwrap();
    (p, stdin)
}

/// Publishes `n` messages split over `publishers` at full speed (one
/// writer thread per publisher); returns when every publisher has exited.
fn publish_full_speed(port: u16, qos: u8, n: u64, publishers: u64, payload: usize) {
    let per = n / publishers;
    let mut procs = Vec::new();
    let mut threads = Vec::new();
    for k in 0..publishers {
        let (p, mut stdin) = publisher(port, qos, &format!("bench/sensor/{k}"));
        procs.push(p);
        let mut data = Vec::with_capacity(per as usize * (payload + 1));
        for i in 0..per {
            line(k, i, payload, &mut data);
        }
        threads.push(std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    for mut p in procs {
        let e = p.wait4(DRAIN_DEADLINE);
        assert_eq!(e.code, 0, "mosquitto_pub failed");
    }
}

/// Publishes `rate` msg/s for `seconds` from `publishers` publishers, in
/// chunks every 10 ms.
fn publish_paced(port: u16, rate: u64, seconds: u64, publishers: u64, payload: usize) -> u64 {
    let total = rate * seconds;
    let mut pubs: Vec<(Proc, ChildStdin)> = (0..publishers)
        .map(|k| publisher(port, 0, &format!("bench/sensor/{k}")))
        .collect();
    let t0 = Instant::now();
    let tick = Duration::from_millis(10);
    let mut sent = 0u64;
    let mut buf = Vec::new();
    let np = pubs.len() as u64;
    while sent < total {
        let due = ((t0.elapsed().as_secs_f64() + tick.as_secs_f64()) * rate as f64) as u64;
        let need = due.min(total).saturating_sub(sent);
        for (k, (_, stdin)) in pubs.iter_mut().enumerate() {
            let chunk = need / np + u64::from((k as u64) < need % np);
            buf.clear();
            for _ in 0..chunk {
                line(k as u64, sent, payload, &mut buf);
                sent += 1;
            }
            stdin.write_all(&buf).unwrap();
        }
        std::thread::sleep(tick);
    }
    for (mut p, stdin) in pubs {
        drop(stdin);
        let e = p.wait4(DRAIN_DEADLINE);
        assert_eq!(e.code, 0, "mosquitto_pub failed");
    }
    total
}

/// Waits until the subscriber's CPU time has not moved for [`IDLE_FOR`];
/// returns the moment it last moved (≈ the last message handled) and the
/// CPU seconds then.
fn wait_idle(sub: &Proc, since: Instant) -> (Instant, f64) {
    let mut last = sub.cpu_s().unwrap_or(0.0);
    let mut last_change = Instant::now();
    while last_change.elapsed() < IDLE_FOR {
        assert!(
            since.elapsed() < DRAIN_DEADLINE,
            "the subscriber was still busy after {DRAIN_DEADLINE:?}"
        );
        std::thread::sleep(SAMPLE);
        let c = sub.cpu_s().unwrap_or(last);
        if c != last {
            last = c;
            last_change = Instant::now();
        }
    }
    (last_change, last)
}

// ------------------------------------------------------------ subscribers

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Attic,
    /// Attic with `mqtt-version: 5`.
    Attic5,
    MosquittoSub,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Attic => "attic",
            Kind::Attic5 => "attic_mqtt5",
            Kind::MosquittoSub => "mosquitto_sub",
        }
    }
}

/// A subscriber under test, its files and its log.
struct Sub {
    kind: Kind,
    proc: Proc,
    data: PathBuf,
    out: PathBuf,
    log: PathBuf,
    /// Attic's `--summary` file (written at exit).
    summary: PathBuf,
}

/// Starts a subscriber on `port`; with `ca`, over TLS trusting that CA file.
fn start_sub_tls(
    kind: Kind,
    attic: &Path,
    dir: &Path,
    port: u16,
    qos: u8,
    rotation_s: u64,
    ca: Option<&Path>,
) -> Sub {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let out = dir.join("sub.out");
    let log = dir.join("sub.log");
    let ready = dir.join("ready.json");
    let summary = dir.join("summary.json");
    let mut cmd = match kind {
        Kind::Attic | Kind::Attic5 => {
            let cfg = dir.join("attic.yaml");
            let version = if kind == Kind::Attic5 { "5" } else { "3.1.1" };
            fs::write(
                &cfg,
                format!(
                    "data-folder: \"{}\"\nconsole-feedback-period-seconds: 60\nstreams:\n  - \
                     mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    \
                     topic: \"bench/#\"\n    prefix: \"bench\"\n    \
                     file-rotation-time-seconds: {rotation_s}\n    qos: {qos}\n    \
                     mqtt-version: {version}\n{}",
                    data.display(),
                    ca.map_or(String::new(), |ca| format!(
                        "    tls:\n      ca-file: \"{}\"\n",
                        ca.display()
                    ))
                ),
            )
            .unwrap();
            let mut c = Command::new(attic);
            c.arg("run").arg("--config").arg(&cfg);
            c.arg("--ready-file").arg(&ready);
            c.arg("--summary").arg(&summary);
            c.env("ATTIC_LOG_LEVEL", "info");
            c
        }
        Kind::MosquittoSub => {
            let mut c = Command::new("mosquitto_sub");
            match ca {
                // libmosquitto checks the name: `localhost` is in the certificate.
                Some(ca) => c.args(["-h", "localhost", "--cafile"]).arg(ca),
                None => c.args(["-h", "127.0.0.1"]),
            };
            c.args(["-p", &port.to_string()]);
            c.args(["-t", "bench/#", "-q", &qos.to_string()]);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&log).unwrap());
    let proc = Proc::spawn(&mut cmd, kind.name());
    let sub = Sub {
        kind,
        proc,
        data,
        out,
        log,
        summary,
    };
    // Attic writes its ready file once its subscription is acknowledged;
    // mosquitto_sub has no such signal and gets a settling time instead.
    let t0 = Instant::now();
    match kind {
        Kind::Attic | Kind::Attic5 => {
            while !ready.exists() {
                assert!(
                    t0.elapsed() < Duration::from_secs(15),
                    "attic did not subscribe within 15 s; its log:\n{}",
                    fs::read_to_string(&sub.log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Kind::MosquittoSub => std::thread::sleep(Duration::from_millis(1200)),
    }
    sub
}

/// Attic's own account at exit (`--summary`): messages stored, CPU
/// seconds, peak RSS in MiB.
fn attic_summary(sub: &Sub) -> Option<(u64, f64, f64)> {
    let text = fs::read_to_string(&sub.summary).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["stored"].as_u64()?,
        v["cpu_s"].as_f64()?,
        v["peak_rss_bytes"].as_f64()? / (1024.0 * 1024.0),
    ))
}

/// What a subscriber stored, on disk.
struct Stored {
    rows: u64,
    bytes_on_disk: u64,
    files: u64,
    /// Size of the finished `.sqlite` files.
    file_bytes: u64,
    /// The raw rows: topic + payload + 8 bytes each (SPEC 10), of the
    /// finished files.
    raw_bytes: u64,
    /// Complete `.part` files left for the next start to finish.
    parts_left: u64,
}

fn stored(sub: &Sub) -> Stored {
    match sub.kind {
        Kind::MosquittoSub => {
            let mut text = Vec::new();
            File::open(&sub.out)
                .unwrap()
                .read_to_end(&mut text)
                .unwrap();
            Stored {
                rows: text.iter().filter(|&&b| b == b'\n').count() as u64,
                bytes_on_disk: text.len() as u64,
                files: 1,
                file_bytes: text.len() as u64,
                raw_bytes: 0,
                parts_left: 0,
            }
        }
        Kind::Attic | Kind::Attic5 => {
            let mut s = Stored {
                rows: 0,
                bytes_on_disk: 0,
                files: 0,
                file_bytes: 0,
                raw_bytes: 0,
                parts_left: 0,
            };
            let mut stack = vec![sub.data.clone()];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    s.bytes_on_disk += e.metadata().map_or(0, |m| m.len());
                    if p.extension().is_some_and(|x| x == "sqlite") {
                        let c = rusqlite::Connection::open_with_flags(
                            &p,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                        )
                        .unwrap();
                        let (n, raw): (i64, i64) = c
                            .query_row(
                                "SELECT count(*), coalesce(sum(length(CAST(topic AS BLOB)) \
                                 + length(payload) + 8), 0) FROM data",
                                [],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .unwrap();
                        s.rows += n as u64;
                        s.raw_bytes += raw as u64;
                        s.file_bytes += e.metadata().map_or(0, |m| m.len());
                        s.files += 1;
                    } else if p.to_string_lossy().ends_with(".sqlite.part") {
                        // Left unfinished at stop (the stop waits at most
                        // 1.5 s for finishing): complete, and finished by
                        // the next start. Its rows count as stored.
                        let c = rusqlite::Connection::open_with_flags(
                            &p,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                        )
                        .unwrap();
                        let n: i64 = c
                            .query_row("SELECT count(*) FROM data", [], |r| r.get(0))
                            .unwrap();
                        s.rows += n as u64;
                        s.parts_left += 1;
                    } else if !p.to_string_lossy().ends_with(".sqlite.part-wal")
                        && !p.to_string_lossy().ends_with(".sqlite.part-shm")
                        // The stream folder's lock, kept there on purpose.
                        && p.file_name().is_none_or(|n| n != "attic.lock")
                    {
                        eprintln!("ingest: unexpected file left: {}", p.display());
                    }
                }
            }
            s
        }
    }
}

/// "longest loop turn: X ms" from Attic's log at stop.
fn longest_turn_ms(log: &Path) -> Option<f64> {
    let text = fs::read_to_string(log).ok()?;
    let at = text.rfind("longest loop turn: ")?;
    let rest = &text[at + "longest loop turn: ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

// ------------------------------------------------------------ measurements

/// One JSON line, fields in order; values already JSON-encoded.
fn emit(fields: &[(&str, String)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("{{{}}}", body.join(","));
}

fn s(v: &str) -> String {
    format!("\"{v}\"")
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "null".into()
    }
}

/// The figures of one subscriber in one scenario.
struct Run {
    sent: u64,
    stored: Stored,
    exit: Exit,
    cpu_during_load_s: f64,
    /// From the first publish to the subscriber's last CPU activity.
    busy_s: f64,
    longest_turn_ms: Option<f64>,
    /// `VmHWM` just before the stop signal.
    hwm_kib: u64,
    /// Attic's `--summary`: stored, CPU s, peak RSS MiB.
    summary: Option<(u64, f64, f64)>,
}

impl Run {
    fn us_per_msg(&self) -> f64 {
        self.exit.cpu_s * 1e6 / self.sent.max(1) as f64
    }
    fn lost(&self) -> i64 {
        self.sent as i64 - self.stored.rows as i64
    }
    fn rate(&self) -> f64 {
        self.stored.rows as f64 / self.busy_s.max(1e-9)
    }
}

enum Load {
    Full { n: u64, qos: u8 },
    Paced { rate: u64, seconds: u64 },
}

fn measure(attic: &Path, set: &Settings, kind: Kind, load: &Load, rotation_s: u64) -> Run {
    measure_tls(attic, set, kind, load, rotation_s, false)
}

/// Like `measure`; with `tls`, the subscriber connects over TLS (the
/// publishers stay on the plain listener).
fn measure_tls(
    attic: &Path,
    set: &Settings,
    kind: Kind,
    load: &Load,
    rotation_s: u64,
    tls: bool,
) -> Run {
    let dir = TempDir::new(kind.name());
    let pki = tls.then(|| BenchPki::new(&dir.0));
    let broker = Broker::start_with_tls(&dir.0, pki.as_ref());
    let qos = match load {
        Load::Full { qos, .. } => *qos,
        Load::Paced { .. } => 0,
    };
    let (sub_port, ca) = match (&pki, broker.tls_port) {
        (Some(pki), Some(tp)) => (tp, Some(pki.ca.as_path())),
        _ => (broker.port, None),
    };
    let mut sub = start_sub_tls(kind, attic, &dir.0, sub_port, qos, rotation_s, ca);
    let cpu0 = sub.proc.cpu_s().unwrap_or(0.0);
    let t0 = Instant::now();
    let sent = match *load {
        Load::Full { n, qos } => {
            let per = n / set.publishers;
            publish_full_speed(broker.port, qos, n, set.publishers, set.payload);
            per * set.publishers
        }
        Load::Paced { rate, seconds } => {
            let publishers = (rate / 10_000).clamp(1, 4);
            publish_paced(broker.port, rate, seconds, publishers, set.payload)
        }
    };
    let (last_busy, cpu_end) = wait_idle(&sub.proc, t0);
    let hwm_kib = sub.proc.vm_hwm_kib().unwrap_or(0);
    sub.proc.signal(libc::SIGTERM);
    let exit = sub.proc.wait4(STOP_DEADLINE);
    drop(broker);
    let stored = stored(&sub);
    let longest = longest_turn_ms(&sub.log);
    let summary = attic_summary(&sub);
    if let Some((summary_stored, _, _)) = summary
        && summary_stored != stored.rows
    {
        eprintln!(
            "ingest: attic's summary says {summary_stored} stored, its files hold {}",
            stored.rows
        );
    }
    if exit.code != 0 {
        eprintln!(
            "ingest: {} exited with {}; its log:\n{}",
            kind.name(),
            exit.code,
            fs::read_to_string(&sub.log).unwrap_or_default()
        );
    }
    Run {
        sent,
        stored,
        exit,
        cpu_during_load_s: cpu_end - cpu0,
        busy_s: last_busy.duration_since(t0).as_secs_f64(),
        longest_turn_ms: longest,
        hwm_kib,
        summary,
    }
}

fn report(bench: &str, kind: Kind, r: &Run, extra: &[(&str, String)]) {
    let mut fields = vec![
        ("bench", s(bench)),
        ("sub", s(kind.name())),
        ("sent", r.sent.to_string()),
        ("stored", r.stored.rows.to_string()),
        ("lost", r.lost().to_string()),
        ("cpu_s", f(r.exit.cpu_s, 3)),
        ("cpu_us_per_msg", f(r.us_per_msg(), 2)),
        ("cpu_s_during_load", f(r.cpu_during_load_s, 3)),
        ("peak_rss_mb", f(r.hwm_kib as f64 / 1024.0, 1)),
        ("wait4_maxrss_mb", f(r.exit.maxrss_kib as f64 / 1024.0, 1)),
        ("busy_s", f(r.busy_s, 2)),
        ("msgs_per_s", f(r.rate(), 0)),
        (
            "disk_bytes_per_msg",
            f(
                r.stored.bytes_on_disk as f64 / r.stored.rows.max(1) as f64,
                1,
            ),
        ),
        ("files", r.stored.files.to_string()),
        ("exit", r.exit.code.to_string()),
    ];
    if let Some(ms) = r.longest_turn_ms {
        fields.push(("longest_loop_turn_ms", f(ms, 1)));
    }
    if kind == Kind::Attic {
        fields.extend(wear_fields(r));
    }
    if let Some((stored, cpu_s, peak_mb)) = r.summary {
        fields.push(("summary_stored", stored.to_string()));
        fields.push(("summary_cpu_s", f(cpu_s, 3)));
        fields.push(("summary_peak_rss_mb", f(peak_mb, 1)));
    }
    fields.extend(extra.iter().cloned());
    emit(&fields);
}

/// Storage writes over the whole run (finalisation at stop included) and
/// file sizes: the figures of SPEC 10's wear targets.
fn wear_fields(r: &Run) -> Vec<(&'static str, String)> {
    let io = r.exit.io.unwrap_or_default();
    let rows = r.stored.rows.max(1) as f64;
    let file = r.stored.file_bytes.max(1) as f64;
    vec![
        ("device_write_bytes", io.device().to_string()),
        ("logical_write_bytes", io.wchar.to_string()),
        ("file_bytes", r.stored.file_bytes.to_string()),
        ("raw_bytes", r.stored.raw_bytes.to_string()),
        ("parts_left", r.stored.parts_left.to_string()),
        ("device_writes_per_msg", f(io.device() as f64 / rows, 1)),
        ("logical_writes_per_msg", f(io.wchar as f64 / rows, 1)),
        (
            "device_writes_per_file_byte",
            f(io.device() as f64 / file, 3),
        ),
        ("logical_writes_per_file_byte", f(io.wchar as f64 / file, 3)),
        (
            "file_bytes_per_raw_byte",
            f(file / r.stored.raw_bytes.max(1) as f64, 3),
        ),
    ]
}

// ------------------------------------------------------------ many streams

/// A minimal MQTT 3.1.1 QoS 0 publisher on a raw socket: one connection
/// publishing to many topics (`mosquitto_pub` takes one topic per process).
struct RawPub(TcpStream);

impl RawPub {
    fn connect(port: u16, id: &str) -> RawPub {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        let mut pkt = vec![0x10];
        remaining_length(body.len(), &mut pkt);
        pkt.extend_from_slice(&body);
        sock.write_all(&pkt).unwrap();
        let mut connack = [0u8; 4];
        sock.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK refused");
        RawPub(sock)
    }

    fn publish(topic: &str, payload: &[u8], out: &mut Vec<u8>) {
        out.push(0x30);
        remaining_length(2 + topic.len() + payload.len(), out);
        out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(payload);
    }

    fn finish(mut self) {
        self.0.write_all(&[0xE0, 0]).unwrap();
    }
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// `streams` streams in one Attic process, each subscribed to its own
/// `bench/s/<i>/#`, receive `msgs` messages each (round robin, from one raw
/// publisher, 10 topics per stream so that the `topics` index grows too);
/// then Attic idles for `idle_s`. Returns the run, the CPU seconds spent
/// while idle and the idle span.
fn measure_streams(attic: &Path, set: &Settings) -> (Run, f64, f64) {
    let dir = TempDir::new("streams");
    let broker = Broker::start_with_tls(&dir.0, None);
    let data = dir.0.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut cfg = format!(
        "data-folder: \"{}\"\nconsole-feedback-period-seconds: 3600\nstreams:\n",
        data.display()
    );
    for i in 0..set.streams {
        cfg.push_str(&format!(
            "  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {}\n    \
             topic: \"bench/s/{i}/#\"\n    prefix: \"s{i}\"\n    \
             file-rotation-time-seconds: 3600\n    qos: 0\n",
            broker.port
        ));
    }
    let cfg_path = dir.0.join("attic.yaml");
    fs::write(&cfg_path, cfg).unwrap();
    let log = dir.0.join("sub.log");
    let summary = dir.0.join("summary.json");
    let mut proc = Proc::spawn(
        Command::new(attic)
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .arg("--summary")
            .arg(&summary)
            .env("ATTIC_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap()),
        "attic",
    );
    let t0 = Instant::now();
    loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.matches("subscribed").count() as u64 >= set.streams {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "attic did not subscribe {} streams within 60 s; its log:\n{text}",
            set.streams
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = proc.cpu_s().unwrap_or(0.0);
    let t0 = Instant::now();
    let mut publ = RawPub::connect(broker.port, "attic-bench-streams");
    let mut buf = Vec::new();
    let mut payload = Vec::new();
    let mut sent = 0u64;
    for seq in 0..set.stream_msgs {
        buf.clear();
        for i in 0..set.streams {
            payload.clear();
            line(i, seq, set.stream_payload, &mut payload);
            payload.pop(); // the newline is for mosquitto_pub -l only
            let topic = format!("bench/s/{i}/sensor/{}", seq % 10);
            RawPub::publish(&topic, &payload, &mut buf);
            sent += 1;
        }
        publ.0.write_all(&buf).unwrap();
    }
    publ.finish();
    let (last_busy, cpu_end) = wait_idle(&proc, t0);
    // Idle: no traffic; only keep-alives (30 s) and timers may cost CPU.
    let idle0 = proc.cpu_s().unwrap_or(cpu_end);
    let i0 = Instant::now();
    std::thread::sleep(Duration::from_secs(set.idle_seconds));
    let idle_cpu = proc.cpu_s().unwrap_or(idle0) - idle0;
    let idle_span = i0.elapsed().as_secs_f64();
    let hwm_kib = proc.vm_hwm_kib().unwrap_or(0);
    proc.signal(libc::SIGTERM);
    let exit = proc.wait4(STOP_DEADLINE * 3);
    drop(broker);
    let sub = Sub {
        kind: Kind::Attic,
        proc,
        data,
        out: dir.0.join("none"),
        log: log.clone(),
        summary,
    };
    let stored = stored(&sub);
    let summary = attic_summary(&sub);
    if exit.code != 0 {
        eprintln!(
            "ingest: attic exited with {}; its log:\n{}",
            exit.code,
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let run = Run {
        sent,
        stored,
        exit,
        cpu_during_load_s: cpu_end - cpu0,
        busy_s: last_busy.duration_since(t0).as_secs_f64(),
        longest_turn_ms: longest_turn_ms(&log),
        hwm_kib,
        summary,
    };
    (run, idle_cpu, idle_span)
}

fn locate_attic() -> PathBuf {
    if let Ok(p) = std::env::var("ATTIC_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("release").join("attic");
    if !bin.exists() {
        eprintln!(
            "ingest: {} is missing; build it first: cargo build --release",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from argv.
    let set = Settings::from_env();
    let attic = locate_attic();
    eprintln!("ingest: measuring {}", attic.display());
    let mut summary: Vec<(&str, String)> = vec![("bench", s("summary"))];

    if set.wants("saturate") {
        let load = Load::Full { n: set.n, qos: 0 };
        let floor = measure(&attic, &set, Kind::MosquittoSub, &load, 3600);
        report("saturate", Kind::MosquittoSub, &floor, &[]);
        let at = measure(&attic, &set, Kind::Attic, &load, 3600);
        report("saturate", Kind::Attic, &at, &[]);
        summary.push((
            "attic_vs_mosquitto_sub",
            f(at.exit.cpu_s / floor.exit.cpu_s.max(1e-9), 3),
        ));
        summary.push(("attic_cpu_us_per_msg", f(at.us_per_msg(), 2)));
        summary.push(("mosquitto_sub_cpu_us_per_msg", f(floor.us_per_msg(), 2)));
        summary.push(("attic_peak_rss_mb", f(at.hwm_kib as f64 / 1024.0, 1)));
        summary.push(("attic_lost", at.lost().to_string()));
        summary.push((
            "attic_disk_bytes_per_msg",
            f(
                at.stored.bytes_on_disk as f64 / at.stored.rows.max(1) as f64,
                1,
            ),
        ));
        let w = wear_fields(&at);
        for (k, name) in [
            (
                "device_writes_per_file_byte",
                "attic_device_writes_per_file_byte",
            ),
            (
                "logical_writes_per_file_byte",
                "attic_logical_writes_per_file_byte",
            ),
            ("file_bytes_per_raw_byte", "attic_file_bytes_per_raw_byte"),
        ] {
            let v = w.iter().find(|(n, _)| *n == k).unwrap().1.clone();
            summary.push((name, v));
        }
    }
    if set.wants("paced") {
        let load = Load::Paced {
            rate: set.paced_rate,
            seconds: set.paced_seconds,
        };
        let pct = |r: &Run| 100.0 * r.cpu_during_load_s / set.paced_seconds as f64;
        let floor = measure(&attic, &set, Kind::MosquittoSub, &load, 3600);
        report(
            "paced",
            Kind::MosquittoSub,
            &floor,
            &[("cpu_pct_of_core", f(pct(&floor), 3))],
        );
        let at = measure(&attic, &set, Kind::Attic, &load, 3600);
        report(
            "paced",
            Kind::Attic,
            &at,
            &[("cpu_pct_of_core", f(pct(&at), 3))],
        );
        summary.push(("paced_rate", set.paced_rate.to_string()));
        summary.push(("attic_paced_cpu_pct_of_core", f(pct(&at), 3)));
        summary.push(("mosquitto_sub_paced_cpu_pct_of_core", f(pct(&floor), 3)));
        summary.push(("attic_paced_lost", at.lost().to_string()));
    }
    if set.wants("qos1") {
        let load = Load::Full {
            n: set.qos1_n,
            qos: 1,
        };
        let floor = measure(&attic, &set, Kind::MosquittoSub, &load, 3600);
        report("qos1", Kind::MosquittoSub, &floor, &[]);
        let at = measure(&attic, &set, Kind::Attic, &load, 3600);
        report("qos1", Kind::Attic, &at, &[]);
        summary.push((
            "qos1_throughput_vs_mosquitto_sub",
            f(at.rate() / floor.rate().max(1e-9), 3),
        ));
        summary.push(("attic_qos1_msgs_per_s", f(at.rate(), 0)));
        summary.push((
            "qos1_cpu_vs_mosquitto_sub",
            f(at.exit.cpu_s / floor.exit.cpu_s.max(1e-9), 3),
        ));
        summary.push(("attic_qos1_cpu_us_per_msg", f(at.us_per_msg(), 2)));
        summary.push(("attic_qos1_lost", at.lost().to_string()));
    }
    if set.wants("rotation") {
        let load = Load::Paced {
            rate: set.rotation_rate,
            seconds: set.rotation_seconds,
        };
        let at = measure(&attic, &set, Kind::Attic, &load, 1);
        report("rotation", Kind::Attic, &at, &[]);
        summary.push((
            "rotation_longest_loop_turn_ms",
            at.longest_turn_ms.map_or("null".into(), |v| f(v, 1)),
        ));
        summary.push(("rotation_lost", at.lost().to_string()));
        summary.push(("rotation_files", at.stored.files.to_string()));
    }
    if set.wants("wear") {
        let load = Load::Paced {
            rate: set.wear_rate,
            seconds: set.wear_seconds,
        };
        let at = measure(&attic, &set, Kind::Attic, &load, set.wear_rotation);
        report("wear", Kind::Attic, &at, &[]);
        let w = wear_fields(&at);
        let get = |k: &str| w.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        summary.push((
            "wear_device_writes_per_file_byte",
            get("device_writes_per_file_byte"),
        ));
        summary.push((
            "wear_logical_writes_per_file_byte",
            get("logical_writes_per_file_byte"),
        ));
        summary.push(("wear_device_writes_per_msg", get("device_writes_per_msg")));
        summary.push((
            "wear_file_bytes_per_raw_byte",
            get("file_bytes_per_raw_byte"),
        ));
        summary.push(("wear_lost", at.lost().to_string()));
    }
    if set.wants("streams") {
        let (at, idle_cpu, idle_span) = measure_streams(&attic, &set);
        let idle_pct = 100.0 * idle_cpu / idle_span.max(1e-9);
        report(
            "streams",
            Kind::Attic,
            &at,
            &[
                ("streams", set.streams.to_string()),
                ("idle_s", f(idle_span, 1)),
                ("idle_cpu_s", f(idle_cpu, 3)),
                ("idle_cpu_pct_of_core", f(idle_pct, 3)),
            ],
        );
        summary.push(("streams", set.streams.to_string()));
        summary.push(("streams_peak_rss_mb", f(at.hwm_kib as f64 / 1024.0, 1)));
        summary.push(("streams_idle_cpu_pct_of_core", f(idle_pct, 3)));
        summary.push(("streams_lost", at.lost().to_string()));
    }
    if set.wants("tls") {
        let load = Load::Full {
            n: set.tls_n,
            qos: 0,
        };
        let mut runs = Vec::new();
        for (kind, tls) in [
            (Kind::MosquittoSub, false),
            (Kind::MosquittoSub, true),
            (Kind::Attic, false),
            (Kind::Attic, true),
        ] {
            let r = measure_tls(&attic, &set, kind, &load, 3600, tls);
            report("tls", kind, &r, &[("tls", tls.to_string())]);
            runs.push(r);
        }
        let us = |i: usize| runs[i].us_per_msg();
        summary.push(("tls_attic_cpu_us_per_msg", f(us(3), 2)));
        summary.push(("plain_attic_cpu_us_per_msg", f(us(2), 2)));
        summary.push(("tls_mosquitto_sub_cpu_us_per_msg", f(us(1), 2)));
        summary.push(("plain_mosquitto_sub_cpu_us_per_msg", f(us(0), 2)));
        summary.push(("tls_attic_vs_plain_attic", f(us(3) / us(2).max(1e-9), 3)));
        summary.push((
            "tls_attic_vs_tls_mosquitto_sub",
            f(us(3) / us(1).max(1e-9), 3),
        ));
        summary.push(("tls_attic_lost", runs[3].lost().to_string()));
    }
    if set.wants("mqtt5") {
        let qos0 = Load::Full { n: set.n, qos: 0 };
        let qos1 = Load::Full {
            n: set.qos1_n,
            qos: 1,
        };
        let keys0 = [
            "mqtt5_qos0_mosquitto_sub_us_per_msg",
            "mqtt5_qos0_attic_us_per_msg",
            "mqtt5_qos0_attic_mqtt5_us_per_msg",
            "mqtt5_qos0_attic_mqtt5_lost",
        ];
        let keys1 = [
            "mqtt5_qos1_mosquitto_sub_us_per_msg",
            "mqtt5_qos1_attic_us_per_msg",
            "mqtt5_qos1_attic_mqtt5_us_per_msg",
            "mqtt5_qos1_attic_mqtt5_lost",
        ];
        for (bench, load, keys) in [("mqtt5_qos0", qos0, keys0), ("mqtt5_qos1", qos1, keys1)] {
            let floor = measure(&attic, &set, Kind::MosquittoSub, &load, 3600);
            report(bench, Kind::MosquittoSub, &floor, &[]);
            let v311 = measure(&attic, &set, Kind::Attic, &load, 3600);
            report(bench, Kind::Attic, &v311, &[]);
            let v5 = measure(&attic, &set, Kind::Attic5, &load, 3600);
            report(bench, Kind::Attic5, &v5, &[]);
            for (k, r) in keys.iter().zip([&floor, &v311, &v5]) {
                summary.push((k, f(r.us_per_msg(), 2)));
            }
            summary.push((keys[3], v5.lost().to_string()));
        }
    }
    emit(&summary);
}
