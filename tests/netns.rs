//! Network cuts that leave no FIN and no RST (Wi-Fi gone, a cable pulled),
//! made for real: Attic runs in one network namespace of the test's own,
//! mosquitto and the publisher in another, joined by a veth pair. Neither
//! namespace has a default route and nothing is put on the host, so a
//! downed link can never send a packet anywhere but into that pair.
//!
//! ```text
//!   netns A: attic ── va 10.231.0.1/30 ═══ veth ═══ vb 10.231.0.2/30 ── netns B: mosquitto :1883
//!                                                                          publisher (thread in B, via 127.0.0.1)
//! ```
//!
//! Each test measures, at keep-alive 2 s and QoS 1 (and once QoS 2) with a
//! persistent session, how long after the cut Attic notices it (promised:
//! within 1.5x the keep-alive), how long after the path returns the stream
//! is back, and checks that every message published before, during and
//! after the cut is stored (at QoS 2: exactly once). The figures are printed (`cargo test --test netns --
//! --nocapture`). Skipped with one line when not root or namespaces
//! cannot be made; the namespaces are deleted in every case (a drop guard).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::broker::mosquitto_path;
use common::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Keep-alive of the stream under test, in seconds.
const KEEP_ALIVE_S: u64 = 2;
/// Messages per second from the publisher.
const RATE: u64 = 50;
/// mosquitto's port inside namespace B (the namespace is ours alone).
const PORT: u16 = 1883;
const ATTIC_ADDR: &str = "10.231.0.1/30";
const BROKER_ADDR: &str = "10.231.0.2/30";
const BROKER_IP: &str = "10.231.0.2";

/// Deadlines are this many times longer under an emulator.
fn slack() -> u32 {
    if std::env::var_os("ATTIC_TEST_RUNNER").is_some_and(|r| !r.is_empty()) {
        4
    } else {
        1
    }
}

fn t(secs: u64) -> Duration {
    Duration::from_secs(secs) * slack()
}

/// Runs `ip ARGS`; `Err` with its stderr when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(exe: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{exe}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{exe} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn have(exe: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(exe).is_file())
}

/// Two namespaces joined by a veth pair, deleted on drop (with every
/// interface and firewall rule in them).
struct Pair {
    /// Attic's namespace.
    a: String,
    /// The broker's namespace.
    b: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Pair {
    /// `None` (after one printed line) when namespaces cannot be made here.
    fn make(test: &str) -> Option<Pair> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            println!("{test}: skipped: network namespaces need root");
            return None;
        }
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = std::process::id();
        let a = format!("attic-t{id}-{k}-a");
        let b = format!("attic-t{id}-{k}-b");
        if let Err(e) = ip(&["netns", "add", &a]) {
            println!("{test}: skipped: cannot make a network namespace ({e})");
            return None;
        }
        let pair = Pair { a, b };
        // From here on, the guard deletes whatever was made.
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &pair.b])?;
            ip(&[
                "link", "add", "va", "netns", &pair.a, "type", "veth", "peer", "name", "vb",
                "netns", &pair.b,
            ])?;
            ip(&["-n", &pair.a, "addr", "add", ATTIC_ADDR, "dev", "va"])?;
            ip(&["-n", &pair.b, "addr", "add", BROKER_ADDR, "dev", "vb"])?;
            for (ns, dev) in [(&pair.a, "va"), (&pair.b, "vb")] {
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            println!("{test}: skipped: cannot set up the veth pair ({e})");
            return None;
        }
        Some(pair)
    }

    /// `iptables ARGS` inside the broker's namespace.
    fn iptables_b(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.b, "iptables"];
        all.extend_from_slice(args);
        ip(&all).unwrap();
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a thread whose sockets live in namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: setns on a valid namespace fd; it changes only this
        // thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// mosquitto inside namespace B; killed on drop.
struct Broker {
    child: Child,
    log: PathBuf,
}

impl Broker {
    fn start(pair: &Pair, dir: &TempDir) -> Broker {
        let log = dir.join("mosquitto.log");
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {PORT}\nallow_anonymous true\nlog_dest file {}\nlog_type all\nuser root\nmax_queued_messages 100000\nmax_inflight_messages 20\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &pair.b])
            .arg(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let listening = in_netns(&pair.b, || {
            wait_until(t(10), "mosquitto listening in its namespace", || {
                std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok()
            })
        });
        listening.join().unwrap();
        Broker { child, log }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("mosquitto log: {}", self.log.display());
        }
    }
}

