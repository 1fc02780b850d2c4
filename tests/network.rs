//! Brokers that misbehave in ways the field showed, from scripted fake
//! brokers: MQTT 5 topic aliases used although none were offered (as
//! rumqttd 0.20 does) or never defined, a broker that never answers an MQTT
//! 5 CONNECT, a server that is no broker (an HTTP answer), and QoS 2
//! messages resent after a reconnect and after a restart of Attic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fake_broker::{self, publish5_frame};
use common::*;
use mqttbytes::v4::{ConnectReturnCode, Packet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// One stream per `(prefix, port, extra YAML lines)`, keep-alive 2 s (so
/// the connect timeout is its minimum, 5 s), committing every 100 ms.
fn config(data: &Path, streams: &[(&str, u16, &str)]) -> String {
    let mut y = format!(
        "console-feedback-period-seconds: 60\ndata-folder: \"{}\"\nstreams:\n",
        data.display()
    );
    for (prefix, port, extra) in streams {
        y.push_str(&format!(
            "  - mqtt-broker-address: \"127.0.0.1\"\n    mqtt-broker-port: {port}\n    topic: \"#\"\n    prefix: \"{prefix}\"\n    suffix: \"\"\n    file-rotation-time-seconds: 3600\n    commit-interval-ms: 100\n    keep-alive-seconds: 2\n"
        ));
        for line in extra.lines() {
            y.push_str(&format!("    {line}\n"));
        }
    }
    y.push_str("log-performance: false\n");
    y
}

/// The property identifiers of an MQTT 5 CONNECT body (those Attic sends).
fn connect_property_ids(body: &[u8]) -> Vec<(u8, u32)> {
    // protocol name (6), level, flags, keep-alive (2); then the properties.
    let len = usize::from(body[10]);
    assert!(len < 128, "a one-byte property length");
    let mut props = &body[11..11 + len];
    let mut out = Vec::new();
    while let Some((&id, rest)) = props.split_first() {
        let n = match id {
            0x11 | 0x27 => 4,
            0x21 | 0x22 => 2,
            other => panic!("unexpected CONNECT property 0x{other:02x}"),
        };
        let value = rest[..n].iter().fold(0u32, |v, b| (v << 8) | u32::from(*b));
        out.push((id, value));
        props = &rest[n..];
    }
    out
}

/// Answers pings until the client closes.
fn serve5_until_closed(c: &mut FakeConn) {
    while !c.is_closed() {
        if let Some((0xC0, _)) = c.read_frame(Duration::from_secs(3600)) {
            c.send_raw(&[0xD0, 0x00]);
        }
    }
}

fn topics(data: &Path) -> Vec<String> {
    all_rows(data).into_iter().map(|r| r.topic).collect()
}

#[test]
fn a_broker_using_a_topic_alias_it_was_never_offered_is_disconnected_and_no_row_gets_a_wrong_topic()
{
    let offered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&offered);
    // As rumqttd 0.20: the first message with its topic and alias 1, every
    // later one as alias 1 with an empty topic. The next connection sends
    // topics in full.
    let broker = FakeBroker::start(move |c| {
        let connect = c.handshake5(false);
        seen.lock().unwrap().push(connect_property_ids(&connect));
        c.accept_subscription5(0);
        if c.index() == 0 {
            c.send_raw(&publish5_frame("al/first", b"1", 0, 0, Some(1)));
            c.send_raw(&publish5_frame("", b"2", 0, 0, Some(1)));
            c.send_raw(&publish5_frame("", b"3", 0, 0, Some(1)));
            assert!(c.wait_closed(Duration::from_secs(10)), "attic closes");
        } else {
            c.send_raw(&publish5_frame("al/full", b"4", 0, 0, None));
            serve5_until_closed(c);
        }
    });
    let dir = TempDir::new("alias-never-offered");
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(&data, &[("al", broker.port(), "mqtt-version: 5")]),
        &dir,
    );
    attic.wait_log_contains(
        "[al] connection closed: the broker used topic alias 1 although Attic offered none (`topic-alias-maximum: 0`); nothing stored from it",
        T,
    );
    broker.wait_for_connections(2, T);
    wait_for_rows(&data, 1, T);
    attic.stop_clean();
    broker.assert_scripts_ok();
    assert_eq!(topics(&data), ["al/full"]);
    for props in offered.lock().unwrap().iter() {
        assert!(
            !props.iter().any(|(id, _)| *id == 0x22),
            "no Topic Alias Maximum in CONNECT: {props:?}"
        );
    }
}

