//! Tests of the integration-test support code itself (tests/common), against
//! a real mosquitto and the fake broker; Attic is not needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use common::fake_broker::{self, HUGE_LEN};
use common::files::{count_rows, part_files, visible_rows, wait_for_finished_rows};
use common::*;
use mqttbytes::v4::ConnectReturnCode;
use mqttbytes::v4::Packet;
use rusqlite::Connection;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn all_bytes() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

#[test]
fn a_published_binary_payload_arrives_unchanged_at_every_qos() {
    let broker = Mosquitto::start();
    let mut sub = TestClient::connect(broker.port(), "selftest-sub");
    assert_eq!(sub.subscribe("bin/#", 2), 2);
    let mut publisher = TestClient::connect(broker.port(), "selftest-pub");
    let payload = all_bytes();
    for q in 0..=2u8 {
        publisher.publish(&format!("bin/{q}"), &payload, q, false);
        let got = sub.recv_timeout(T).expect("a message on bin/#");
        assert_eq!(got.topic, format!("bin/{q}"));
        assert_eq!(got.qos as u8, q);
        assert_eq!(&got.payload[..], &payload[..]);
    }
    publisher.publish("bin/empty", b"", 1, false);
    assert!(sub.recv_timeout(T).unwrap().payload.is_empty());
    assert!(sub.recv_timeout(Duration::from_millis(50)).is_none());
    publisher.disconnect();
    sub.disconnect();
}

#[test]
fn pipelined_qos0_and_windowed_qos1_bursts_all_arrive() {
    let broker = Mosquitto::builder().max_queued_messages(0).start();
    let mut sub = TestClient::connect(broker.port(), "burst-sub");
    sub.subscribe("burst/#", 1);
    let mut publisher = TestClient::connect(broker.port(), "burst-pub");
    publisher.publish_many(2000, |i| {
        (format!("burst/a/{}", i % 7), i.to_be_bytes().to_vec())
    });
    publisher.flush();
    let got = sub.recv_n(2000, T);
    assert_eq!(&got[1999].payload[..], &1999usize.to_be_bytes()[..]);
    publisher.publish_many_qos1(500, |i| {
        (
            "burst/b".to_string(),
            vec![u8::try_from(i % 251).unwrap(); 64],
        )
    });
    let got = sub.recv_n(500, T);
    assert!(got.iter().all(|p| p.payload.len() == 64));
}

#[test]
fn a_retained_message_survives_a_broker_restart_with_persistence() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let port = broker.port();
    let mut c = TestClient::connect(port, "retainer");
    c.publish("keep/me", &all_bytes(), 1, true);
    c.disconnect();
    assert_eq!(broker.stop().code(), Some(0));
    assert!(
        broker.dir().join("mosquitto.db").exists(),
        "SIGTERM saves persistence"
    );
    broker.restart();
    assert_eq!(broker.port(), port);
    let mut sub = TestClient::connect(port, "retain-reader");
    sub.subscribe("keep/#", 1);
    let got = sub
        .recv_timeout(T)
        .expect("the retained message after restart");
    assert!(got.retain);
    assert_eq!(&got.payload[..], &all_bytes()[..]);
}

#[test]
fn a_persistent_session_queue_survives_a_broker_restart() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let mut s = TestClient::connect_with(broker.port(), "durable", false);
    assert!(!s.session_present());
    s.subscribe("q/#", 1);
    s.disconnect();
    let mut p = TestClient::connect(broker.port(), "producer");
    for i in 0..3u8 {
        p.publish("q/x", &[i], 1, false);
    }
    p.disconnect();
    broker.restart();
    let mut s = TestClient::connect_with(broker.port(), "durable", false);
    assert!(s.session_present());
    let got = s.recv_n(3, T);
    let payloads: Vec<u8> = got.iter().map(|m| m.payload[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2]);
}

