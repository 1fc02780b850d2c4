//! Field hazards, done for real: a reader holding the file being written
//! while SIGHUP and SIGTERM arrive, a second stop signal during a held
//! finalisation, two instances on one host with copied configs, a broker
//! that sends a PUBLISH and closes at once, a resolver that takes 5 s, and
//! the fsync of a finished file before its rename (under strace).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::attic::ATTIC_EXE;
use common::fake_broker::{self as fake, FakeConn};
use common::files::count_rows;
use common::*;
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// One stream of [`config`]: folder, broker address, port, topic.
struct S<'a> {
    prefix: &'a str,
    host: &'a str,
    port: u16,
    topic: &'a str,
}

fn config(data: &Path, streams: &[S<'_>]) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n",
        data.display()
    );
    for s in streams {
        y.push_str(&format!(
            "  - mqtt-broker-address: \"{}\"\n    mqtt-broker-port: {}\n    topic: \"{}\"\n    prefix: \"{}\"\n    file-rotation-time-seconds: 3600\n    commit-interval-ms: 100\n    coalesce-ms: 0\n",
            s.host, s.port, s.topic, s.prefix
        ));
    }
    y
}

fn wait_subscribed(a: &mut Attic, n: usize) {
    let log = a.log_path().display().to_string();
    wait_until(T, format!("{n} subscription(s) (log {log})"), || {
        a.log().matches("subscribed; storing").count() >= n
    });
}

/// Every payload stored under `dir` (finished files only), as numbers.
fn stored(dir: &Path) -> BTreeSet<usize> {
    all_rows(dir)
        .iter()
        .filter_map(|r| std::str::from_utf8(&r.payload).ok()?.parse().ok())
        .collect()
}

/// Rows committed so far under `dir`, in `.part` and finished files alike
/// (read-only, never holding a lock for long).
fn committed(dir: &Path) -> usize {
    list_files(dir)
        .iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".sqlite") || s.ends_with(".sqlite.part")
        })
        .map(|p| count_rows(p).unwrap_or(0))
        .sum()
}

/// Publishes `payload` on `topic` and returns how long it took until a
/// new row was committed under `dir`.
fn commit_latency(c: &mut TestClient, topic: &str, payload: usize, dir: &Path) -> Duration {
    let before = committed(dir);
    let t = Instant::now();
    c.publish(topic, payload.to_string().as_bytes(), 0, false);
    c.flush();
    wait_until(
        T,
        format!("message {payload} committed under {}", dir.display()),
        || committed(dir) > before,
    );
    t.elapsed()
}

/// A reader as `sqlite3` would be one: the file opened read-write, a read
/// transaction begun and kept open.
fn hold_read_transaction(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch("BEGIN").unwrap();
    let n: i64 = c
        .query_row("select count(*) from data", [], |r| r.get(0))
        .unwrap();
    assert!(n > 0, "the reader sees the committed rows");
    c
}

fn the_only_part(dir: &Path) -> PathBuf {
    let parts = part_files(dir);
    assert_eq!(
        parts.len(),
        1,
        "one .part under {}: {parts:?}",
        dir.display()
    );
    parts[0].clone()
}

