//! Fuzz target: the MQTT 3.1.1 framing decoder fed arbitrary broker bytes.
//!
//! The harness (input layout, split reads, frame accounting, re-encoding)
//! is `common::framing`, shared with `framing_v5`. What 3.1.1 adds: a
//! packet received in a canonical frame re-encodes to exactly those bytes.
#![no_main]

mod common;

use attic::mqtt::framing::{Decoder, Incoming, ProtocolError, encode_incoming};
use bytes::BytesMut;
use common::framing::{Framing, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| run::<V311>(input));

struct V311(Decoder);

impl Framing for V311 {
    type Packet = Incoming;
    fn new(max_payload: usize) -> Self {
        V311(Decoder::new(max_payload))
    }
    fn push(&mut self, data: &[u8]) {
        self.0.push(data);
    }
    fn next_packet(&mut self) -> Result<Option<Incoming>, ProtocolError> {
        self.0.next_packet()
    }
    fn buffered(&self) -> usize {
        self.0.buffered()
    }
    fn is_oversize(p: &Incoming) -> bool {
        matches!(p, Incoming::Oversize { .. })
    }
    fn check(p: &Incoming, frame: &[u8], header_len: usize) {
        if canonical(p, frame, header_len)
            && let Some(out) = Self::encode(p)
        {
            assert_eq!(&out[..], frame, "{p:?} re-encodes differently");
        }
    }
    fn encode(p: &Incoming) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        encode_incoming(p, &mut out)?;
        Some(out.to_vec())
    }
    fn may_lack_encoding(p: &Incoming) -> bool {
        matches!(p, Incoming::Unexpected(_))
    }
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
