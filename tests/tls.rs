//! TLS against a real mosquitto with a TLS listener whose certificates each
//! test makes: a CA file works, `require_certificate` with and without a
//! client certificate, a wrong CA and a wrong server name give one clear
//! line and keep retrying, QoS 1 under load over TLS loses nothing, the
//! self-report goes out over TLS, and `attic check` checks the files.
//!
//! Test messages are published on the broker's plain listener; Attic
//! connects to the TLS one (mosquitto's log says which port it used).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A broker with a plain listener and a TLS one using `pki`.
fn tls_broker(pki: &TestPki, require_certificate: bool) -> Mosquitto {
    tls_broker_with(Mosquitto::builder(), pki, require_certificate)
}

fn tls_broker_with(b: MosquittoBuilder, pki: &TestPki, require_certificate: bool) -> Mosquitto {
    b.tls_listener(TlsListener {
        cafile: pki.ca.clone(),
        certfile: pki.server_cert.clone(),
        keyfile: pki.server_key.clone(),
        require_certificate,
    })
    .start()
}

/// One stream on the TLS port with the given `tls:` lines (6 spaces deep).
fn config(data: &Path, port: u16, qos: u8, tls_lines: &str) -> String {
    format!(
        "console-feedback-period-seconds: 60\n\
         data-folder: \"{}\"\n\
         streams:\n\
         \x20 - mqtt-broker-address: \"127.0.0.1\"\n\
         \x20   mqtt-broker-port: {port}\n\
         \x20   topic: \"#\"\n\
         \x20   prefix: \"tls\"\n\
         \x20   qos: {qos}\n\
         \x20   clean-session: false\n\
         \x20   client-id: \"attic-tls-test\"\n\
         \x20   commit-interval-ms: 100\n\
         \x20   tls:\n{tls_lines}\
         log-performance: false\n",
        data.display()
    )
}

fn ca_line(p: &Path) -> String {
    format!("      ca-file: \"{}\"\n", p.display())
}

fn client_lines(pki: &TestPki) -> String {
    format!(
        "      cert-file: \"{}\"\n      key-file: \"{}\"\n",
        pki.client_cert.display(),
        pki.client_key.display()
    )
}

/// Publishes `n` QoS 0 messages on the plain port, waits for them in the
/// files, stops Attic and returns the rows.
fn publish_wait_stop(attic: &mut Attic, broker: &Mosquitto, data: &Path, n: usize) -> Vec<Row> {
    let mut c = TestClient::connect(broker.port(), "tls-test-publisher");
    c.publish_many(n, |i| (format!("t/{i}"), format!("m{i}").into_bytes()));
    c.flush();
    wait_for_rows(data, n, T);
    attic.stop_clean();
    all_rows(data)
}

/// The broker accepted a connection from Attic's client id on its TLS port.
fn connected_over_tls(broker: &Mosquitto) -> bool {
    let log = broker.log();
    let port = format!("on port {}", broker.tls_port());
    log.lines()
        .any(|l| l.contains("New connection") && l.contains(&port))
        && log.contains("attic-tls-test")
}

/// Stops Attic and returns how long the stop took.
fn timed_stop(attic: &mut Attic) -> Duration {
    let started = Instant::now();
    attic.stop_clean();
    started.elapsed()
}

#[test]
fn a_broker_certificate_signed_by_the_ca_file_is_trusted_and_every_message_is_stored() {
    let dir = TempDir::new("tls-ca");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, false);
    let data = dir.join("data");
    let yaml = config(&data, broker.tls_port(), 0, &ca_line(&pki.ca));
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("subscribed; storing", T);
    assert!(connected_over_tls(&broker), "log:\n{}", broker.log());

    let rows = publish_wait_stop(&mut attic, &broker, &data, 500);
    let got: BTreeSet<_> = rows.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got.len(), 500);
    assert!(got.contains(&b"m499"[..]));
    assert!(
        !attic.log().contains("TLS:"),
        "no TLS error expected:\n{}",
        attic.log()
    );
}

#[test]
fn require_certificate_accepts_attic_with_its_client_certificate() {
    let dir = TempDir::new("tls-client-ok");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, true);
    let data = dir.join("data");
    let tls = format!("{}{}", ca_line(&pki.ca), client_lines(&pki));
    // By host name: resolved off the loop, checked against the DNS name.
    let yaml = config(&data, broker.tls_port(), 1, &tls).replace("\"127.0.0.1\"", "\"localhost\"");
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("subscribed; storing", T);
    let rows = publish_wait_stop(&mut attic, &broker, &data, 50);
    assert_eq!(rows.len(), 50);
}

