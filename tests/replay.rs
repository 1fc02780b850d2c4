//! `attic replay` from a real recording into a second mosquitto: every row
//! in stored order with exact bytes, the topic prefix and retain off (or as
//! stored); at a finite speed the run lasts the recorded span divided by
//! the speed; over TLS with `--tls-ca-file`, and with a wrong CA it
//! retries as it does for an unreachable broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::broker::free_port;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn config(data: &Path, port: u16) -> String {
    format!(
        r##"console-feedback-period-seconds: 60
data-folder: "{data}"
streams:
  - mqtt-broker-port: {port}
    topic: "a/#"
    prefix: "alpha"
    qos: 1
    file-rotation-time-seconds: 1
    commit-interval-ms: 50
  - mqtt-broker-port: {port}
    topic: "b/#"
    prefix: "beta"
    qos: 1
    file-rotation-time-seconds: 1
    commit-interval-ms: 50
"##,
        data = data.display()
    )
}

/// A stored row, in the order the replay must publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    ts: i64,
    topic: String,
    payload: Vec<u8>,
    qos: i64,
    retain: bool,
}

/// Records `rounds` rounds of messages, `gap` apart, with Attic; returns
/// the config path and the stored rows merged by timestamp.
fn record(dir: &TempDir, rounds: usize, gap: Duration) -> (PathBuf, Vec<Stored>) {
    let broker = Mosquitto::start();
    let data = dir.join("data");
    let mut c = TestClient::connect(broker.port(), "pub");
    c.publish("a/retained", b"kept", 1, true);
    // Attic stops by itself once every message is committed: nothing
    // polls the files while it writes them.
    let want = 2 + 3 * rounds;
    let mut attic = Attic::start_with_args(
        &config(&data, broker.port()),
        dir,
        &["--stop-after-messages", &want.to_string()],
    );
    attic.wait_ready(T);
    for i in 0..rounds {
        c.publish("a/text", format!("é {i}").as_bytes(), 1, false);
        c.publish(
            "a/bin",
            &[0xff, 0x00, u8::try_from(i % 256).unwrap()],
            0,
            false,
        );
        c.publish("b/empty", b"", 1, false);
        std::thread::sleep(gap); // the recorded gaps are what is replayed
    }
    c.publish("b/end", b"end", 1, false);
    let status = attic
        .wait_exit(T)
        .expect("attic stops after the last message");
    assert!(status.success(), "{}", attic.log());
    let mut rows = Vec::new();
    for stream in ["alpha", "beta"] {
        for r in all_rows(&data.join(stream)) {
            rows.push(Stored {
                ts: r.ts,
                topic: r.topic,
                payload: r.payload,
                qos: r.qos,
                retain: r.retain,
            });
        }
    }
    rows.sort_by_key(|r| r.ts);
    assert_eq!(rows.len(), want);
    (attic.config_path().to_path_buf(), rows)
}

fn replay(
    dir: &TempDir,
    cfg: &Path,
    port: u16,
    extra: &[&str],
) -> (std::process::Output, Duration) {
    let broker = format!("127.0.0.1:{port}");
    let mut args = vec![
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        "--broker",
        &broker,
    ];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let out = run_attic_in(dir, &args);
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "attic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, took)
}

/// Subscribes afresh to `filter` and returns the retained messages the
/// broker holds: a marker published after the subscription arrives after
/// all of them.
fn retained(port: u16, filter: &str) -> Vec<(String, Vec<u8>)> {
    let mut sub = TestClient::connect(port, "retained-check");
    sub.subscribe(filter, 1);
    sub.subscribe("marker", 1);
    let mut p = TestClient::connect(port, "marker");
    p.publish("marker", b"", 1, false);
    let mut out = Vec::new();
    loop {
        let m = sub.recv_timeout(T).expect("the marker");
        if m.topic == "marker" {
            return out;
        }
        assert!(m.retain, "only retained messages come before the marker");
        out.push((m.topic.clone(), m.payload.to_vec()));
    }
}