#[test]
fn a_reader_holding_the_open_file_delays_neither_the_other_stream_nor_the_stop() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("reader");
    let data = dir.join("data");
    let port = broker.port();
    let yaml = config(
        &data,
        &[
            S {
                prefix: "held",
                host: "127.0.0.1",
                port,
                topic: "held/#",
            },
            S {
                prefix: "free",
                host: "127.0.0.1",
                port,
                topic: "free/#",
            },
        ],
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic, 2);
    let mut c = TestClient::connect(port, "pub");
    let held_dir = data.join("held");
    let free_dir = data.join("free");
    for i in 0..50 {
        c.publish("held/x", i.to_string().as_bytes(), 0, false);
    }
    c.flush();
    wait_until(T, "50 rows in the held stream's file", || {
        committed(&held_dir) >= 50
    });
    let part = the_only_part(&held_dir);
    let reader = hold_read_transaction(&part);

    // SIGHUP: the held file cannot be finished; the loop goes on.
    attic.signal(libc::SIGHUP);
    attic.wait_log_contains("is held open by a reader", T);
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        worst = worst.max(commit_latency(&mut c, "free/x", 1000 + i, &free_dir));
        // the held stream keeps storing too, into its next file
        c.publish("held/x", (50 + i).to_string().as_bytes(), 0, false);
        c.flush();
    }
    // commit-interval-ms is 100; a busy wait on the reader took ~4 s.
    assert!(
        worst < Duration::from_millis(1500),
        "the other stream's commits waited up to {worst:?}"
    );
    wait_until(T, "70 rows in the held stream", || {
        committed(&held_dir) >= 70
    });
    assert!(
        part.exists(),
        "the held file is still a .part while the reader holds it"
    );

    // SIGTERM with the reader still there: the stop does not wait for it.
    let t = Instant::now();
    attic.signal(libc::SIGTERM);
    let status = attic
        .wait_exit(Duration::from_secs(5))
        .expect("attic exits");
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{}", attic.log());
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert!(part.exists(), "left as .part for the next start");
    drop(reader);

    // The next start finishes the left .part; nothing is lost.
    let mut again = Attic::start(&yaml, &dir);
    again.wait_log_contains("recovered", T);
    wait_subscribed(&mut again, 2);
    again.stop_clean();
    assert!(part_files(&data).is_empty(), "{:?}", part_files(&data));
    assert_eq!(stored(&held_dir), (0..70).collect::<BTreeSet<_>>());
    assert_eq!(stored(&free_dir), (1000..1020).collect::<BTreeSet<_>>());
}

#[test]
fn a_second_stop_signal_during_a_held_finalisation_exits_at_once() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("second-signal");
    let data = dir.join("data");
    let port = broker.port();
    let yaml = config(
        &data,
        &[S {
            prefix: "held",
            host: "127.0.0.1",
            port,
            topic: "held/#",
        }],
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_subscribed(&mut attic, 1);
    let mut c = TestClient::connect(port, "pub");
    for i in 0..10 {
        c.publish("held/x", i.to_string().as_bytes(), 0, false);
    }
    c.flush();
    let held_dir = data.join("held");
    wait_until(T, "10 rows", || committed(&held_dir) >= 10);
    let part = the_only_part(&held_dir);
    let reader = hold_read_transaction(&part);

    attic.signal(libc::SIGTERM);
    attic.wait_log_contains("is held open by a reader", T);
    let t = Instant::now();
    attic.signal(libc::SIGTERM);
    let status = attic
        .wait_exit(Duration::from_secs(5))
        .expect("attic exits");
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{}", attic.log());
    assert!(
        took < Duration::from_millis(500),
        "the second signal took {took:?} to end the process"
    );
    assert!(
        attic.log().contains("second stop signal"),
        "{}",
        attic.log()
    );
    assert!(part.exists());
    drop(reader);

    let mut again = Attic::start(&yaml, &dir);
    again.wait_log_contains("recovered", T);
    again.stop_clean();
    assert_eq!(stored(&held_dir), (0..10).collect::<BTreeSet<_>>());
}

#[test]
fn two_instances_with_copied_configs_and_their_own_data_folders_both_stay_connected() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("two-instances");
    let port = broker.port();
    let stream = |data: &Path| {
        config(
            data,
            &[S {
                prefix: "all",
                host: "127.0.0.1",
                port,
                topic: "t/#",
            }],
        )
    };
    let (data_a, data_b) = (dir.join("a"), dir.join("b"));
    let mut a = Attic::start(&stream(&data_a), &dir);
    let mut b = Attic::start(&stream(&data_b), &dir);
    wait_subscribed(&mut a, 1);
    wait_subscribed(&mut b, 1);
    let mut c = TestClient::connect(port, "pub");
    for i in 0..200 {
        c.publish("t/x", i.to_string().as_bytes(), 0, false);
        if i % 50 == 49 {
            c.flush();
            std::thread::sleep(Duration::from_millis(100)); // spread over ~0.5 s
        }
    }
    c.flush();
    let (dir_a, dir_b) = (data_a.join("all"), data_b.join("all"));
    wait_until(T, "200 rows in each instance", || {
        committed(&dir_a) >= 200 && committed(&dir_b) >= 200
    });
    a.stop_clean();
    b.stop_clean();
    let every: BTreeSet<usize> = (0..200).collect();
    assert_eq!(stored(&dir_a), every);
    assert_eq!(stored(&dir_b), every);
    for (name, log) in [("a", a.log()), ("b", b.log())] {
        assert!(
            !log.contains("connection closed"),
            "instance {name} lost its connection:\n{log}"
        );
        assert_eq!(
            log.matches("connected to broker").count(),
            1,
            "{name}:\n{log}"
        );
    }
}