/// A publisher in namespace B sending QoS `qos` messages `0`, `1`, ... at
/// [`RATE`] until stopped; joins to the number sent.
struct Publisher {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<JoinHandle<usize>>,
}

impl Publisher {
    fn start(pair: &Pair, qos: u8) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = in_netns(&pair.b, move || {
            let mut c = TestClient::connect(PORT, "netns-publisher");
            let start = Instant::now();
            let mut i = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                c.publish("cut/x", i.to_string().as_bytes(), qos, false);
                i += 1;
                sent2.store(usize::try_from(i).unwrap(), Ordering::SeqCst);
                // Paced: message i goes out at i / RATE seconds.
                let due = start + Duration::from_millis(i * 1000 / RATE);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            c.disconnect();
            usize::try_from(i).unwrap()
        });
        Publisher {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn attic_config(data: &Path, qos: u8) -> String {
    attic_config_via(data, qos, PORT)
}

/// [`attic_config`] with the broker reached at `port` of namespace B (the
/// delaying relay's, say).
fn attic_config_via(data: &Path, qos: u8, port: u16) -> String {
    format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n  - mqtt-broker-address: \"{BROKER_IP}\"\n    mqtt-broker-port: {port}\n    topic: \"cut/#\"\n    prefix: \"cut\"\n    suffix: \"\"\n    file-rotation-time-seconds: 3600\n    commit-interval-ms: 100\n    keep-alive-seconds: {KEEP_ALIVE_S}\n    qos: {qos}\n    clean-session: false\n    client-id: \"attic-netns\"\nlog-performance: false\n",
        data.display()
    )
}

fn count(attic: &Attic, text: &str) -> usize {
    attic.log().matches(text).count()
}

/// Waits for one more log line containing `text` than `before`; returns
/// when it appeared, measured from `since`.
fn time_to_line(attic: &Attic, text: &str, before: usize, since: Instant, limit: Duration) -> f64 {
    wait_until(
        limit,
        format_args!("one more {text:?} in attic's log"),
        || count(attic, text) > before,
    );
    since.elapsed().as_secs_f64()
}

/// How a cut is made and undone.
#[derive(Clone, Copy)]
enum Cut {
    /// Every packet on the veth dropped in the broker's namespace.
    Drop,
    /// The broker's end of the veth set down.
    LinkDown,
}

impl Cut {
    fn apply(self, pair: &Pair) {
        match self {
            Cut::Drop => {
                pair.iptables_b(&["-A", "INPUT", "-i", "vb", "-j", "DROP"]);
                pair.iptables_b(&["-A", "OUTPUT", "-o", "vb", "-j", "DROP"]);
            }
            Cut::LinkDown => ip(&["-n", &pair.b, "link", "set", "vb", "down"]).unwrap(),
        }
    }

