//! `mqtt-version: 5` against a real mosquitto: message properties stored
//! exactly in the `properties` column, a persistent v5 session keeping what
//! was published while Attic was stopped, a refused subscription's reason
//! in words (mosquitto's dynamic security plugin refuses it), and the
//! warning when another client takes our session over (from a scripted v5
//! broker: mosquitto 2.0.11 closes such a connection without saying why).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::files::open_ro;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// One stream per `(prefix, topics, extra YAML lines)`.
fn config(data: &Path, port: u16, streams: &[(&str, &[&str], &str)]) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n",
        data.display()
    );
    for (prefix, topics, extra) in streams {
        y.push_str(&format!(
            "  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    topic: [{}]\n    prefix: \"{prefix}\"\n    suffix: \"\"\n    file-rotation-time-seconds: 3600\n    commit-interval-ms: 100\n",
            topics
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for line in extra.lines() {
            y.push_str(&format!("    {line}\n"));
        }
    }
    y.push_str("log-performance: false\n");
    y
}

fn mosquitto_pub(port: u16, args: &[&str]) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run mosquitto_pub (package mosquitto-clients)");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(topic, properties)` of every row of the finished files under `dir`.
fn topic_and_properties(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for f in finished_files(dir) {
        let c = open_ro(&f).unwrap();
        let mut stmt = c
            .prepare("SELECT topic, properties FROM data ORDER BY rowid")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<Vec<(String, Option<String>)>>>()
            .unwrap();
        out.extend(rows);
    }
    out
}

fn meta(file: &Path, key: &str) -> String {
    open_ro(file)
        .unwrap()
        .query_row("SELECT value FROM attic_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .unwrap()
}

fn columns(file: &Path) -> Vec<String> {
    let c = open_ro(file).unwrap();
    let stmt = c.prepare("SELECT * FROM data").unwrap();
    (0..stmt.column_count())
        .map(|i| stmt.column_name(i).unwrap().to_owned())
        .collect()
}

#[test]
fn message_properties_are_stored_exactly_and_311_files_keep_their_five_columns() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("mqtt5-props");
    let data = dir.join("data");
    let yaml = config(
        &data,
        broker.port(),
        &[
            ("v5", &["props/#"], "qos: 1\nmqtt-version: 5"),
            ("v311", &["props/#"], "qos: 1"),
        ],
    );
    let mut attic = Attic::start(&yaml, &dir);
    wait_until(T, "both streams subscribed", || {
        attic.log().matches("subscribed; storing").count() >= 2
    });

    let port = broker.port();
    #[rustfmt::skip]
    mosquitto_pub(port, &[
        "-V", "mqttv5", "-q", "1", "-t", "props/full", "-m", "{\"t\":21.5}",
        "-D", "publish", "content-type", "application/json",
        "-D", "publish", "payload-format-indicator", "1",
        "-D", "publish", "response-topic", "reply/here",
        "-D", "publish", "correlation-data", "corr-1",
        "-D", "publish", "user-property", "b", "2",
        "-D", "publish", "user-property", "a", "1",
        "-D", "publish", "user-property", "b", "3 with \"quotes\"",
    ]);
    mosquitto_pub(
        port,
        &["-V", "mqttv5", "-q", "1", "-t", "props/none", "-m", "x"],
    );
    mosquitto_pub(
        port,
        &["-V", "mqttv311", "-q", "1", "-t", "props/old", "-m", "y"],
    );
    wait_for_rows(&data, 6, T);
    attic.stop_clean();

    let v5 = topic_and_properties(&data.join("v5"));
    assert_eq!(
        v5,
        vec![
            (
                "props/full".to_owned(),
                Some(
                    r#"{"content_type":"application/json","payload_format_indicator":1,"response_topic":"reply/here","correlation_data_base64":"Y29yci0x","user_properties":[["b","2"],["a","1"],["b","3 with \"quotes\""]]}"#
                        .to_owned()
                )
            ),
            ("props/none".to_owned(), None),
            ("props/old".to_owned(), None),
        ]
    );
    let v5_file = &finished_files(&data.join("v5"))[0];
    assert_eq!(
        columns(v5_file),
        [
            "reception_timestamp",
            "topic",
            "payload",
            "qos",
            "retain",
            "properties"
        ]
    );
    assert_eq!(meta(v5_file, "mqtt_version"), "5");
    let v311_file = &finished_files(&data.join("v311"))[0];
    assert_eq!(
        columns(v311_file),
        ["reception_timestamp", "topic", "payload", "qos", "retain"]
    );
    assert_eq!(meta(v311_file, "mqtt_version"), "3.1.1");
    let rows = all_rows(&data.join("v311"));
    assert_eq!(rows.len(), 3, "the 3.1.1 stream stores the same messages");
}

#[test]
fn a_persistent_v5_session_keeps_messages_published_while_attic_was_stopped() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("mqtt5-persist");
    let data = dir.join("data");
    let yaml = config(
        &data,
        broker.port(),
        &[(
            "p",
            &["persist/#"],
            "qos: 1\nmqtt-version: 5\nclean-session: false\nclient-id: \"attic-v5-persist\"\nsession-expiry-seconds: 600",
        )],
    );
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("subscribed; storing", T);
    attic.stop_clean();

    let mut publisher = TestClient::connect(broker.port(), "v5-persist-publisher");
    for i in 0..20u8 {
        publisher.publish("persist/t", &[i], 1, false);
    }
    publisher.disconnect();

    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains("session resumed", T);
    wait_for_rows(&data, 20, T);
    attic.stop_clean();
    let mut payloads: Vec<u8> = all_rows(&data).iter().map(|r| r.payload[0]).collect();
    payloads.sort_unstable();
    payloads.dedup();
    assert_eq!(payloads, (0..20u8).collect::<Vec<_>>());
    assert!(
        broker.log().contains("attic-v5-persist"),
        "the broker saw our client id"
    );
}