#[test]
fn two_instances_sharing_one_client_id_are_told_that_another_client_uses_it() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("same-id");
    let port = broker.port();
    let with_id = |data: &Path| {
        config(
            data,
            &[S {
                prefix: "all",
                host: "127.0.0.1",
                port,
                topic: "t/#",
            }],
        ) + "    client-id: \"attic-copied\"\n"
    };
    let mut a = Attic::start(&with_id(&dir.join("a")), &dir);
    wait_subscribed(&mut a, 1);
    let mut b = Attic::start(&with_id(&dir.join("b")), &dir);
    let warning = "another client probably uses the same client id \"attic-copied\"";
    wait_until(T, format!("{warning:?} in a log"), || {
        a.log().contains(warning) || b.log().contains(warning)
    });
    a.stop_clean();
    b.stop_clean();
}

#[test]
fn a_publish_followed_by_a_close_in_one_write_is_stored_and_noticed_at_once() {
    let broker = FakeBroker::start(|conn: &mut FakeConn| {
        conn.handshake();
        conn.accept_subscription();
        if conn.index() == 0 {
            let mut bytes = fake::publish_frame("t/last", b"last words", 0, false, 0);
            bytes.extend(fake::publish_frame("t/last", b"and more", 0, false, 0));
            conn.send_raw(&bytes);
            conn.close();
        } else {
            conn.serve_until_closed(|_, _| {});
        }
    });
    let dir = TempDir::new("publish-close");
    let data = dir.join("data");
    let yaml = config(
        &data,
        &[S {
            prefix: "f",
            host: "127.0.0.1",
            port: broker.port(),
            topic: "t/#",
        }],
    ) + "    keep-alive-seconds: 30\n";
    let mut attic = Attic::start(&yaml, &dir);
    let t = Instant::now();
    attic.wait_log_contains("the broker closed the connection", T);
    // Noticed in the same wake-up, not at the keep-alive (45 s here).
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    broker.wait_for_connections(2, T);
    let f = data.join("f");
    wait_until(T, "both messages committed", || committed(&f) >= 2);
    attic.stop_clean();
    let rows = all_rows(&f);
    let payloads: Vec<&[u8]> = rows.iter().map(|r| &r.payload[..]).collect();
    assert_eq!(payloads, vec![&b"last words"[..], &b"and more"[..]]);
    broker.assert_scripts_ok();
}

