//! Unit tests of the session speaking MQTT 5: no network, no clock.

use super::*;
use crate::mqtt::framing::v5::{Publish5, PublishProps, encode_packet5};
use bytes::Bytes;
use mqttbytes::v5 as m5;

fn cfg(qos: u8, clean_session: bool) -> SessionConfig {
    SessionConfig {
        name: "test".into(),
        client_id: "attic-test".into(),
        user: None,
        password: None,
        keep_alive: Duration::from_secs(10),
        clean_session,
        filters: vec!["a/#".into(), "b".into()],
        qos,
        max_payload: 1000,
        mqtt5: Some(Mqtt5Options {
            session_expiry_s: 3600,
            topic_alias_maximum: 64,
        }),
    }
}

/// `cfg` with the default `topic-alias-maximum` (none announced).
fn cfg_without_aliases(qos: u8) -> SessionConfig {
    let mut c = cfg(qos, true);
    c.mqtt5 = Some(Mqtt5Options {
        session_expiry_s: 3600,
        ..Mqtt5Options::default()
    });
    c
}

fn wire(p: &Packet5) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_packet5(p, &mut out).unwrap();
    out.to_vec()
}

/// What the session sent, decoded with mqttbytes' v5 reader (our packets
/// are never a bare DISCONNECT here, which it cannot read).
fn sent(s: &mut Session) -> Vec<m5::Packet> {
    let mut buf = s.outbox().split();
    let mut v = Vec::new();
    while !buf.is_empty() {
        v.push(m5::read(&mut buf, 1 << 20).unwrap());
    }
    v
}

fn connack(c: ConnAck5) -> Vec<u8> {
    wire(&Packet5::ConnAck(c))
}

fn publish(topic: &str, alias: Option<u16>, qos: u8, pkid: u16, props: PublishProps) -> Vec<u8> {
    wire(&Packet5::Publish(Publish5 {
        topic: topic.into(),
        payload: Bytes::from_static(b"v"),
        qos,
        retain: false,
        dup: false,
        pkid,
        topic_alias: alias,
        properties: props,
    }))
}

/// Up to CONNECT sent; returns its packet.
fn connecting(c: SessionConfig, t0: Instant) -> (Session, m5::Connect) {
    let mut s = Session::new(c, 1, t0);
    let mut ev = Vec::new();
    s.on_timer(t0, &mut ev);
    assert_eq!(ev, vec![Event::OpenTransport]);
    s.on_transport_up(t0, &mut ev);
    let mut p = sent(&mut s);
    let Some(m5::Packet::Connect(c)) = p.pop() else {
        panic!("expected CONNECT")
    };
    (s, c)
}

/// A v5 session with messages flowing; the CONNACK is `ack`.
fn connected_with(qos: u8, ack: ConnAck5) -> (Session, Instant, Vec<Event>) {
    connected_as(cfg(qos, true), ack)
}

/// A v5 session of config `c` with messages flowing.
fn connected_with_cfg(c: SessionConfig) -> (Session, Instant, Vec<Event>) {
    connected_as(c, ConnAck5::default())
}

fn connected_as(c: SessionConfig, ack: ConnAck5) -> (Session, Instant, Vec<Event>) {
    let t0 = Instant::now();
    let qos = c.qos;
    let (mut s, _) = connecting(c, t0);
    let mut ev = Vec::new();
    s.on_bytes(&connack(ack), t0, &mut ev);
    let p = sent(&mut s);
    let Some(m5::Packet::Subscribe(sub)) = p.first() else {
        panic!("expected SUBSCRIBE, got {p:?}")
    };
    assert_eq!(sub.filters.len(), 2);
    s.on_bytes(
        &wire(&Packet5::SubAck {
            pkid: sub.pkid,
            reasons: vec![qos, qos],
            reason_string: None,
        }),
        t0,
        &mut ev,
    );
    assert_eq!(ev.last(), Some(&Event::Connected), "{ev:?}");
    ev.clear();
    (s, t0, ev)
}

fn connected(qos: u8) -> (Session, Instant, Vec<Event>) {
    connected_with(qos, ConnAck5::default())
}