#[test]
fn replay_at_speed_0_publishes_every_row_in_order_with_exact_bytes_and_retain_off() {
    let dir = TempDir::new("replay");
    // More rows than one loop turn publishes (512).
    let (cfg, rows) = record(&dir, 200, Duration::from_millis(2));
    assert!(rows.iter().any(|r| r.retain));
    let target = Mosquitto::start();
    let mut sub = TestClient::connect(target.port(), "sub");
    sub.subscribe("replayed/#", 2);

    // QoS as stored. The broker may reorder across QoS levels for a slow
    // subscriber, so order is checked per QoS here and overall below.
    let (out, _) = replay(
        &dir,
        &cfg,
        target.port(),
        &["--speed", "0", "--topic-prefix", "replayed/"],
    );
    // A finished replay ends with one summary line.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "attic replay: {} rows published to 127.0.0.1:{}",
            rows.len(),
            target.port()
        ),
        "{err}"
    );
    let got = sub.recv_n(rows.len(), T);
    for qos in [0, 1] {
        let g: Vec<_> = got.iter().filter(|p| p.qos as i64 == qos).collect();
        let w: Vec<_> = rows.iter().filter(|r| r.qos == qos).collect();
        assert_eq!(g.len(), w.len(), "QoS {qos}: QoS as stored");
        for (i, (g, w)) in g.iter().zip(&w).enumerate() {
            assert_eq!(
                g.topic,
                format!("replayed/{}", w.topic),
                "QoS {qos} row {i}"
            );
            assert_eq!(g.payload.as_ref(), &w.payload[..], "QoS {qos} row {i}");
        }
    }
    assert!(
        retained(target.port(), "replayed/#").is_empty(),
        "retain is off by default"
    );

    // One QoS for all: every row in stored order; --retain-as-stored keeps
    // the retained row retained on the broker.
    replay(
        &dir,
        &cfg,
        target.port(),
        &[
            "--speed",
            "0",
            "--topic-prefix",
            "replayed/",
            "--qos",
            "1",
            "--retain-as-stored",
        ],
    );
    let got = sub.recv_n(rows.len(), T);
    for (i, (g, w)) in got.iter().zip(&rows).enumerate() {
        assert_eq!(g.topic, format!("replayed/{}", w.topic), "row {i}");
        assert_eq!(g.payload.as_ref(), &w.payload[..], "row {i}");
        assert_eq!(g.qos as u8, 1, "row {i}");
    }
    assert_eq!(
        retained(target.port(), "replayed/#"),
        [("replayed/a/retained".to_owned(), b"kept".to_vec())]
    );

    // All at QoS 0: no ack paces the loop, every turn's burst goes on.
    let (_, took) = replay(
        &dir,
        &cfg,
        target.port(),
        &["--speed", "0", "--qos", "0", "--topic-prefix", "replayed/"],
    );
    assert!(
        took < Duration::from_secs(10),
        "{} rows at QoS 0 took {took:?}",
        rows.len()
    );
    let got = sub.recv_n(rows.len(), T);
    assert!(
        got.iter()
            .zip(&rows)
            .all(|(g, w)| g.topic == format!("replayed/{}", w.topic)
                && g.payload.as_ref() == &w.payload[..])
    );
}