#[test]
fn with_aliases_turned_on_a_defined_alias_gives_its_topic_and_an_undefined_one_closes_the_connection()
 {
    let offered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&offered);
    let broker = FakeBroker::start(move |c| {
        let connect = c.handshake5(false);
        seen.lock().unwrap().push(connect_property_ids(&connect));
        c.accept_subscription5(0);
        if c.index() == 0 {
            c.send_raw(&publish5_frame("al/a", b"1", 0, 0, Some(1)));
            c.send_raw(&publish5_frame("", b"2", 0, 0, Some(1)));
            c.send_raw(&publish5_frame("", b"3", 0, 0, Some(2)));
            assert!(c.wait_closed(Duration::from_secs(10)), "attic closes");
        } else {
            // A new connection starts with no alias: alias 1 is unknown.
            c.send_raw(&publish5_frame("", b"4", 0, 0, Some(1)));
            assert!(c.wait_closed(Duration::from_secs(10)), "attic closes");
        }
    });
    let dir = TempDir::new("alias-on");
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(
            &data,
            &[(
                "al",
                broker.port(),
                "mqtt-version: 5\ntopic-alias-maximum: 4",
            )],
        ),
        &dir,
    );
    attic.wait_log_contains(
        "[al] connection closed: topic alias 2 with an empty topic, but this connection never defined it; nothing stored from it",
        T,
    );
    broker.wait_for_connections(2, T);
    attic.wait_log_contains(
        "topic alias 1 with an empty topic, but this connection never defined it",
        T,
    );
    wait_for_rows(&data, 2, T);
    attic.stop_clean();
    broker.assert_scripts_ok();
    assert_eq!(topics(&data), ["al/a", "al/a"]);
    let props = offered.lock().unwrap();
    assert!(props.iter().all(|p| p.contains(&(0x22, 4))), "{props:?}");
}

#[test]
fn no_connack_to_an_mqtt_5_connect_names_mqtt_version_3_1_1_and_only_for_mqtt_5() {
    let silent = || {
        FakeBroker::start(|c| {
            assert!(c.read_frame(Duration::from_secs(10)).is_some(), "a CONNECT");
            c.wait_closed(Duration::from_secs(60));
        })
    };
    let (b5, b311) = (silent(), silent());
    let dir = TempDir::new("no-connack");
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(
            &data,
            &[
                ("v5", b5.port(), "mqtt-version: 5"),
                ("v311", b311.port(), ""),
            ],
        ),
        &dir,
    );
    attic.wait_log_contains(
        "[v5] connection closed: no CONNACK from the broker within 5 s: it may not speak MQTT 5; if so, set `mqtt-version: 3.1.1` for this stream",
        T,
    );
    attic.wait_log_contains(
        "[v311] connection closed: no CONNACK from the broker within 5 s; retrying",
        T,
    );
    attic.stop_clean();
    b5.assert_scripts_ok();
    b311.assert_scripts_ok();
}

#[test]
fn an_http_answer_instead_of_a_connack_is_reported_as_such_in_both_versions() {
    let http = FakeBroker::start(|c| {
        if c.read_frame(Duration::from_secs(10)).is_some() {
            c.send_raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
        c.close();
    });
    let dir = TempDir::new("http-answer");
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(
            &data,
            &[
                ("h311", http.port(), ""),
                ("h5", http.port(), "mqtt-version: 5"),
            ],
        ),
        &dir,
    );
    for name in ["h311", "h5"] {
        attic.wait_log_contains(
            &format!(
                "[{name}] connection closed: got \"HTTP/1.1 400\" instead of an MQTT CONNACK: is this port a broker?"
            ),
            T,
        );
    }
    attic.stop_clean();
    assert!(
        !attic.log().contains("unknown packet id"),
        "{}",
        attic.log()
    );
}

// ---- QoS 2 across a resumed session ---------------------------------------

/// `PUBREL` for `pkid`.
fn pubrel(pkid: u16) -> Vec<u8> {
    let [hi, lo] = pkid.to_be_bytes();
    vec![0x62, 0x02, hi, lo]
}

/// A QoS 2 PUBLISH resent by the broker (DUP set).
fn resent(topic: &str, payload: &[u8], pkid: u16) -> Vec<u8> {
    let mut f = fake_broker::publish_frame(topic, payload, 2, false, pkid);
    f[0] |= 0x08;
    f
}

