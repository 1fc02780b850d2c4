//! The one harness shape of the two framing fuzz targets (MQTT 3.1.1 and
//! MQTT 5): the input layout, the split-read comparison, the frame
//! accounting and the re-encoding check are the same for both versions;
//! each target says only what its packets are and what it checks of a
//! packet against its exact frame.
//!
//! Input layout: byte 0 picks the payload limit (even: 64 bytes, odd:
//! 16 MiB) and seeds the split points; the rest is the broker's byte
//! stream.
//!
//! Checks, for both versions:
//! - decoding never panics and never buffers more than it was given;
//! - splitting the stream into arbitrary reads changes nothing: the packets
//!   (and the error, if any) are those of decoding it one packet at a time;
//! - a packet consumes exactly its frame (an oversize PUBLISH: the frame's
//!   bytes given so far are gone from the buffer);
//! - the version's own check of each packet against its frame;
//! - every packet that can be encoded re-encodes to a frame that decodes to
//!   the same packet with nothing left over.

use attic::mqtt::framing::ProtocolError;
use std::fmt::Debug;

/// One version's decoder and packets, as the harness drives them.
pub trait Framing {
    /// A decoded packet.
    type Packet: Clone + PartialEq + Debug;
    /// A decoder skipping payloads over `max_payload`.
    fn new(max_payload: usize) -> Self;
    /// Bytes from the socket.
    fn push(&mut self, data: &[u8]);
    /// The next packet, `Ok(None)` = more bytes needed.
    fn next_packet(&mut self) -> Result<Option<Self::Packet>, ProtocolError>;
    /// Bytes buffered and not yet framed.
    fn buffered(&self) -> usize;
    /// An oversize PUBLISH (its payload is skipped, not buffered).
    fn is_oversize(p: &Self::Packet) -> bool;
    /// The version's checks of `p` against its exact `frame`.
    fn check(p: &Self::Packet, frame: &[u8], header_len: usize);
    /// `p` encoded into `out`; `None` = no encoding (server-bound packets).
    fn encode(p: &Self::Packet) -> Option<Vec<u8>>;
    /// Packets that have no encoding, and may say so.
    fn may_lack_encoding(p: &Self::Packet) -> bool;
}

type Outcome<P> = (Vec<P>, Option<ProtocolError>);

/// The whole fuzz target for version `D`.
pub fn run<D: Framing>(input: &[u8]) {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let max_payload = if control & 1 == 0 { 64 } else { 16 << 20 };
    let split = split_read::<D>(data, max_payload, control);
    let framed = one_at_a_time::<D>(data, max_payload);
    assert_eq!(split, framed, "split reads changed the decoding");
}

/// Feeds `data` in chunks whose sizes derive from `data` itself, draining
/// packets after each chunk, the way the loop reads a socket.
fn split_read<D: Framing>(data: &[u8], max_payload: usize, seed: u8) -> Outcome<D::Packet> {
    let mut decoder = D::new(max_payload);
    let mut packets = Vec::new();
    let mut rest = data;
    let mut step = seed;
    while !rest.is_empty() {
        // Chunk sizes 1..=64, varied by the seed and the bytes themselves.
        step = step.wrapping_mul(31).wrapping_add(rest[0]).wrapping_add(7);
        let n = (usize::from(step % 64) + 1).min(rest.len());
        decoder.push(&rest[..n]);
        rest = &rest[n..];
        loop {
            assert!(
                decoder.buffered() <= data.len(),
                "decoder buffers more than it got"
            );
            match decoder.next_packet() {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => return (packets, Some(e)),
            }
        }
    }
    (packets, None)
}

/// Decodes one packet at a time, each from a fresh decoder fed all the
/// remaining input, so each packet's exact frame is known.
fn one_at_a_time<D: Framing>(data: &[u8], max_payload: usize) -> Outcome<D::Packet> {
    let mut packets = Vec::new();
    let mut rest = data;
    loop {
        let mut decoder = D::new(max_payload);
        decoder.push(rest);
        let packet = match decoder.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        };
        let (header_len, remaining) =
            header(rest).expect("a decoded packet has a complete fixed header");
        let frame_len = header_len + remaining;
        if D::is_oversize(&packet) {
            assert_eq!(decoder.buffered(), rest.len().saturating_sub(frame_len));
        } else {
            assert_eq!(
                rest.len() - decoder.buffered(),
                frame_len,
                "a packet consumed other than its frame"
            );
            D::check(&packet, &rest[..frame_len], header_len);
            check_reencoding::<D>(&packet, max_payload);
        }
        packets.push(packet);
        if frame_len >= rest.len() {
            return (packets, None);
        }
        rest = &rest[frame_len..];
    }
}

/// Fixed header length and remaining length, as the wire says.
pub fn header(frame: &[u8]) -> Option<(usize, usize)> {
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

/// A variable byte integer at the start of `buf`: (value, bytes).
pub fn varint(buf: &[u8]) -> (usize, usize) {
    let mut v = 0usize;
    for (i, b) in buf.iter().take(4).enumerate() {
        v |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("a decoded packet has a bad varint");
}

fn check_reencoding<D: Framing>(packet: &D::Packet, max_payload: usize) {
    let Some(out) = D::encode(packet) else {
        assert!(D::may_lack_encoding(packet), "no encoding for {packet:?}");
        return;
    };
    let mut decoder = D::new(max_payload);
    decoder.push(&out);
    let again = decoder.next_packet();
    assert_eq!(again, Ok(Some(packet.clone())), "re-encoding of {packet:?}");
    assert_eq!(
        decoder.buffered(),
        0,
        "re-encoding of {packet:?} has extra bytes"
    );
}