#[test]
fn a_killed_broker_restarts_on_the_same_port() {
    let mut broker = Mosquitto::start();
    let port = broker.port();
    broker.kill();
    assert!(!broker.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    broker.restart();
    let mut c = TestClient::connect(port, "after-kill");
    c.publish("x", b"y", 1, false);
    assert!(
        broker.log().contains("after-kill"),
        "log_type all logs client ids"
    );
}

#[test]
fn the_fake_broker_scripts_connack_suback_and_publish() {
    let fake = FakeBroker::start(|c| {
        let connect = c.expect_connect();
        assert_eq!(connect.client_id, "to-fake");
        c.send_connack(false, ConnectReturnCode::Success);
        let s = c.accept_subscription();
        assert_eq!(s.filters[0].path, "#");
        c.send_publish("fake/t", &[0, 159, 146, 150], 1, true, 7);
        match c.expect_packet("PUBACK") {
            Packet::PubAck(a) => assert_eq!(a.pkid, 7),
            other => panic!("expected PUBACK, got {other:?}"),
        }
        c.serve_until_closed(|_, _| {});
    });
    let mut client = TestClient::connect(fake.port(), "to-fake");
    client.subscribe("#", 1);
    let got = client.recv_timeout(T).expect("the scripted PUBLISH");
    assert_eq!(&got.payload[..], &[0, 159, 146, 150]);
    assert!(got.retain);
    client.flush();
    client.disconnect();
    assert_eq!(fake.connections(), 1);
    fake.assert_scripts_ok();
}

#[test]
fn the_fake_broker_counts_connections_and_sees_a_close() {
    let fake = FakeBroker::start(|c| {
        c.expect_connect();
        if c.index() == 0 {
            c.send_connack(false, ConnectReturnCode::NotAuthorized);
            c.close();
        } else {
            c.send_connack(false, ConnectReturnCode::Success);
            assert!(c.wait_closed(T), "client closes after its DISCONNECT");
        }
    });
    let port = fake.port();
    let refused = std::panic::catch_unwind(|| TestClient::connect(port, "c1"));
    assert!(refused.is_err(), "a refused CONNACK makes connect panic");
    TestClient::connect(fake.port(), "c2").disconnect();
    fake.wait_for_connections(2, T);
    assert_eq!(fake.connections(), 2);
    fake.assert_scripts_ok();
}

#[test]
fn the_fault_frames_fail_to_decode_the_way_their_names_say() {
    fn decode(bytes: &[u8], max: usize) -> Result<Packet, mqttbytes::Error> {
        mqttbytes::v4::read(&mut BytesMut::from(bytes), max)
    }
    use mqttbytes::Error as E;
    let max = 16 * 1024 * 1024;
    assert!(matches!(
        decode(&fake_broker::garbage(), max),
        Err(E::InvalidPacketType(0))
    ));
    assert!(matches!(
        decode(&fake_broker::malformed_remaining_length(), max),
        Err(E::MalformedRemainingLength)
    ));
    assert_eq!(
        decode(&fake_broker::huge_remaining_length_header(), max),
        Err(E::PayloadSizeLimitExceeded(HUGE_LEN))
    );
    assert!(matches!(
        decode(&fake_broker::huge_remaining_length_header(), usize::MAX),
        Err(E::InsufficientBytes(_))
    ));
    assert!(matches!(
        decode(&fake_broker::topic_len_beyond_packet(), max),
        Err(E::BoundaryCrossed(16))
    ));
    assert_eq!(
        decode(&fake_broker::invalid_utf8_topic_publish(), max),
        Err(E::TopicNotUtf8)
    );
    assert!(matches!(
        decode(&fake_broker::unexpected_packet(), max),
        Ok(Packet::Connect(_))
    ));
    assert!(matches!(
        decode(&fake_broker::puback_for_unknown_id(), max),
        Ok(Packet::PubAck(a)) if a.pkid == 0xBEEF
    ));
    assert!(matches!(
        decode(&fake_broker::truncated_publish(), max),
        Err(E::InsufficientBytes(_))
    ));
    let f = fake_broker::publish_frame("a/b", b"xyz", 1, true, 9);
    assert!(matches!(decode(&f, max), Ok(Packet::Publish(p)) if p.retain && p.pkid == 9));
}

#[test]
#[should_panic(expected = "timed out after")]
fn wait_until_times_out_with_a_message_naming_what_was_awaited() {
    wait_until(Duration::from_millis(30), "the impossible", || false);
}

#[test]
fn wait_until_message_names_the_condition() {
    let err = std::panic::catch_unwind(|| {
        wait_until(Duration::from_millis(10), "rows in /nowhere", || false);
    })
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("waiting for rows in /nowhere"), "{msg}");
}