#[test]
fn a_resolver_that_takes_five_seconds_does_not_delay_another_streams_commits() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("slow-dns");
    let data = dir.join("data");
    let port = broker.port();
    let yaml = config(
        &data,
        &[
            // a host name: looked up (slowly), then every address is tried
            // (`localhost` may give ::1 first, where the broker does not listen)
            S {
                prefix: "named",
                host: "localhost",
                port,
                topic: "named/#",
            },
            S {
                prefix: "ip",
                host: "127.0.0.1",
                port,
                topic: "ip/#",
            },
        ],
    );
    let started = Instant::now();
    let mut attic = Attic::start_with_env(&yaml, &dir, &[("ATTIC_TEST_RESOLVE_DELAY_MS", "5000")]);
    wait_subscribed(&mut attic, 1);
    assert!(
        !attic.log().contains("[named] subscribed"),
        "the named stream cannot be up before its lookup ends"
    );
    let mut c = TestClient::connect(port, "pub");
    let ip = data.join("ip");
    let mut worst = Duration::ZERO;
    let mut i = 0;
    // Commits of the other stream while the lookup is under way.
    while started.elapsed() < Duration::from_secs(4) {
        worst = worst.max(commit_latency(&mut c, "ip/x", i, &ip));
        i += 1;
    }
    assert!(i >= 5, "only {i} messages during the lookup");
    assert!(
        worst < Duration::from_millis(1500),
        "a commit waited {worst:?} while the name was being looked up"
    );
    wait_subscribed(&mut attic, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the delay was not applied"
    );
    c.publish("named/x", b"7", 0, false);
    c.flush();
    wait_until(T, "the named stream stores", || {
        committed(&data.join("named")) >= 1
    });
    attic.stop_clean();
    assert_eq!(stored(&ip).len(), i);
}