/// Waits for `needle` twice in Attic's log (an error, then its retry),
/// checks nothing is stored, and that the stop is quick.
fn fails_clearly_and_keeps_retrying(
    attic: &mut Attic,
    broker: &Mosquitto,
    data: &Path,
    needle: &str,
) {
    let log_path = attic.log_path().display().to_string();
    wait_until(T, format!("{needle:?} twice in {log_path}"), || {
        attic.log().matches(needle).count() >= 2
    });
    let log = attic.log();
    let line = log.lines().find(|l| l.contains(needle)).unwrap();
    assert!(
        line.contains("retrying in"),
        "one line with the retry: {line}"
    );
    assert!(
        line.contains("connection closed: TLS: "),
        "its own sentence: {line}"
    );
    // Messages published meanwhile are not stored.
    let mut c = TestClient::connect(broker.port(), "tls-test-publisher");
    c.publish("t/x", b"not for attic", 0, false);
    c.flush();
    assert!(all_rows(data).is_empty());
    assert!(!log.contains("subscribed; storing"), "{log}");
    let took = timed_stop(attic);
    assert!(took < Duration::from_secs(2), "the stop took {took:?}");
}

#[test]
fn require_certificate_without_a_client_certificate_says_one_is_required_and_keeps_retrying() {
    let dir = TempDir::new("tls-client-missing");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, true);
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(&data, broker.tls_port(), 1, &ca_line(&pki.ca)),
        &dir,
    );
    fails_clearly_and_keeps_retrying(&mut attic, &broker, &data, "client certificate required");
}

#[test]
fn a_wrong_ca_says_unknown_issuer_keeps_retrying_stores_nothing_and_stops_quickly() {
    let dir = TempDir::new("tls-wrong-ca");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, false);
    let data = dir.join("data");
    let yaml = config(&data, broker.tls_port(), 1, &ca_line(&pki.other_ca));
    let mut attic = Attic::start(&yaml, &dir);
    fails_clearly_and_keeps_retrying(&mut attic, &broker, &data, "unknown issuer");
    assert!(attic.log().contains("other-ca.pem"), "names the CA file");
}

#[test]
fn a_wrong_server_name_says_name_mismatch_keeps_retrying_stores_nothing_and_stops_quickly() {
    let dir = TempDir::new("tls-wrong-name");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, false);
    let data = dir.join("data");
    let tls = format!(
        "{}      server-name: \"broker.example\"\n",
        ca_line(&pki.ca)
    );
    let mut attic = Attic::start(&config(&data, broker.tls_port(), 1, &tls), &dir);
    fails_clearly_and_keeps_retrying(&mut attic, &broker, &data, "name mismatch");
    let log = attic.log();
    assert!(log.contains("`broker.example`"), "{log}");
    assert!(
        log.contains("localhost"),
        "names what the certificate carries: {log}"
    );
}

#[test]
fn a_corrected_ca_file_is_read_at_the_next_attempt_without_a_restart() {
    let dir = TempDir::new("tls-fixed-ca");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, false);
    let data = dir.join("data");
    let ca = dir.join("trusted.pem");
    std::fs::copy(&pki.other_ca, &ca).unwrap();
    let mut attic = Attic::start(&config(&data, broker.tls_port(), 0, &ca_line(&ca)), &dir);
    attic.wait_log_contains("unknown issuer", T);
    std::fs::copy(&pki.ca, &ca).unwrap();
    attic.wait_log_contains("subscribed; storing", Duration::from_secs(40));
    let rows = publish_wait_stop(&mut attic, &broker, &data, 10);
    assert_eq!(rows.len(), 10);
}

#[test]
fn tls_to_a_plain_port_asks_whether_it_is_a_tls_listener() {
    let dir = TempDir::new("tls-plain-port");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, false);
    let data = dir.join("data");
    let mut attic = Attic::start(&config(&data, broker.port(), 0, &ca_line(&pki.ca)), &dir);
    attic.wait_log_contains("a TLS listener?", T);
    attic.stop_clean();
}