/// Reads one MQTT frame: `(first byte, body)`.
fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let byte1 = b[0];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        s.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((byte1, body))
}

/// A scripted MQTT 5 broker for what mosquitto 2.0.11 does not send (it
/// closes a taken-over connection without DISCONNECT 0x8E; brokers such as
/// EMQX, HiveMQ and later mosquitto versions send it). It accepts two
/// connections: on the first it answers CONNECT and SUBSCRIBE, then sends
/// DISCONNECT "session taken over"; on the second it serves pings until the
/// client leaves.
fn takeover_broker() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        for i in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let (byte1, connect) = read_frame(&mut s).unwrap();
            assert_eq!((byte1, connect[6]), (0x10, 5), "an MQTT 5 CONNECT");
            s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap();
            let (byte1, sub) = read_frame(&mut s).unwrap();
            assert_eq!(byte1, 0x82, "SUBSCRIBE");
            // packet id, empty properties, one filter: SUBACK granting QoS 0
            assert_eq!(sub[2], 0, "no SUBSCRIBE properties");
            s.write_all(&[0x90, 0x04, sub[0], sub[1], 0x00, 0x00])
                .unwrap();
            if i == 0 {
                s.write_all(&[0xE0, 0x01, 0x8E]).unwrap();
                continue; // dropped: closed
            }
            while let Ok((byte1, _)) = read_frame(&mut s) {
                if byte1 == 0xC0 {
                    s.write_all(&[0xD0, 0x00]).unwrap();
                }
            }
        }
    });
    (port, t)
}

#[test]
fn a_session_taken_over_gives_a_warning_naming_the_client_id_and_a_reconnect() {
    let (port, broker) = takeover_broker();
    let dir = TempDir::new("mqtt5-takeover");
    let data = dir.join("data");
    let yaml = config(
        &data,
        port,
        &[(
            "t",
            &["x/#"],
            "mqtt-version: 5\nclient-id: \"attic-v5-takeover\"",
        )],
    );
    // JOURNAL_STREAM: lines carry their syslog priority (<4> = warning).
    let mut attic = Attic::start_with_env(&yaml, &dir, &[("JOURNAL_STREAM", "0:0")]);
    let expected = "session taken over (0x8E): another client connected with our client id \"attic-v5-takeover\"";
    attic.wait_log_contains(expected, T);
    let log = attic.log();
    let line = log.lines().find(|l| l.contains(expected)).unwrap();
    assert!(line.starts_with("<4>"), "a warning: {line}");
    wait_until(T, "a second subscription after the takeover", || {
        attic.log().matches("subscribed; storing").count() >= 2
    });
    attic.stop_clean();
    broker.join().unwrap();
}

/// mosquitto's dynamic security plugin, which (unlike an `acl_file` in
/// mosquitto 2.0) refuses subscriptions.
fn dynamic_security_plugin() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/local/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("mosquitto_dynamic_security.so"))
    .find(|p| p.is_file())
}

#[test]
fn a_refused_subscription_is_logged_with_its_reason_in_words() {
    let Some(plugin) = dynamic_security_plugin() else {
        eprintln!("skipping: mosquitto_dynamic_security.so not found (package mosquitto)");
        return;
    };
    let acl_dir = TempDir::new("mqtt5-acl");
    let dynsec = acl_dir.join("dynamic-security.json");
    // Anonymous clients may subscribe to anything but `secret/#`.
    std::fs::write(
        &dynsec,
        r#"{"defaultACLAccess":{"publishClientSend":true,"publishClientReceive":true,"subscribe":true,"unsubscribe":true},
            "clients":[],"groups":[{"groupname":"anon","roles":[{"rolename":"nosecret"}]}],"anonymousGroup":"anon",
            "roles":[{"rolename":"nosecret","acls":[{"acltype":"subscribePattern","topic":"secret/#","priority":0,"allow":false}]}]}"#,
    )
    .unwrap();
    let broker = Mosquitto::builder()
        .config_line(format!("plugin {}", plugin.display()))
        .config_line(format!("plugin_opt_config_file {}", dynsec.display()))
        .start();
    let dir = TempDir::new("mqtt5-refused");
    let data = dir.join("data");
    let yaml = config(
        &data,
        broker.port(),
        &[("r", &["allowed/#", "secret/#"], "mqtt-version: 5")],
    );
    let mut attic = Attic::start(&yaml, &dir);
    attic.wait_log_contains(
        "broker refused subscription to \"secret/#\": not authorized (0x87)",
        T,
    );
    attic.wait_log_contains("subscribed to 1 of 2 filters", T);
    mosquitto_pub(
        broker.port(),
        &["-V", "mqttv5", "-t", "allowed/a", "-m", "ok"],
    );
    wait_for_rows(&data, 1, T);
    attic.stop_clean();
    assert_eq!(all_rows(&data)[0].topic, "allowed/a");
}
