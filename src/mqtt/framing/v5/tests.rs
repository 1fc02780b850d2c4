//! Unit tests of the MQTT 5 framing, including the mqttbytes 0.6 decode
//! bugs it guards against (each shown failing in mqttbytes alone).

use super::*;
use crate::mqtt::framing::{ConnectParams, Incoming, ProtocolError};
use bytes::{Bytes, BytesMut};
use mqttbytes::v5;

fn bytes_of(p: &Packet5) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_packet5(p, &mut out).unwrap();
    out.to_vec()
}

fn frame_of(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame(byte1, body, &mut out);
    out.to_vec()
}

fn decode_all(bytes: &[u8], max_payload: usize) -> Result<Vec<Packet5>, ProtocolError> {
    let mut d = Decoder5::new(max_payload);
    d.push(bytes);
    let mut v = Vec::new();
    while let Some(p) = d.next_packet()? {
        v.push(p);
    }
    assert_eq!(d.buffered(), 0, "a whole packet must be consumed");
    Ok(v)
}

fn one(bytes: &[u8]) -> Packet5 {
    let mut v = decode_all(bytes, 1 << 20).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

fn full_publish() -> Publish5 {
    Publish5 {
        topic: "sensors/1".into(),
        payload: Bytes::from_static(b"\x00\x01payload"),
        qos: 1,
        retain: true,
        dup: false,
        pkid: 42,
        topic_alias: Some(3),
        properties: PublishProps {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(3600),
            content_type: Some("application/octet-stream".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(&[0, 255, 7])),
            user_properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
            subscription_identifiers: vec![1, 300],
        },
    }
}

#[test]
fn a_publish_with_every_property_decodes_and_reencodes_to_the_same_bytes() {
    let p = Packet5::Publish(full_publish());
    let wire = bytes_of(&p);
    assert_eq!(one(&wire), p);
    assert_eq!(bytes_of(&one(&wire)), wire);
}

#[test]
fn a_publish_split_into_single_bytes_is_framed_once_complete() {
    let p = Packet5::Publish(full_publish());
    let wire = bytes_of(&p);
    let mut d = Decoder5::new(1024);
    let mut got = Vec::new();
    for b in &wire {
        d.push(std::slice::from_ref(b));
        while let Some(x) = d.next_packet().unwrap() {
            got.push(x);
        }
    }
    assert_eq!(got, vec![p]);
}

#[test]
fn a_publish_without_properties_has_empty_props_and_no_alias() {
    let mut out = BytesMut::new();
    encode_publish5("t", b"x", 0, false, 0, &mut out).unwrap();
    assert_eq!(&out[..], &[0x30, 0x05, 0x00, 0x01, b't', 0x00, b'x']);
    let Packet5::Publish(p) = one(&out) else {
        panic!()
    };
    assert!(p.properties.is_empty());
    assert_eq!(p.topic_alias, None);
    assert_eq!(p.properties.to_json(), None);
}

#[test]
fn a_disconnect_with_only_a_reason_code_decodes_though_mqttbytes_refuses_it() {
    // What mosquitto sends to a client whose session another client took.
    let wire = [0xE0, 0x01, 0x8E];
    assert!(v5::read(&mut BytesMut::from(&wire[..]), 1000).is_err());
    assert_eq!(
        one(&wire),
        Packet5::Disconnect(Disconnect5 {
            reason: 0x8E,
            ..Disconnect5::default()
        })
    );
}

#[test]
fn a_disconnect_of_length_zero_is_a_normal_disconnection_though_mqttbytes_refuses_it() {
    let wire = [0xE0, 0x00];
    assert!(v5::read(&mut BytesMut::from(&wire[..]), 1000).is_err());
    assert_eq!(one(&wire), Packet5::Disconnect(Disconnect5::default()));
}

#[test]
fn a_disconnect_with_a_reason_string_and_server_reference_keeps_them() {
    let d = Packet5::Disconnect(Disconnect5 {
        reason: 0x9C,
        reason_string: Some("go elsewhere".into()),
        server_reference: Some("other:1883".into()),
        session_expiry_interval: None,
    });
    assert_eq!(one(&bytes_of(&d)), d);
}

#[test]
fn a_disconnect_with_an_unknown_reason_or_flags_is_malformed() {
    assert!(decode_all(&[0xE0, 0x01, 0x05], 100).is_err());
    assert!(decode_all(&[0xE1, 0x00], 100).is_err());
}

#[test]
fn properties_straddling_into_the_payload_are_malformed_though_mqttbytes_eats_the_payload() {
    // Property length 2, but the Message Expiry Interval inside takes 5
    // bytes: mqttbytes reads 3 payload bytes as its value and returns the
    // payload shortened.
    let body = [
        0x00, 0x01, b't', 0x02, 0x02, 0x00, 0x00, 0x00, 0x3C, b'o', b'k',
    ];
    let wire = frame_of(0x30, &body);
    match v5::read(&mut BytesMut::from(&wire[..]), 1000) {
        Ok(v5::Packet::Publish(p)) => assert_eq!(&p.payload[..], b"ok"),
        other => panic!("mqttbytes changed: {other:?}"),
    }
    assert!(matches!(
        decode_all(&wire, 1000),
        Err(ProtocolError::Malformed {
            packet: "PUBLISH",
            ..
        })
    ));
}

#[test]
fn a_property_length_longer_than_the_properties_is_malformed() {
    // Declared 6, holds a 2-byte property: the payload would be parsed as
    // properties.
    let body = [0x00, 0x01, b't', 0x06, 0x01, 0x01, 0x01, 0x01, b'o', b'k'];
    assert!(decode_all(&frame_of(0x30, &body), 1000).is_err());
}

#[test]
fn a_duplicate_content_type_is_malformed_though_mqttbytes_keeps_the_last() {
    let body = [
        0x00, 0x01, b't', 0x08, 0x03, 0x00, 0x01, b'a', 0x03, 0x00, 0x01, b'b', b'p',
    ];
    let wire = frame_of(0x30, &body);
    assert!(v5::read(&mut BytesMut::from(&wire[..]), 1000).is_ok());
    assert!(decode_all(&wire, 1000).is_err());
}

#[test]
fn a_311_connack_refusal_reads_as_unsupported_protocol_version() {
    let p = one(&[0x20, 0x02, 0x00, 0x01]);
    let Packet5::ConnAck(c) = p else { panic!() };
    assert!(c.from_v311);
    assert_eq!(
        reason::words(reason::Packet::ConnAck, c.reason),
        "unsupported protocol version (0x84)"
    );
}

#[test]
fn a_connack_without_property_length_is_malformed_and_says_why() {
    let err = decode_all(&[0x20, 0x02, 0x00, 0x00], 100).unwrap_err();
    assert!(err.to_string().contains("MQTT 3.1.1"), "{err}");
}

#[test]
fn a_connack_with_reserved_flags_is_malformed() {
    assert!(decode_all(&[0x20, 0x03, 0x02, 0x00, 0x00], 100).is_err());
}

#[test]
fn a_connack_carries_the_properties_the_session_honours() {
    let c = Packet5::ConnAck(ConnAck5 {
        session_present: true,
        reason: 0,
        server_keep_alive: Some(20),
        maximum_packet_size: Some(1000),
        assigned_client_identifier: Some("auto-123".into()),
        receive_maximum: Some(10),
        topic_alias_maximum: Some(5),
        maximum_qos: Some(1),
        reason_string: Some("welcome".into()),
        ..ConnAck5::default()
    });
    assert_eq!(one(&bytes_of(&c)), c);
}

#[test]
fn a_refused_connack_keeps_its_reason() {
    let c = Packet5::ConnAck(ConnAck5 {
        reason: 0x87,
        ..ConnAck5::default()
    });
    assert_eq!(one(&bytes_of(&c)), c);
}

#[test]
fn a_suback_carries_one_reason_per_filter() {
    let s = Packet5::SubAck {
        pkid: 1,
        reasons: vec![1, 0x87, 0],
        reason_string: Some("no".into()),
    };
    assert_eq!(one(&bytes_of(&s)), s);
}

#[test]
fn a_suback_without_reason_codes_is_malformed() {
    assert!(decode_all(&frame_of(0x90, &[0, 1, 0]), 100).is_err());
}

#[test]
fn acks_with_reason_codes_and_properties_read_as_their_311_meaning() {
    // PUBREL, reason 0x92, reason string "x"
    let wire = frame_of(0x62, &[0, 9, 0x92, 4, 31, 0, 1, b'x']);
    assert_eq!(one(&wire), Packet5::Common(Incoming::PubRel(9)));
    // bytes after the properties
    assert!(decode_all(&frame_of(0x62, &[0, 9, 0x92, 0, 1]), 100).is_err());
    assert_eq!(
        one(&[0x40, 0x03, 0, 7, 0x10]),
        Packet5::Common(Incoming::PubAck(7))
    );
}

#[test]
fn pingresp_and_server_bound_packets_decode() {
    assert_eq!(one(&[0xD0, 0x00]), Packet5::Common(Incoming::PingResp));
    assert_eq!(
        one(&[0xF0, 0x00]),
        Packet5::Common(Incoming::Unexpected("AUTH"))
    );
    assert!(decode_all(&[0xD0, 0x01, 0x00], 100).is_err());
}

#[test]
fn an_oversize_publish_is_skipped_as_it_arrives_and_keeps_its_alias() {
    let mut big = full_publish();
    big.payload = Bytes::from(vec![9u8; 10_000]);
    let mut wire = bytes_of(&Packet5::Publish(big));
    let small = Packet5::Publish(Publish5 {
        topic: String::new(),
        payload: Bytes::from_static(b"ok"),
        qos: 0,
        retain: false,
        dup: false,
        pkid: 0,
        topic_alias: Some(3),
        properties: PublishProps::default(),
    });
    wire.extend(bytes_of(&small));
    let mut d = Decoder5::new(100);
    let mut got = Vec::new();
    for chunk in wire.chunks(333) {
        d.push(chunk);
        assert!(d.buffered() < 1000, "oversize payload must not be buffered");
        while let Some(p) = d.next_packet().unwrap() {
            got.push(p);
        }
    }
    assert_eq!(
        got,
        vec![
            Packet5::Oversize {
                topic: "sensors/1".into(),
                topic_alias: Some(3),
                qos: 1,
                pkid: 42,
                payload_len: 10_000
            },
            small
        ]
    );
}

#[test]
fn an_oversize_publish_with_bad_properties_is_malformed() {
    let mut body = vec![0x00, 0x01, b't', 0x02, 0x01, 0x07];
    body.extend(vec![0u8; 200]);
    assert!(decode_all(&frame_of(0x30, &body), 100).is_err());
}

#[test]
fn a_control_packet_announcing_megabytes_is_an_error() {
    assert!(matches!(
        decode_all(&[0x90, 0xff, 0xff, 0x7f], 100),
        Err(ProtocolError::TooLarge { .. })
    ));
}

fn base() -> ConnectParams<'static> {
    ConnectParams {
        client_id: "attic-x",
        keep_alive_s: 30,
        clean_session: false,
        user: Some("u"),
        password: Some("p"),
    }
}