#[test]
fn a_finished_file_is_fsynced_after_its_last_write_and_before_its_rename() {
    let Some(strace) = ["/usr/bin/strace", "/bin/strace"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        eprintln!("skipping: strace not found; the fsync-before-rename order is not checked");
        return;
    };
    if std::env::var_os("ATTIC_TEST_RUNNER").is_some() {
        // Under qemu-user, strace would trace the emulator's own calls.
        eprintln!("skipping under emulation: the fsync-before-rename order is checked natively");
        return;
    }
    let broker = Mosquitto::start();
    let dir = TempDir::new("fsync");
    let data = dir.join("data");
    let yaml = config(
        &data,
        &[S {
            prefix: "s",
            host: "127.0.0.1",
            port: broker.port(),
            topic: "t/#",
        }],
    );
    let config_path = dir.join("attic.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let trace = dir.join("trace.txt");
    let log = std::fs::File::create(dir.join("attic.log")).unwrap();
    let mut child = std::process::Command::new(strace)
        .args(["-f", "-y", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=pwrite64,write,fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg(ATTIC_EXE)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let attic_log = || std::fs::read_to_string(dir.join("attic.log")).unwrap_or_default();
    wait_until(T, "subscribed (attic.log)", || {
        attic_log().contains("subscribed; storing")
    });
    let mut c = TestClient::connect(broker.port(), "pub");
    for i in 0..100 {
        c.publish("t/x", i.to_string().as_bytes(), 0, false);
    }
    c.flush();
    let s = data.join("s");
    wait_until(T, "100 rows", || committed(&s) >= 100);
    // attic is strace's child: find it, and stop it (the file is finished
    // at stop, on the helper thread).
    let children =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id()))
            .unwrap();
    let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: `pid` is our grandchild, still running (strace is).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", attic_log());
    let finished = finished_files(&s);
    assert_eq!(finished.len(), 1, "{finished:?}");
    let part = format!("{}.part", finished[0].display());
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let on_part = |l: &str, calls: &[&str]| {
        calls.iter().any(|c| l.contains(&format!("{c}("))) && l.contains(&format!("<{part}>"))
    };
    let rename = lines
        .iter()
        // The `.part` as the source (a new file is made as `.init` and
        // renamed to `.part` first).
        .position(|l| l.contains("rename") && l.contains(&format!("\"{part}\",")))
        .unwrap_or_else(|| panic!("no rename of {part} in the trace:\n{text}"));
    let last_write = lines[..rename]
        .iter()
        .rposition(|l| on_part(l, &["pwrite64", "write"]))
        .unwrap_or_else(|| panic!("no write to {part} before its rename:\n{text}"));
    let sync = lines[last_write..rename]
        .iter()
        .any(|l| on_part(l, &["fsync", "fdatasync"]));
    assert!(
        sync,
        "no fsync of {part} between its last write (line {last_write}) and its rename (line {rename}):\n{}",
        lines[last_write..=rename].join("\n")
    );
}

#[test]
fn a_suback_that_refuses_every_filter_is_an_error_not_subscribed() {
    use mqttbytes::v4::SubscribeReasonCode;
    let broker = FakeBroker::start(|conn: &mut FakeConn| {
        conn.handshake();
        let s = conn.expect_subscribe();
        let refused = s
            .filters
            .iter()
            .map(|_| SubscribeReasonCode::Failure)
            .collect();
        conn.send_suback(s.pkid, refused);
        conn.serve_until_closed(|_, _| {});
    });
    let dir = TempDir::new("suback-refused");
    let yaml = config(
        &dir.join("data"),
        &[S {
            prefix: "r",
            host: "127.0.0.1",
            port: broker.port(),
            topic: "t/#",
        }],
    );
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("the broker refused every subscription", T);
    attic.stop_clean();
    let log = attic.log();
    assert!(
        log.contains("broker refused subscription to \"t/#\""),
        "{log}"
    );
    assert!(!log.contains("subscribed; storing"), "{log}");
    broker.assert_scripts_ok();
}

#[test]
fn a_reconnect_that_finds_no_persistent_session_is_a_warning() {
    use mqttbytes::v4::ConnectReturnCode;
    let broker = FakeBroker::start(|conn: &mut FakeConn| {
        let c = conn.expect_connect();
        assert!(!c.clean_session, "clean-session: false is sent");
        // The broker never has the session (lost or expired).
        conn.send_connack(false, ConnectReturnCode::Success);
        conn.accept_subscription();
        if conn.index() == 0 {
            conn.close();
        } else {
            conn.serve_until_closed(|_, _| {});
        }
    });
    let dir = TempDir::new("no-session");
    let yaml = config(
        &dir.join("data"),
        &[S {
            prefix: "p",
            host: "127.0.0.1",
            port: broker.port(),
            topic: "t/#",
        }],
    ) + "    qos: 1\n    clean-session: false\n    client-id: \"attic-persistent\"\n";
    let mut attic = Attic::start(&yaml, &dir);
    broker.wait_for_connections(2, T);
    let warning = "the broker kept no session for client id \"attic-persistent\"";
    attic.wait_log_contains(warning, T);
    attic.stop_clean();
    let log = attic.log();
    assert_eq!(
        log.matches(warning).count(),
        1,
        "only the reconnect warns:\n{log}"
    );
    assert!(
        log.contains("has no session for client id \"attic-persistent\" yet"),
        "{log}"
    );
    broker.assert_scripts_ok();
}

#[test]
fn the_report_publisher_acknowledges_a_qos_1_message_it_is_sent_anyway() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let acked = Arc::new(AtomicBool::new(false));
    let seen = acked.clone();
    let broker = FakeBroker::start(move |conn: &mut FakeConn| {
        let c = conn.handshake();
        if !c.client_id.contains("-performance-") {
            conn.accept_subscription();
            conn.serve_until_closed(|_, _| {});
            return;
        }
        // The publisher subscribes to nothing; a broker that sends it a
        // QoS 1 message anyway must get its PUBACK (else its window fills).
        conn.send_publish("stray/x", b"1", 1, false, 7);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !conn.is_closed() {
            if let Some(mqttbytes::v4::Packet::PubAck(a)) =
                conn.read_packet(Duration::from_millis(200))
            {
                assert_eq!(a.pkid, 7);
                seen.store(true, Ordering::SeqCst);
                break;
            }
        }
        conn.serve_until_closed(|_, _| {});
    });
    let dir = TempDir::new("publisher-ack");
    let port = broker.port();
    let yaml = config(
        &dir.join("data"),
        &[S {
            prefix: "s",
            host: "127.0.0.1",
            port,
            topic: "t/#",
        }],
    ) + &format!(
        "log-performance: true\nlog-performance-stream:\n  topic: \"attic/perf\"\n  mqtt-broker-address: \"127.0.0.1\"\n  mqtt-broker-port: {port}\n"
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_until(T, "the PUBACK of the stray message", || {
        acked.load(Ordering::SeqCst)
    });
    attic.stop_clean();
    broker.assert_scripts_ok();
}
