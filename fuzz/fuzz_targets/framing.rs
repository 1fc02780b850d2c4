//! Fuzz target: the framing decoder fed arbitrary broker bytes.
//!
//! Input layout: byte 0 picks the payload limit (even: 64 bytes, odd:
//! 16 MiB) and seeds the split points; the rest is the byte stream.
//!
//! Checks:
//! - decoding never panics;
//! - the decoder never buffers more than it was given;
//! - splitting the stream into arbitrary reads changes nothing: the packets
//!   (and the error, if any) are those of decoding it one packet at a time;
//! - every decoded packet except `Oversize`/`Unexpected` re-encodes to a
//!   frame that decodes to the same packet, and, when the received frame is
//!   canonical, to exactly the received bytes.
#![no_main]

use attic::mqtt::framing::{Decoder, Incoming, ProtocolError, encode_incoming};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// What decoding a stream produced: packets, then possibly an error.
type Outcome = (Vec<Incoming>, Option<ProtocolError>);

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let max_payload = if control & 1 == 0 { 64 } else { 16 << 20 };
    let split = split_read(data, max_payload, control);
    let framed = one_at_a_time(data, max_payload);
    assert_eq!(split, framed, "split reads changed the decoding");
});

/// Feeds `data` in chunks whose sizes derive from `data` itself, draining
/// packets after each chunk, the way the loop reads a socket.
fn split_read(data: &[u8], max_payload: usize, seed: u8) -> Outcome {
    let mut decoder = Decoder::new(max_payload);
    let mut packets = Vec::new();
    let mut rest = data;
    let mut step = seed;
    while !rest.is_empty() {
        // Chunk sizes 1..=64, varied by the seed and the bytes themselves.
        step = step.wrapping_mul(31).wrapping_add(rest[0]).wrapping_add(7);
        let n = (usize::from(step % 64) + 1).min(rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        assert!(
            decoder.buffered() <= data.len(),
            "decoder buffers more than it got"
        );
        loop {
            match decoder.next_packet() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => return (packets, Some(e)),
            }
            assert!(
                decoder.buffered() <= data.len(),
                "decoder buffers more than it got"
            );
        }
    }
    (packets, None)
}

/// Decodes one packet at a time, each from a fresh decoder fed all the
/// remaining input, so each packet's exact frame is known; checks each
/// packet's re-encoding against its frame.
fn one_at_a_time(data: &[u8], max_payload: usize) -> Outcome {
    let mut packets = Vec::new();
    let mut rest = data;
    loop {
        let mut decoder = Decoder::new(max_payload);
        decoder.push(rest);
        let packet = match decoder.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        };
        let (header_len, remaining) =
            header(rest).expect("a decoded packet has a complete fixed header");
        let frame_len = header_len + remaining;
        if let Incoming::Oversize { .. } = packet {
            // Its payload is skipped, not buffered: whatever of the frame
            // was given is gone from the buffer.
            assert_eq!(decoder.buffered(), rest.len().saturating_sub(frame_len));
        } else {
            assert_eq!(
                rest.len() - decoder.buffered(),
                frame_len,
                "a packet consumed other than its frame"
            );
            check_round_trip(&packet, &rest[..frame_len], header_len, max_payload);
        }
        packets.push(packet);
        if frame_len >= rest.len() {
            return (packets, None);
        }
        rest = &rest[frame_len..];
    }
}

/// Fixed header length and remaining length, as the wire says.
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

/// mqttbytes accepts some non-canonical frames and drops what makes them
/// so: an over-long remaining length (`0x82 0x00` for 2), non-zero reserved
/// flag bits in the first byte (only PUBLISH uses them, PUBREL must have
/// 0b0010), reserved bits in CONNACK's flags byte, and trailing bytes after
/// the fixed-size body of CONNACK, the four acks, UNSUBACK and PINGRESP.
/// Such a frame re-encodes canonically, so exact byte equality is asserted
/// only for canonical frames; every frame must still re-encode to one that
/// decodes to the same packet. PUBLISH and SUBACK have no fixed size (the
/// payload or the codes run to the end), so any length mismatch there is a
/// real loss of bytes and is never excused.
fn canonical(packet: &Incoming, frame: &[u8], header_len: usize) -> bool {
    let remaining = frame.len() - header_len;
    let minimal_len = match remaining {
        0..=127 => 2,
        128..=16_383 => 3,
        16_384..=2_097_151 => 4,
        _ => 5,
    };
    if header_len != minimal_len {
        return false;
    }
    let flags = frame[0] & 0x0f;
    match packet {
        Incoming::Publish { .. } => true,
        Incoming::SubAck { .. } => flags == 0,
        Incoming::PubRel(_) => flags == 0b0010 && remaining == 2,
        Incoming::PubAck(_) | Incoming::PubRec(_) | Incoming::PubComp(_) => {
            flags == 0 && remaining == 2
        }
        Incoming::UnsubAck(_) => flags == 0 && remaining == 2,
        Incoming::ConnAck { .. } => flags == 0 && remaining == 2 && frame[header_len] & !1 == 0,
        Incoming::PingResp => flags == 0 && remaining == 0,
        Incoming::Oversize { .. } | Incoming::Unexpected(_) => false,
    }
}

fn check_round_trip(packet: &Incoming, frame: &[u8], header_len: usize, max_payload: usize) {
    let mut out = BytesMut::new();
    if encode_incoming(packet, &mut out).is_none() {
        assert!(
            matches!(packet, Incoming::Unexpected(_)),
            "no encoding for {packet:?}"
        );
        return;
    }
    if canonical(packet, frame, header_len) {
        assert_eq!(&out[..], frame, "{packet:?} re-encodes differently");
    }
    let mut decoder = Decoder::new(max_payload);
    decoder.push(&out);
    let again = decoder.next_packet();
    assert_eq!(again, Ok(Some(packet.clone())), "re-encoding of {packet:?}");
    assert_eq!(
        decoder.buffered(),
        0,
        "re-encoding of {packet:?} has extra bytes"
    );
}