#[test]
fn connect5_carries_session_expiry_receive_maximum_and_topic_alias_maximum() {
    let mut out = BytesMut::from(&b"xx"[..]);
    encode_connect5(
        &Connect5Params {
            base: base(),
            session_expiry_s: Some(86_400),
            receive_maximum: 1000,
            topic_alias_maximum: 64,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(&out[..2], b"xx", "bytes before CONNECT untouched");
    let mut frame = out.split_off(2);
    // protocol name and level 5
    assert_eq!(&frame[2..9], &[0, 4, b'M', b'Q', b'T', b'T', 5]);
    // flags: user, password, no clean start
    assert_eq!(frame[9], 0xC0);
    let v5::Packet::Connect(c) = v5::read(&mut frame, 1000).unwrap() else {
        panic!()
    };
    assert_eq!(c.client_id, "attic-x");
    assert_eq!(c.keep_alive, 30);
    assert!(!c.clean_session);
    let p = c.properties.unwrap();
    assert_eq!(p.session_expiry_interval, Some(86_400));
    assert_eq!(p.receive_maximum, Some(1000));
    assert_eq!(p.topic_alias_max, Some(64));
    assert_eq!(p.max_packet_size, None);
}

#[test]
fn connect5_with_clean_start_and_no_expiry_sends_no_session_expiry() {
    let mut out = BytesMut::new();
    let mut b = base();
    b.clean_session = true;
    b.user = None;
    encode_connect5(
        &Connect5Params {
            base: b,
            session_expiry_s: None,
            receive_maximum: 10,
            topic_alias_maximum: 0,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(out[9], 0x02);
    let v5::Packet::Connect(c) = v5::read(&mut out, 1000).unwrap() else {
        panic!()
    };
    let p = c.properties.unwrap();
    assert_eq!(p.session_expiry_interval, None);
    assert_eq!(p.topic_alias_max, None);
    assert!(c.login.is_none());
}

#[test]
fn subscribe5_sends_each_filter_with_its_qos_as_the_options_byte() {
    let mut out = BytesMut::new();
    encode_subscribe5(1, &["a/#".into(), "b".into()], 2, &mut out).unwrap();
    assert_eq!(
        &out[..],
        &[0x82, 13, 0, 1, 0, 0, 3, b'a', b'/', b'#', 2, 0, 1, b'b', 2]
    );
}

#[test]
fn a_topic_of_65536_bytes_is_refused_not_truncated() {
    let mut out = BytesMut::new();
    assert!(encode_publish5(&"a".repeat(65_536), b"", 0, false, 0, &mut out).is_err());
    assert!(out.is_empty());
}

/// The payload a PUBLISH frame carries: everything after its declared
/// property block, counted straight from the bytes (independent of the
/// decoder).
fn payload_of_frame(frame: &[u8]) -> &[u8] {
    let mut at = 1;
    while frame[at] & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let qos = (frame[0] >> 1) & 3;
    let topic_len = usize::from(u16::from_be_bytes([frame[at], frame[at + 1]]));
    at += 2 + topic_len + if qos > 0 { 2 } else { 0 };
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = frame[at];
        at += 1;
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    &frame[at + len..]
}

#[test]
fn several_subscription_identifiers_one_of_them_multi_byte_keep_every_payload_byte() {
    // Property block: subscription ids 300 (two-byte varint), 5 and 1, then
    // nothing: mqttbytes 0.6 counts one byte too many per identifier and
    // ends the block three bytes early, taking them as payload.
    let props = [11, 0xAC, 0x02, 11, 5, 11, 1];
    let mut body = vec![
        0,
        3,
        b'a',
        b'/',
        b'b',
        0,
        9,
        u8::try_from(props.len()).unwrap(),
    ];
    body.extend_from_slice(&props);
    body.extend_from_slice(b"payload");
    let wire = frame_of(0x32, &body);
    let Packet5::Publish(p) = one(&wire) else {
        panic!("not a publish")
    };
    assert_eq!(&p.payload[..], b"payload");
    assert_eq!(p.properties.subscription_identifiers, vec![300, 5, 1]);
    assert_eq!((p.topic.as_str(), p.pkid, p.qos), ("a/b", 9, 1));

    // mqttbytes alone loses the block's end into the payload.
    let mut buf = BytesMut::from(&wire[..]);
    let v5::Packet::Publish(theirs) = v5::read(&mut buf, 1 << 20).unwrap() else {
        panic!("not a publish")
    };
    assert_ne!(&theirs.payload[..], b"payload");
}

#[test]
fn subscription_identifiers_before_other_properties_are_all_read() {
    // Ids, then a content type and a user property after them: every value
    // must come out, and the payload must be untouched.
    let mut props = vec![11, 0xFF, 0xFF, 0x7F, 11, 0x81, 0x01];
    props.extend_from_slice(&[3, 0, 1, b'j', 38, 0, 1, b'k', 0, 1, b'v']);
    let mut body = vec![0, 1, b't', u8::try_from(props.len()).unwrap()];
    body.extend_from_slice(&props);
    body.extend_from_slice(&[0, 1, 2]);
    let Packet5::Publish(p) = one(&frame_of(0x30, &body)) else {
        panic!("not a publish")
    };
    assert_eq!(&p.payload[..], &[0, 1, 2]);
    assert_eq!(p.properties.subscription_identifiers, vec![2_097_151, 129]);
    assert_eq!(p.properties.content_type.as_deref(), Some("j"));
    assert_eq!(p.properties.user_properties, vec![("k".into(), "v".into())]);
}

#[test]
fn the_fuzz_reproducer_of_lost_payload_bytes_keeps_every_payload_byte() {
    // A `framing_v5` fuzz input (byte 0 is the target's control byte, the
    // rest the broker's byte stream) that lost payload bytes before
    // PUBLISH was decoded by this module.
    use base64::Engine as _;
    let input = base64::engine::general_purpose::STANDARD
        .decode(
            "ASALAAAIEwAFJwAAAAGQBgABAAABhzMtAANhL2IABR4BAQMABHQLCwsLCwuLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAALCwsLCwsLCwsLCwsLCwsLCwsLCwsLC2V4dJgwxQsAAfkIAAFyCf/9/wAmAAFrAAF2CwcjAANwYXlsb2H/////AWQ1BwABIAsGAyMAA3g=",
        )
        .unwrap();
    let max_payload = if input[0] & 1 == 0 { 64 } else { 16 << 20 };
    let mut rest = &input[1..];
    let mut publishes = 0;
    loop {
        let mut d = Decoder5::new(max_payload);
        d.push(rest);
        let Ok(Some(packet)) = d.next_packet() else {
            break;
        };
        let frame_len = rest.len() - d.buffered();
        if let Packet5::Publish(p) = &packet {
            assert_eq!(&p.payload[..], payload_of_frame(&rest[..frame_len]));
            publishes += 1;
        }
        rest = &rest[frame_len..];
    }
    assert!(publishes > 0, "the reproducer holds a PUBLISH");
}

#[test]
fn a_connack_block_ending_at_the_packet_end_is_read_exactly() {
    // Every CONNACK property a broker may send, the last one at the very
    // end of the packet; one byte more or less is malformed.
    let c = ConnAck5 {
        session_present: false,
        reason: 0,
        session_expiry_interval: Some(7),
        receive_maximum: Some(9),
        maximum_qos: Some(0),
        retain_available: Some(1),
        maximum_packet_size: Some(65_536),
        assigned_client_identifier: Some("id".into()),
        topic_alias_maximum: Some(2),
        reason_string: Some("r".into()),
        wildcard_subscription_available: Some(1),
        shared_subscription_available: Some(0),
        server_keep_alive: Some(15),
        server_reference: Some("other:1883".into()),
        from_v311: false,
    };
    let wire = bytes_of(&Packet5::ConnAck(c.clone()));
    assert_eq!(one(&wire), Packet5::ConnAck(c));
    let body = &wire[2..];
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(decode_all(&frame_of(0x20, &longer), 100).is_err());
    assert!(decode_all(&frame_of(0x20, &body[..body.len() - 1]), 100).is_err());
}

#[test]
fn suback_reason_codes_start_where_the_counted_property_block_ends() {
    // Properties: reason string "why", a user property; then three codes.
    let props = [31, 0, 3, b'w', b'h', b'y', 38, 0, 1, b'k', 0, 1, b'v'];
    let mut body = vec![0, 4, u8::try_from(props.len()).unwrap()];
    body.extend_from_slice(&props);
    body.extend_from_slice(&[0x00, 0x02, 0x80]);
    assert_eq!(
        one(&frame_of(0x90, &body)),
        Packet5::SubAck {
            pkid: 4,
            reasons: vec![0, 2, 0x80],
            reason_string: Some("why".into()),
        }
    );
    // A property block that claims one byte of the codes is malformed, not
    // a SUBACK with one code fewer.
    let mut bad = body.clone();
    bad[2] += 1;
    assert!(decode_all(&frame_of(0x90, &bad), 100).is_err());
}

#[test]
fn every_ack_kind_with_properties_reads_its_packet_id_and_nothing_after_the_block() {
    let props = [31, 0, 1, b'x', 38, 0, 1, b'k', 0, 0];
    for (byte1, want) in [
        (0x40, Incoming::PubAck(3)),
        (0x50, Incoming::PubRec(3)),
        (0x62, Incoming::PubRel(3)),
        (0x70, Incoming::PubComp(3)),
    ] {
        let reason = if byte1 == 0x62 || byte1 == 0x70 {
            0x92
        } else {
            0x10
        };
        let mut body = vec![0, 3, reason, u8::try_from(props.len()).unwrap()];
        body.extend_from_slice(&props);
        assert_eq!(one(&frame_of(byte1, &body)), Packet5::Common(want));
        body.push(0);
        assert!(decode_all(&frame_of(byte1, &body), 100).is_err());
    }
}
