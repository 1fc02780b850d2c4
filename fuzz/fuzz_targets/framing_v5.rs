//! Fuzz target: the MQTT 5 framing decoder fed arbitrary broker bytes.
//!
//! Input layout: byte 0 picks the payload limit (even: 64 bytes, odd:
//! 16 MiB) and seeds the split points; the rest is the byte stream.
//!
//! Checks:
//! - decoding never panics and never buffers more than it was given;
//! - splitting the stream into arbitrary reads changes nothing;
//! - a decoded PUBLISH keeps every payload byte of its frame (the frame's
//!   remaining length minus topic, packet id and the declared property
//!   block), so no property ever eats payload bytes;
//! - every decoded packet except `Oversize`/`Unexpected` re-encodes (with
//!   mqttbytes' v5 encoders) to a frame that decodes to the same packet.
#![no_main]

use attic::mqtt::framing::{Incoming, ProtocolError};
use attic::mqtt::framing::v5::{Decoder5, Packet5, encode_packet5};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<Packet5>, Option<ProtocolError>);

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let max_payload = if control & 1 == 0 { 64 } else { 16 << 20 };
    let split = split_read(data, max_payload, control);
    let framed = one_at_a_time(data, max_payload);
    assert_eq!(split, framed, "split reads changed the decoding");
});

fn split_read(data: &[u8], max_payload: usize, seed: u8) -> Outcome {
    let mut decoder = Decoder5::new(max_payload);
    let mut packets = Vec::new();
    let mut rest = data;
    let mut step = seed;
    while !rest.is_empty() {
        step = step.wrapping_mul(31).wrapping_add(rest[0]).wrapping_add(7);
        let n = (usize::from(step % 64) + 1).min(rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            assert!(decoder.buffered() <= data.len(), "decoder buffers more than it got");
            match decoder.next_packet() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => return (packets, Some(e)),
            }
        }
    }
    (packets, None)
}

fn one_at_a_time(data: &[u8], max_payload: usize) -> Outcome {
    let mut packets = Vec::new();
    let mut rest = data;
    loop {
        let mut decoder = Decoder5::new(max_payload);
        decoder.push(rest);
        let packet = match decoder.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        };
        let (header_len, remaining) = header(rest).expect("a decoded packet has a fixed header");
        let frame_len = header_len + remaining;
        if let Packet5::Oversize { .. } = packet {
            assert_eq!(decoder.buffered(), rest.len().saturating_sub(frame_len));
        } else {
            assert_eq!(rest.len() - decoder.buffered(), frame_len, "consumed other than its frame");
            check_payload(&packet, &rest[header_len..frame_len], rest[0]);
            check_round_trip(&packet, max_payload);
        }
        packets.push(packet);
        if frame_len >= rest.len() {
            return (packets, None);
        }
        rest = &rest[frame_len..];
    }
}

fn header(frame: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *frame.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((2 + i, len));
        }
    }
    None
}

fn varint(buf: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    for (i, b) in buf.iter().take(4).enumerate() {
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("a decoded packet has a bad varint");
}

/// The payload of a PUBLISH is exactly what follows the declared property
/// block.
fn check_payload(packet: &Packet5, var: &[u8], byte1: u8) {
    if let Packet5::Publish(p) = packet {
        let qos = (byte1 >> 1) & 3;
        let topic_len = usize::from(u16::from_be_bytes([var[0], var[1]]));
        let at = 2 + topic_len + if qos > 0 { 2 } else { 0 };
        let (len, n) = varint(&var[at..]);
        assert_eq!(&p.payload[..], &var[at + n + len..], "payload bytes lost or added");
    }
}

fn check_round_trip(packet: &Packet5, max_payload: usize) {
    let mut out = BytesMut::new();
    if encode_packet5(packet, &mut out).is_none() {
        assert!(
            matches!(packet, Packet5::Common(Incoming::Unexpected(_))),
            "no encoding for {packet:?}"
        );
        return;
    }
    let mut decoder = Decoder5::new(max_payload);
    decoder.push(&out);
    let again = decoder.next_packet();
    assert_eq!(again, Ok(Some(packet.clone())), "re-encoding of {packet:?}");
    assert_eq!(decoder.buffered(), 0, "re-encoding of {packet:?} has extra bytes");
}