#[test]
fn connect_is_mqtt_5_with_receive_maximum_and_the_configured_topic_alias_maximum() {
    let (_, c) = connecting(cfg(1, true), Instant::now());
    assert_eq!(c.protocol, mqttbytes::Protocol::V5);
    assert!(c.clean_session);
    let p = c.properties.unwrap();
    assert_eq!(p.receive_maximum, Some(RECEIVE_MAXIMUM));
    assert_eq!(p.topic_alias_max, Some(64));
    assert_eq!(
        p.session_expiry_interval, None,
        "a clean session ends with its connection"
    );
}

#[test]
fn a_persistent_session_asks_for_the_configured_session_expiry() {
    let (_, c) = connecting(cfg(1, false), Instant::now());
    assert!(!c.clean_session);
    assert_eq!(c.properties.unwrap().session_expiry_interval, Some(3600));
}

#[test]
fn publish_properties_are_delivered_as_the_stored_json() {
    let (mut s, t0, mut ev) = connected(0);
    let props = PublishProps {
        content_type: Some("text/plain".into()),
        user_properties: vec![("k".into(), "v".into())],
        ..PublishProps::default()
    };
    s.on_bytes(&publish("a/x", None, 0, 0, props), t0, &mut ev);
    s.on_bytes(
        &publish("a/y", None, 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    let [Event::Message(with), Event::Message(without)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        with.properties.as_deref(),
        Some(r#"{"content_type":"text/plain","user_properties":[["k","v"]]}"#)
    );
    assert_eq!(without.properties, None);
}

#[test]
fn by_default_connect_announces_no_topic_alias_maximum() {
    let (_, c) = connecting(cfg_without_aliases(1), Instant::now());
    let p = c.properties.unwrap();
    assert_eq!(p.receive_maximum, Some(RECEIVE_MAXIMUM));
    assert_eq!(p.topic_alias_max, None, "the broker must send every topic");
}

#[test]
fn an_alias_we_never_offered_closes_the_connection_and_delivers_nothing() {
    // rumqttd 0.20: the first message in full with alias 1, every later
    // one as alias 1 with an empty topic, although no maximum was offered.
    for first in ["a/first", ""] {
        let (mut s, t0, mut ev) = connected_with_cfg(cfg_without_aliases(0));
        s.on_bytes(
            &publish(first, Some(1), 0, 0, PublishProps::default()),
            t0,
            &mut ev,
        );
        assert_eq!(ev, vec![Event::CloseTransport], "{first:?}");
        assert!(!s.is_connected());
    }
}

#[test]
fn an_alias_above_the_announced_maximum_closes_the_connection() {
    let (mut s, t0, mut ev) = connected(0);
    s.on_bytes(
        &publish("a/t", Some(65), 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::CloseTransport]);
}

#[test]
fn topic_aliases_are_resolved_to_the_real_topic() {
    let (mut s, t0, mut ev) = connected(0);
    s.on_bytes(
        &publish("a/long/topic", Some(7), 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    s.on_bytes(
        &publish("", Some(7), 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    let topics: Vec<_> = ev
        .iter()
        .map(|e| match e {
            Event::Message(d) => d.topic.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(topics, ["a/long/topic", "a/long/topic"]);
}

#[test]
fn an_unknown_topic_alias_closes_the_connection() {
    let (mut s, t0, mut ev) = connected(0);
    s.on_bytes(
        &publish("", Some(3), 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::CloseTransport]);
    assert!(!s.is_connected());
}

#[test]
fn topic_aliases_are_forgotten_on_reconnect() {
    let (mut s, t0, mut ev) = connected(0);
    s.on_bytes(
        &publish("a/t", Some(1), 0, 0, PublishProps::default()),
        t0,
        &mut ev,
    );
    s.on_transport_down(t0, "reset", &mut ev);
    let retry = s.next_deadline().unwrap();
    s.on_timer(retry, &mut ev);
    s.on_transport_up(retry, &mut ev);
    sent(&mut s);
    s.on_bytes(&connack(ConnAck5::default()), retry, &mut ev);
    s.on_bytes(
        &wire(&Packet5::SubAck {
            pkid: 1,
            reasons: vec![0, 0],
            reason_string: None,
        }),
        retry,
        &mut ev,
    );
    ev.clear();
    s.on_bytes(
        &publish("", Some(1), 0, 0, PublishProps::default()),
        retry,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::CloseTransport]);
}

#[test]
fn an_oversize_publish_still_defines_its_alias() {
    let (mut s, t0, mut ev) = connected(1);
    let big = wire(&Packet5::Publish(Publish5 {
        topic: "a/big".into(),
        payload: Bytes::from(vec![0u8; 5000]),
        qos: 1,
        retain: false,
        dup: false,
        pkid: 4,
        topic_alias: Some(2),
        properties: PublishProps::default(),
    }));
    s.on_bytes(&big, t0, &mut ev);
    s.on_bytes(
        &publish("", Some(2), 1, 5, PublishProps::default()),
        t0,
        &mut ev,
    );
    assert!(matches!(&ev[0], Event::Oversize { topic, payload_len: 5000 } if topic == "a/big"));
    assert!(matches!(&ev[1], Event::Message(d) if d.topic == "a/big"));
    s.release_acks(t0);
    let ids: Vec<_> = sent(&mut s)
        .into_iter()
        .map(|p| match p {
            m5::Packet::PubAck(a) => a.pkid,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(ids, vec![4, 5], "acks in arrival order, after the commit");
}

#[test]
fn qos_2_runs_the_311_exchange() {
    let (mut s, t0, mut ev) = connected(2);
    s.on_bytes(
        &publish("a/x", None, 2, 9, PublishProps::default()),
        t0,
        &mut ev,
    );
    s.on_bytes(
        &publish("a/x", None, 2, 9, PublishProps::default()),
        t0,
        &mut ev,
    );
    assert_eq!(
        ev.len(),
        1,
        "a redelivery before PUBREC is not stored twice"
    );
    s.release_acks(t0);
    assert!(matches!(&sent(&mut s)[..], [m5::Packet::PubRec(r)] if r.pkid == 9));
    // PUBREL with a reason code and a reason string
    let mut rel = BytesMut::new();
    framing::v5::frame(0x62, &[0, 9, 0, 4, 31, 0, 1, b'x'], &mut rel);
    s.on_bytes(&rel, t0, &mut ev);
    assert!(matches!(&sent(&mut s)[..], [m5::Packet::PubComp(c)] if c.pkid == 9));
}

#[test]
fn a_refused_connack_closes_and_backs_off() {
    let t0 = Instant::now();
    let (mut s, _) = connecting(cfg(0, true), t0);
    let mut ev = Vec::new();
    s.on_bytes(
        &connack(ConnAck5 {
            reason: 0x87,
            ..ConnAck5::default()
        }),
        t0,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::CloseTransport]);
    assert!(s.next_deadline().unwrap() > t0);
}

#[test]
fn a_311_broker_refusing_version_5_closes_the_connection() {
    let t0 = Instant::now();
    let (mut s, _) = connecting(cfg(0, true), t0);
    let mut ev = Vec::new();
    s.on_bytes(&[0x20, 0x02, 0x00, 0x01], t0, &mut ev);
    assert_eq!(ev, vec![Event::CloseTransport]);
}

#[test]
fn a_session_taken_over_is_explained_with_our_client_id() {
    let why = disconnect_why(
        &Disconnect5 {
            reason: 0x8E,
            ..Disconnect5::default()
        },
        "attic-pi-home",
    );
    assert_eq!(
        why,
        "the broker disconnected us, session taken over (0x8E): another client connected with our client id \"attic-pi-home\""
    );
    let (mut s, t0, mut ev) = connected(0);
    s.on_bytes(&[0xE0, 0x01, 0x8E], t0, &mut ev);
    assert_eq!(ev, vec![Event::CloseTransport]);
    assert!(!s.is_connected());
    assert_eq!(
        s.stats().suspected_takeovers,
        1,
        "counted like a suspected one"
    );
}

#[test]
fn other_disconnects_give_the_reason_in_words_and_what_the_broker_said() {
    let why = disconnect_why(
        &Disconnect5 {
            reason: 0x9C,
            reason_string: Some("maintenance".into()),
            server_reference: Some("other:1883".into()),
            session_expiry_interval: None,
        },
        "x",
    );
    assert_eq!(
        why,
        "the broker disconnected us: use another server (0x9C) (broker says \"maintenance\"); it names another broker to use: other:1883"
    );
}

#[test]
fn a_refused_subscription_is_logged_with_its_reason_in_words() {
    let t0 = Instant::now();
    let (mut s, _) = connecting(cfg(1, true), t0);
    let mut ev = Vec::new();
    s.on_bytes(&connack(ConnAck5::default()), t0, &mut ev);
    sent(&mut s);
    s.on_bytes(
        &wire(&Packet5::SubAck {
            pkid: 1,
            reasons: vec![1, 0x87],
            reason_string: Some("acl".into()),
        }),
        t0,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::Connected]);
    assert_eq!(
        s.refusal_reason(1),
        ": not authorized (0x87) (broker says \"acl\")"
    );
    let (plain, _) = connecting(
        SessionConfig {
            mqtt5: None,
            ..cfg(1, true)
        },
        t0,
    );
    assert_eq!(plain.refusal_reason(1), "");
}

#[test]
fn server_keep_alive_replaces_ours_for_that_connection_only() {
    let (mut s, t0, mut ev) = connected_with(
        0,
        ConnAck5 {
            server_keep_alive: Some(4),
            ..ConnAck5::default()
        },
    );
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(4)));
    s.on_timer(t0 + Duration::from_secs(4), &mut ev);
    assert!(matches!(&sent(&mut s)[..], [m5::Packet::PingReq]));
    s.on_transport_down(t0, "reset", &mut ev);
    let retry = s.next_deadline().unwrap();
    s.on_timer(retry, &mut ev);
    s.on_transport_up(retry, &mut ev);
    let Some(m5::Packet::Connect(c)) = sent(&mut s).pop() else {
        panic!()
    };
    assert_eq!(
        c.keep_alive, 10,
        "the next CONNECT asks for the configured keep-alive"
    );
}

#[test]
fn an_assigned_client_identifier_is_used_from_then_on() {
    let (mut s, t0, mut ev) = connected_with(
        0,
        ConnAck5 {
            assigned_client_identifier: Some("auto-77".into()),
            ..ConnAck5::default()
        },
    );
    s.on_transport_down(t0, "reset", &mut ev);
    let retry = s.next_deadline().unwrap();
    s.on_timer(retry, &mut ev);
    s.on_transport_up(retry, &mut ev);
    let Some(m5::Packet::Connect(c)) = sent(&mut s).pop() else {
        panic!()
    };
    assert_eq!(c.client_id, "auto-77");
}

#[test]
fn the_brokers_maximum_packet_size_drops_a_larger_publish_of_ours() {
    let (mut s, t0, _) = connected_with(
        0,
        ConnAck5 {
            maximum_packet_size: Some(50),
            ..ConnAck5::default()
        },
    );
    assert!(!s.publish("report", &[0u8; 100], t0));
    assert!(s.outbox().is_empty(), "nothing of it stays in the outbox");
    assert!(s.publish("report", &[0u8; 10], t0));
    let p = sent(&mut s);
    assert!(matches!(&p[..], [m5::Packet::Publish(p)] if p.payload.len() == 10));
}

#[test]
fn a_subscribe_larger_than_the_maximum_packet_size_closes_the_connection() {
    let t0 = Instant::now();
    let (mut s, _) = connecting(cfg(0, true), t0);
    let mut ev = Vec::new();
    s.on_bytes(
        &connack(ConnAck5 {
            maximum_packet_size: Some(10),
            ..ConnAck5::default()
        }),
        t0,
        &mut ev,
    );
    assert_eq!(ev, vec![Event::CloseTransport]);
    assert!(s.outbox().is_empty());
}

#[test]
fn shutdown_sends_a_normal_disconnect() {
    let (mut s, _, _) = connected(0);
    s.shutdown();
    assert_eq!(&s.outbox()[..], &[0xE0, 0x00]);
}