fn expect_pubrec(c: &mut FakeConn, pkid: u16) {
    loop {
        match c.expect_packet(&format!("PUBREC {pkid}")) {
            Packet::PubRec(r) if r.pkid == pkid => return,
            Packet::PingReq => c.send_raw(&[0xD0, 0x00]),
            other => panic!("expected PUBREC {pkid}, got {other:?}"),
        }
    }
}

fn expect_pubcomp(c: &mut FakeConn, pkid: u16) {
    loop {
        match c.expect_packet(&format!("PUBCOMP {pkid}")) {
            Packet::PubComp(r) if r.pkid == pkid => return,
            Packet::PingReq => c.send_raw(&[0xD0, 0x00]),
            other => panic!("expected PUBCOMP {pkid}, got {other:?}"),
        }
    }
}

/// The resumed side of the exchange: the session is present, the broker
/// resends id 7 (answered with PUBREC before), completes it, then sends a
/// new message with id 8 through the whole exchange.
fn resume_and_finish(c: &mut FakeConn, done: &AtomicBool) {
    let connect = c.expect_connect();
    assert!(!connect.clean_session, "a persistent session");
    c.send_connack(true, ConnectReturnCode::Success);
    c.send_raw(&resent("q/a", b"1", 7));
    expect_pubrec(c, 7);
    c.send_raw(&pubrel(7));
    expect_pubcomp(c, 7);
    c.send_publish("q/b", b"2", 2, false, 8);
    expect_pubrec(c, 8);
    c.send_raw(&pubrel(8));
    expect_pubcomp(c, 8);
    done.store(true, Ordering::SeqCst);
    c.serve_until_closed(|_, _| {});
}

const QOS2_PERSISTENT: &str = "qos: 2\nclean-session: false\nclient-id: \"attic-qos2-resume\"";

#[test]
fn a_qos_2_message_resent_after_a_reconnect_gets_pubrec_and_is_stored_once() {
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let broker = FakeBroker::start(move |c| {
        if c.index() == 0 {
            c.handshake();
            c.accept_subscription();
            c.send_publish("q/a", b"1", 2, false, 7);
            expect_pubrec(c, 7);
            c.close(); // before PUBREL: the broker will resend
        } else {
            resume_and_finish(c, &finished);
        }
    });
    let dir = TempDir::new("qos2-reconnect");
    let data = dir.join("data");
    let mut attic = Attic::start(
        &config(&data, &[("q", broker.port(), QOS2_PERSISTENT)]),
        &dir,
    );
    wait_until(T, "the resumed QoS 2 exchanges", || {
        done.load(Ordering::SeqCst)
    });
    attic.stop_clean();
    broker.assert_scripts_ok();
    assert_eq!(topics(&data), ["q/a", "q/b"]);
    assert!(!data.join("q").join("qos2-awaiting-pubrel").exists());
}

#[test]
fn a_qos_2_message_resent_after_a_restart_of_attic_gets_pubrec_and_is_stored_once() {
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let got_pubrec = Arc::new(AtomicBool::new(false));
    let pubrec = Arc::clone(&got_pubrec);
    let broker = FakeBroker::start(move |c| {
        if c.index() == 0 {
            c.handshake();
            c.accept_subscription();
            c.send_publish("q/a", b"1", 2, false, 7);
            expect_pubrec(c, 7);
            pubrec.store(true, Ordering::SeqCst);
            c.serve_until_closed(|_, _| {}); // no PUBREL before attic stops
        } else {
            resume_and_finish(c, &finished);
        }
    });
    let dir = TempDir::new("qos2-restart");
    let data = dir.join("data");
    let state = data.join("q").join("qos2-awaiting-pubrel");
    let yaml = config(&data, &[("q", broker.port(), QOS2_PERSISTENT)]);
    let mut attic = Attic::start(&yaml, &dir);
    wait_until(T, "PUBREC 7 at the broker", || {
        got_pubrec.load(Ordering::SeqCst)
    });
    attic.stop_clean();
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.ends_with("\nids 7\n"), "{saved}");
    assert!(saved.contains("client-id attic-qos2-resume\n"), "{saved}");

    let mut attic = Attic::start(&yaml, &dir);
    wait_until(T, "the resumed QoS 2 exchanges", || {
        done.load(Ordering::SeqCst)
    });
    attic.stop_clean();
    broker.assert_scripts_ok();
    assert_eq!(topics(&data), ["q/a", "q/b"]);
    assert!(!state.exists(), "no id awaits PUBREL any more");
}