#[test]
fn replay_at_a_finite_speed_lasts_the_recorded_span_divided_by_the_speed() {
    let dir = TempDir::new("replay-speed");
    let (cfg, rows) = record(&dir, 12, Duration::from_millis(150));
    let span = Duration::from_micros(u64::try_from(rows.last().unwrap().ts - rows[0].ts).unwrap());
    assert!(span > Duration::from_millis(1_500), "{span:?}");
    let target = Mosquitto::start();
    let mut sub = TestClient::connect(target.port(), "sub");
    sub.subscribe("#", 1);
    let speed = 2.0;
    let (_, took) = replay(&dir, &cfg, target.port(), &["--speed", "2", "--qos", "1"]);
    let expected = span.div_f64(speed);
    assert!(
        took >= expected && took <= expected + Duration::from_millis(1_500),
        "replay took {took:?}, recorded span {span:?} / {speed} = {expected:?}"
    );
    let got = sub.recv_n(rows.len(), T);
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    let want: Vec<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, want);

    // SIGINT stops a slow replay cleanly: what was sent arrived, exit 0.
    let mut child = common::attic::base_command()
        .args([
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            "--speed",
            "0.05",
            "--qos",
            "1",
        ])
        .arg("--broker")
        .arg(format!("127.0.0.1:{}", target.port()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = sub.recv_n(1, T);
    assert_eq!(first[0].topic, rows[0].topic);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "replay did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("stopped after"), "{err}");
}

#[test]
fn a_broker_restart_during_a_replay_loses_no_qos_1_row() {
    let dir = TempDir::new("replay-restart");
    let (cfg, rows) = record(&dir, 12, Duration::from_millis(150));
    let mut target = Mosquitto::builder().persistence(true).start();
    let mut sub = TestClient::connect_with(target.port(), "sub-persist", false);
    sub.subscribe("#", 1);
    let mut child = common::attic::base_command()
        .args(["replay", "--config", cfg.to_str().unwrap(), "--qos", "1"])
        .arg("--broker")
        .arg(format!("127.0.0.1:{}", target.port()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A few rows arrive, then the broker goes away under the replay.
    let mut got: Vec<(String, Vec<u8>)> = sub
        .recv_n(4, T)
        .iter()
        .map(|p| (p.topic.clone(), p.payload.to_vec()))
        .collect();
    drop(sub);
    target.restart();
    let mut sub = TestClient::connect_with(target.port(), "sub-persist", false);
    let want: std::collections::BTreeSet<(String, Vec<u8>)> = rows
        .iter()
        .map(|r| (r.topic.clone(), r.payload.clone()))
        .collect();
    let t = Instant::now();
    while !want.iter().all(|w| got.contains(w)) {
        assert!(t.elapsed() < T, "missing after a restart: {:?}", {
            want.iter().filter(|w| !got.contains(w)).collect::<Vec<_>>()
        });
        if let Some(p) = sub.recv_timeout(Duration::from_millis(200)) {
            got.push((p.topic.clone(), p.payload.to_vec()));
        }
    }
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < T, "replay did not finish after the restart");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("connection closed"),
        "the replay saw the restart: {err}"
    );
}

/// A mosquitto with a TLS listener whose certificate `pki.ca` signed.
fn tls_broker(pki: &TestPki) -> Mosquitto {
    Mosquitto::builder()
        .tls_listener(TlsListener {
            cafile: pki.ca.clone(),
            certfile: pki.server_cert.clone(),
            keyfile: pki.server_key.clone(),
            require_certificate: false,
        })
        .start()
}

#[test]
fn replay_with_a_tls_ca_file_publishes_every_row_over_tls_with_exact_bytes() {
    let dir = TempDir::new("replay-tls");
    let (cfg, rows) = record(&dir, 5, Duration::from_millis(5));
    let pki = TestPki::new(dir.path());
    let target = tls_broker(&pki);
    let mut sub = TestClient::connect(target.port(), "sub");
    sub.subscribe("#", 1);

    // A host name, as a certificate names it: looked up, then checked
    // against the broker's certificate (`localhost`).
    let broker = format!("localhost:{}", target.tls_port());
    let ca = pki.ca.to_str().unwrap();
    let out = run_attic_in(
        &dir,
        &[
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            "--broker",
            &broker,
            "--speed",
            "0",
            "--qos",
            "1",
            "--tls-ca-file",
            ca,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sub.recv_n(rows.len(), T);
    for (i, (g, w)) in got.iter().zip(&rows).enumerate() {
        assert_eq!(g.topic, w.topic, "row {i}");
        assert_eq!(g.payload.as_ref(), &w.payload[..], "row {i}");
    }
}

#[test]
fn a_bad_tls_ca_file_exits_2_with_one_line_before_connecting() {
    let dir = TempDir::new("replay-tls-bad-ca");
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    // Nothing listens there: the check comes before any connect (and
    // before the config is read: none exists).
    let broker = format!("127.0.0.1:{}", free_port());
    for (ca, needle) in [
        (&not_pem, "holds no certificate"),
        (&missing, "cannot read"),
    ] {
        let out = run_attic_in(
            &dir,
            &[
                "replay",
                "--broker",
                &broker,
                "--tls-ca-file",
                ca.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("attic replay: --tls-ca-file: ") && err.contains(needle),
            "{err}"
        );
    }
}

/// Waits until `log` holds `text` at least twice (a retry), while the
/// replay keeps running.
fn wait_for_two(child: &mut std::process::Child, log: &Path, text: &str) -> String {
    wait_for(
        T,
        format_args!("{text:?} twice in {}", log.display()),
        || {
            let now = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("replay exited ({status}) while retrying:\n{now}");
            }
            (now.matches(text).count() >= 2).then_some(now)
        },
    )
}

/// Stops a retrying replay with SIGINT; returns its exit code and log.
fn interrupt(mut child: std::process::Child, log: &Path) -> (Option<i32>, String) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `pid` is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = wait_for(T, "the replay to stop after SIGINT", || {
        child.try_wait().unwrap()
    });
    (status.code(), std::fs::read_to_string(log).unwrap())
}

#[test]
fn a_wrong_ca_says_unknown_issuer_and_retries_as_for_an_unreachable_broker() {
    let dir = TempDir::new("replay-tls-wrong-ca");
    let (cfg, rows) = record(&dir, 1, Duration::from_millis(1));
    let pki = TestPki::new(dir.path());
    let target = tls_broker(&pki);
    let mut sub = TestClient::connect(target.port(), "sub");
    sub.subscribe("#", 1);
    let cfg = cfg.to_str().unwrap();

    // The behaviour to match: nothing listens, the replay keeps retrying
    // with backoff until stopped.
    let nobody = format!("127.0.0.1:{}", free_port());
    let (mut child, log) = spawn_attic_in(
        &dir,
        &[
            "replay", "--config", cfg, "--broker", &nobody, "--speed", "0",
        ],
    );
    wait_for_two(&mut child, &log, "cannot connect");
    let (code, unreachable_log) = interrupt(child, &log);
    assert_eq!(code, Some(0), "{unreachable_log}");
    assert!(
        unreachable_log.contains("stopped after 0 rows"),
        "{unreachable_log}"
    );

    // A CA that did not sign the broker's certificate: one clear line per
    // attempt, retried the same way, nothing published.
    let broker = format!("127.0.0.1:{}", target.tls_port());
    let (mut child, log) = spawn_attic_in(
        &dir,
        &[
            "replay",
            "--config",
            cfg,
            "--broker",
            &broker,
            "--speed",
            "0",
            "--tls-ca-file",
            pki.other_ca.to_str().unwrap(),
        ],
    );
    let text = wait_for_two(&mut child, &log, "unknown issuer");
    let line = text.lines().find(|l| l.contains("unknown issuer")).unwrap();
    assert!(line.contains("certificate"), "{line}");
    let (code, tls_log) = interrupt(child, &log);
    assert_eq!(code, Some(0), "{tls_log}");
    assert!(tls_log.contains("stopped after 0 rows"), "{tls_log}");
    assert!(
        sub.recv_timeout(Duration::from_millis(200)).is_none(),
        "nothing of the {} rows reached the broker",
        rows.len()
    );
}