    fn undo(self, pair: &Pair) {
        match self {
            Cut::Drop => pair.iptables_b(&["-F"]),
            Cut::LinkDown => ip(&["-n", &pair.b, "link", "set", "vb", "up"]).unwrap(),
        }
    }
}

/// What one run measured.
struct Figures {
    detected_s: f64,
    back_s: f64,
    sent: usize,
    stored_distinct: usize,
    duplicates: usize,
}

/// Attic and mosquitto in their namespaces, the publisher running; a cut
/// of `cut_for` after a few seconds of traffic, then traffic after it.
fn cut_and_measure(test: &str, cut: Cut, cut_for: Duration, qos: u8) -> Option<Figures> {
    let pair = Pair::make(test)?;
    if matches!(cut, Cut::Drop) && !have("iptables") {
        println!("{test}: skipped: iptables is missing (apt-get install iptables)");
        return None;
    }
    let dir = TempDir::new(test);
    let data = dir.join("data");
    let _broker = Broker::start(&pair, &dir);
    let mut attic = Attic::start_with_prefix(
        &attic_config(&data, qos),
        &dir,
        &["ip", "netns", "exec", &pair.a],
    );
    attic.wait_ready(t(20));
    let publisher = Publisher::start(&pair, qos);
    wait_until(t(10), "100 messages published before the cut", || {
        publisher.sent() >= 100
    });
    wait_for_rows(&data, 50, t(10));

    let closed = count(&attic, "connection closed:");
    let connected = count(&attic, "connected to broker as");
    let cut_at = Instant::now();
    cut.apply(&pair);
    let detected_s = time_to_line(&attic, "connection closed:", closed, cut_at, t(30));
    let log = attic.log();
    let line = log
        .lines()
        .filter(|l| l.contains("connection closed:"))
        .nth(closed)
        .unwrap_or_default()
        .to_owned();
    assert!(
        line.contains("no PINGRESP and no bytes for") || line.contains("no bytes from the broker"),
        "the silent path noticed as silence: {line}"
    );
    let remaining = cut_for.saturating_sub(cut_at.elapsed());
    std::thread::sleep(remaining); // the outage itself: nothing to wait for
    let restored_at = Instant::now();
    cut.undo(&pair);
    let back_s = time_to_line(
        &attic,
        "connected to broker as",
        connected,
        restored_at,
        t(60),
    );
    // Traffic after the cut, then everything must be stored.
    let after = publisher.sent() + 100;
    wait_until(t(20), "100 messages published after the cut", || {
        publisher.sent() >= after
    });
    let sent = publisher.finish();
    wait_for_rows(&data, sent, t(60));
    attic.stop_clean();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for r in all_rows(&data) {
        let n: u64 = String::from_utf8(r.payload).unwrap().parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    let missing: Vec<usize> = (0..sent)
        .filter(|i| !seen.contains_key(&(*i as u64)))
        .take(20)
        .collect();
    assert!(
        missing.is_empty(),
        "{test}: messages not stored: {missing:?}..."
    );
    let duplicates = seen.values().map(|n| n - 1).sum();
    Some(Figures {
        detected_s,
        back_s,
        sent,
        stored_distinct: seen.len(),
        duplicates,
    })
}

fn report(test: &str, f: &Figures, cut_for: Duration, qos: u8) {
    println!(
        "{test}: keep-alive {KEEP_ALIVE_S} s, cut {} s at {RATE} msg/s QoS {qos}: silence noticed {:.2} s after the cut, connected again {:.2} s after the path returned; {} of {} stored, {} duplicates",
        cut_for.as_secs(),
        f.detected_s,
        f.back_s,
        f.stored_distinct,
        f.sent,
        f.duplicates
    );
}

/// The promise: noticed within 1.5x the keep-alive (plus the log poll).
fn assert_noticed_in_time(f: &Figures) {
    let limit = 1.5 * KEEP_ALIVE_S as f64 + 0.5 * f64::from(slack());
    assert!(
        f.detected_s <= limit,
        "noticed after {:.2} s, more than 1.5x the keep-alive",
        f.detected_s
    );
}

/// Back within a connect timeout (5 s at this keep-alive) plus the longest
/// reconnect delay while the broker is unreachable (5 s), plus slack.
fn assert_back_soon(f: &Figures) {
    let limit = 11.0 * f64::from(slack());
    assert!(
        f.back_s <= limit,
        "back {:.2} s after the path returned",
        f.back_s
    );
}

#[test]
fn a_path_dropping_every_packet_is_noticed_within_one_and_a_half_keep_alives_and_loses_nothing() {
    let test = "netns-drop";
    let cut_for = Duration::from_secs(12);
    let Some(f) = cut_and_measure(test, Cut::Drop, cut_for, 1) else {
        return;
    };
    report(test, &f, cut_for, 1);
    assert_noticed_in_time(&f);
    assert_back_soon(&f);
}

#[test]
fn a_link_set_down_for_long_is_noticed_in_time_the_stream_back_within_seconds_and_nothing_lost() {
    // Long enough that the reconnect delays reach their cap: with a 30 s
    // cap they would be 8 to 16 s apart by the end of the outage.
    let test = "netns-link-down";
    let cut_for = Duration::from_secs(40);
    let Some(f) = cut_and_measure(test, Cut::LinkDown, cut_for, 1) else {
        return;
    };
    report(test, &f, cut_for, 1);
    assert_noticed_in_time(&f);
    assert_back_soon(&f);
}

#[test]
fn at_qos_2_a_cut_path_stores_every_message_exactly_once() {
    let test = "netns-drop-qos2";
    let cut_for = Duration::from_secs(12);
    let Some(f) = cut_and_measure(test, Cut::Drop, cut_for, 2) else {
        return;
    };
    report(test, &f, cut_for, 2);
    assert_noticed_in_time(&f);
    assert_back_soon(&f);
    assert_eq!(
        f.duplicates, 0,
        "QoS 2 with a persistent session: exactly once"
    );
}

/// The relay's port in namespace B: Attic connects to it, it forwards to
/// mosquitto.
const RELAY_PORT: u16 = 1884;

/// A TCP relay in namespace B that passes every chunk on [`LINK_DELAY`]
/// late, in both directions: the link's delay, since this kernel has no
/// netem. Its threads live as long as their connections.
fn start_delay_relay(pair: &Pair) {
    let listening = Arc::new(AtomicBool::new(false));
    let ready = listening.clone();
    drop(in_netns(&pair.b, move || {
        let listener = std::net::TcpListener::bind(("0.0.0.0", RELAY_PORT)).unwrap();
        ready.store(true, Ordering::SeqCst);
        for down in listener.incoming() {
            let Ok(down) = down else { return };
            let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", PORT)) else {
                continue;
            };
            let (down2, up2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
            delayed_pump(down, up);
            delayed_pump(up2, down2);
        }
    }));
    wait_until(t(10), "the delaying relay listening", || {
        listening.load(Ordering::SeqCst)
    });
}

/// One-way delay of the emulated link.
const LINK_DELAY: Duration = Duration::from_millis(100);

/// Copies `from` to `to`, each chunk [`LINK_DELAY`] after it was read, in
/// order; the end of `from` shuts `to` down for writing.
fn delayed_pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            if tx
                .send((Instant::now() + LINK_DELAY, buf[..n].to_vec()))
                .is_err()
                || n == 0
            {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            // The delay is the emulated link itself, not a wait for a
            // condition.
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if bytes.is_empty() || to.write_all(&bytes).is_err() {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
        }
    });
}