#[test]
fn a_temp_dir_is_removed_on_success_and_kept_on_panic() {
    let ok = TempDir::new("selftest");
    let ok_path = ok.path().to_path_buf();
    assert!(ok_path.is_dir());
    drop(ok);
    assert!(!ok_path.exists());

    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let d = TempDir::new("selftest-fail");
        tx.send(d.path().to_path_buf()).unwrap();
        panic!("deliberate failure to keep the temp dir");
    })
    .join();
    assert!(r.is_err());
    let kept = rx.recv().unwrap();
    assert!(kept.is_dir(), "kept after a panic");
    std::fs::remove_dir_all(kept).unwrap();
}

const SCHEMA: &str = "CREATE TABLE data (reception_timestamp INTEGER NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL);
    CREATE INDEX topics ON data (topic);";

fn insert(c: &Connection, ts: i64, topic: &str, payload: &[u8]) {
    c.execute(
        "INSERT INTO data VALUES (?1, ?2, ?3, 1, 1)",
        rusqlite::params![ts, topic, payload],
    )
    .unwrap();
}

#[test]
fn the_file_helpers_read_finished_files_and_a_live_wal_part_file() {
    let dir = TempDir::new("files");
    let day = dir.subdir("data/everything/2024-01-02");
    let data = dir.join("data");

    let done = Connection::open(day.join("1000.sqlite")).unwrap();
    done.execute_batch(SCHEMA).unwrap();
    insert(&done, 1, "a", &[0, 255]);
    insert(&done, 2, "b", b"");
    drop(done);

    // A writer keeps the .part file open in WAL mode, as Attic does.
    let live = Connection::open(day.join("2000.sqlite.part")).unwrap();
    live.pragma_update(None, "journal_mode", "WAL").unwrap();
    live.execute_batch(SCHEMA).unwrap();
    insert(&live, 3, "c", b"x");

    assert_eq!(finished_files(&data).len(), 1);
    assert_eq!(part_files(&data).len(), 1);
    assert!(list_files(&data).len() >= 2);
    assert_eq!(wait_for_rows(&data, 3, T), 3);
    assert_eq!(wait_for_finished_rows(&data, 2, T), 2);
    insert(&live, 4, "d", b"y");
    assert_eq!(wait_for_rows(&data, 4, T), 4);
    assert_eq!(count_rows(&day.join("2000.sqlite.part")).unwrap(), 2);

    let rows = all_rows(&data);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        Row {
            ts: 1,
            topic: "a".into(),
            payload: vec![0, 255],
            qos: 1,
            retain: true
        }
    );
    drop(live);
    assert_eq!(visible_rows(&data), 4);
    assert_eq!(read_rows(&day.join("2000.sqlite.part")).len(), 2);
}

#[test]
fn the_file_helpers_return_nothing_for_a_missing_folder() {
    let dir = TempDir::new("files-missing");
    assert!(list_files(&dir.join("nope")).is_empty());
    assert!(all_rows(&dir.join("nope")).is_empty());
    assert_eq!(visible_rows(&dir.join("nope")), 0);
}

// The two tests below hold for the stub binary and for the real one alike:
// a config that is not YAML makes any `attic` exit on its own.

#[test]
fn the_attic_runner_writes_the_config_and_reaps_an_exiting_process() {
    let dir = TempDir::new("attic-runner");
    let mut attic = Attic::start("this is: [not yaml", &dir);
    assert!(attic.config_path().starts_with(dir.path()));
    assert_eq!(
        std::fs::read_to_string(attic.config_path()).unwrap(),
        "this is: [not yaml"
    );
    let status = attic
        .wait_exit(T)
        .expect("attic to exit on a broken config");
    assert!(!attic.is_running());
    assert_eq!(attic.stop(), status, "stop() after exit returns the status");
    let _ = attic.log();
    let second = Attic::start("also: [broken", &dir);
    assert_ne!(
        second.log_path(),
        attic.log_path(),
        "each start has its own log"
    );
}

#[test]
fn run_attic_returns_the_output_of_a_one_shot_command() {
    let dir = TempDir::new("attic-run");
    let missing = dir.join("missing.yaml");
    let out = run_attic_in(&dir, &["check", "--config", missing.to_str().unwrap()]);
    assert!(
        out.status.code().is_some(),
        "exited, not killed: {:?}",
        out.status
    );
    let _ = run_attic(&["--version"]);
}