#[test]
fn tls_at_qos_1_under_load_loses_nothing() {
    // Under qemu (the Raspberry Pi targets in CI) TLS in a debug build is
    // many times slower: fewer messages, the same rule.
    let emulated = std::env::var_os("ATTIC_TEST_RUNNER").is_some();
    let n: usize = if emulated { 3_000 } else { 20_000 };
    let dir = TempDir::new("tls-qos1");
    let pki = TestPki::new(dir.path());
    // No queue limit: the broker must not drop what Attic reads more
    // slowly than the publisher sends (a debug build is slow at TLS).
    let broker = tls_broker_with(Mosquitto::builder().max_queued_messages(0), &pki, false);
    let data = dir.join("data");
    let yaml = config(&data, broker.tls_port(), 1, &ca_line(&pki.ca));
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("subscribed; storing", T);

    let mut c = TestClient::connect(broker.port(), "tls-test-publisher");
    let payload = |i: usize| format!("{i:08}-{}", "x".repeat(i % 300)).into_bytes();
    c.publish_many_qos1(n, |i| (format!("load/{}", i % 17), payload(i)));
    wait_for_rows(&data, n, Duration::from_secs(120));
    attic.stop_clean();

    let rows = all_rows(&data);
    let got: BTreeSet<Vec<u8>> = rows.iter().map(|r| r.payload.clone()).collect();
    let missing: Vec<usize> = (0..n).filter(|i| !got.contains(&payload(*i))).collect();
    assert!(
        missing.is_empty(),
        "{} of {n} missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(rows.iter().all(|r| r.qos == 1));
}

#[test]
fn the_self_report_is_published_over_tls() {
    let dir = TempDir::new("tls-report");
    let pki = TestPki::new(dir.path());
    let broker = tls_broker(&pki, true);
    let data = dir.join("data");
    let mut sub = TestClient::connect(broker.port(), "report-reader");
    sub.subscribe("attic/perf", 0);
    let yaml = format!(
        "console-feedback-period-seconds: 0.2\n\
         data-folder: \"{}\"\n\
         streams:\n\
         \x20 - mqtt-broker-address: \"127.0.0.1\"\n\
         \x20   mqtt-broker-port: {}\n\
         \x20   topic: \"nothing/here\"\n\
         \x20   prefix: \"s\"\n\
         log-performance: true\n\
         log-performance-stream:\n\
         \x20 topic: \"attic/perf\"\n\
         \x20 mqtt-broker-address: \"127.0.0.1\"\n\
         \x20 mqtt-broker-port: {}\n\
         \x20 tls:\n\
         \x20   ca-file: \"{}\"\n\
         \x20   cert-file: \"{}\"\n\
         \x20   key-file: \"{}\"\n",
        data.display(),
        broker.port(),
        broker.tls_port(),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let mut attic = Attic::start(&yaml, &dir);
    let report = sub
        .recv_timeout(T)
        .unwrap_or_else(|| panic!("no report over TLS; attic log:\n{}", attic.log()));
    assert_eq!(report.topic, "attic/perf");
    assert!(String::from_utf8_lossy(&report.payload).contains("performance_details"));
    attic.stop_clean();
}

#[test]
fn attic_check_rejects_a_missing_key_file_with_key_path_and_line() {
    let dir = TempDir::new("tls-check");
    let pki = TestPki::new(dir.path());
    let data = dir.join("data");
    let tls = format!(
        "{}      cert-file: \"{}\"\n      key-file: \"{}\"\n",
        ca_line(&pki.ca),
        pki.client_cert.display(),
        dir.join("no-such.key").display()
    );
    let path = dir.join("bad.yaml");
    std::fs::write(&path, config(&data, 8883, 0, &tls)).unwrap();
    let out = run_attic_in(&dir, &["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:15:"),
        "line of key-file: {stderr}"
    );
    assert!(stderr.contains("streams[0].tls.key-file"), "{stderr}");
    assert!(stderr.contains("no-such.key"), "{stderr}");
}

#[test]
fn attic_check_prints_the_tls_settings() {
    let dir = TempDir::new("tls-check-ok");
    let pki = TestPki::new(dir.path());
    let data = dir.join("data");
    let tls = format!("{}{}", ca_line(&pki.ca), client_lines(&pki));
    let path = dir.join("good.yaml");
    std::fs::write(
        &path,
        config(&data, 8883, 0, &tls).replace("    mqtt-broker-port: 8883\n", ""),
    )
    .unwrap();
    let out = run_attic_in(&dir, &["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("broker:         127.0.0.1:8883"),
        "{stdout}"
    );
    assert!(stdout.contains("tls:            on"), "{stdout}");
    assert!(
        stdout.contains(&format!("ca:           {}", pki.ca.display())),
        "{stdout}"
    );
    assert!(stdout.contains("client cert:"), "{stdout}");
    assert!(stdout.contains("server name:  127.0.0.1"), "{stdout}");
}

#[test]
fn attic_check_explains_a_version_1_client_certificate() {
    let dir = TempDir::new("tls-check-v1");
    let pki = TestPki::new(dir.path());
    // `openssl x509 -req` without extensions makes a version 1 certificate,
    // which rustls refuses: the README's recipe warns about it.
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-subj", "/CN=ca", "-keyout", "ca.key", "-out", "ca1.pem"],
    ]
    .concat();
    let Ok(made) = openssl(&ca) else {
        eprintln!("skipped: the openssl command is not installed");
        return;
    };
    assert!(made.status.success(), "{made:?}");
    let csr = [
        &["req"][..],
        &ec,
        &["-subj", "/CN=attic", "-keyout", "v1.key", "-out", "v1.csr"],
    ]
    .concat();
    assert!(openssl(&csr).unwrap().status.success());
    let sign = [
        "x509", "-req", "-in", "v1.csr", "-CA", "ca1.pem", "-CAkey", "ca.key",
    ];
    let sign = [
        &sign[..],
        &["-CAcreateserial", "-days", "30", "-out", "v1.pem"],
    ]
    .concat();
    let signed = openssl(&sign).unwrap();
    assert!(signed.status.success(), "{signed:?}");
    let tls = format!(
        "{}      cert-file: \"{}\"\n      key-file: \"{}\"\n",
        ca_line(&pki.ca),
        dir.join("v1.pem").display(),
        dir.join("v1.key").display()
    );
    let path = dir.join("v1.yaml");
    std::fs::write(&path, config(&dir.join("data"), 8883, 0, &tls)).unwrap();
    let out = run_attic_in(&dir, &["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("streams[0].tls.cert-file"), "{stderr}");
    assert!(stderr.contains("version 1"), "{stderr}");
}