#[test]
fn a_lossy_slow_link_stores_every_qos_1_message() {
    // No netem in this kernel: iptables' statistic match drops 10 % of the
    // packets in each direction at random, and a relay in the broker's
    // namespace delays everything by 100 ms each way.
    let test = "netns-lossy";
    let Some(pair) = Pair::make(test) else {
        return;
    };
    if !have("iptables") {
        println!("{test}: skipped: iptables is missing (apt-get install iptables)");
        return;
    }
    let dir = TempDir::new(test);
    let data = dir.join("data");
    let _broker = Broker::start(&pair, &dir);
    start_delay_relay(&pair);
    let mut attic = Attic::start_with_prefix(
        &attic_config_via(&data, 1, RELAY_PORT),
        &dir,
        &["ip", "netns", "exec", &pair.a],
    );
    attic.wait_ready(t(20));
    let lossy = [
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.1",
    ];
    let mut rule_in = vec!["-A", "INPUT", "-i", "vb"];
    rule_in.extend_from_slice(&lossy);
    rule_in.extend_from_slice(&["-j", "DROP"]);
    let mut rule_out = vec!["-A", "OUTPUT", "-o", "vb"];
    rule_out.extend_from_slice(&lossy);
    rule_out.extend_from_slice(&["-j", "DROP"]);
    pair.iptables_b(&rule_in);
    pair.iptables_b(&rule_out);
    let publisher = Publisher::start(&pair, 1);
    let n = usize::try_from(RATE * 10).unwrap();
    wait_until(t(30), format_args!("{n} messages published"), || {
        publisher.sent() >= n
    });
    let sent = publisher.finish();
    let started = Instant::now();
    wait_for_rows(&data, sent, t(60));
    let settle_s = started.elapsed().as_secs_f64();
    pair.iptables_b(&["-F"]);
    let reconnects = count(&attic, "connection closed:");
    attic.stop_clean();
    let rows = all_rows(&data);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &rows {
        let v: u64 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
        *seen.entry(v).or_default() += 1;
    }
    let missing: Vec<usize> = (0..sent)
        .filter(|i| !seen.contains_key(&(*i as u64)))
        .take(20)
        .collect();
    assert!(missing.is_empty(), "messages not stored: {missing:?}...");
    println!(
        "{test}: 10 % loss and 100 ms delay each way: {} of {sent} stored ({} duplicates, {reconnects} connections lost), the last stored {settle_s:.2} s after the last published",
        seen.len(),
        rows.len() - seen.len()
    );
}
