//! Fuzz target: the MQTT 5 framing decoder fed arbitrary broker bytes.
//!
//! The harness (input layout, split reads, frame accounting, re-encoding
//! with mqttbytes' v5 encoders) is `common::framing`, shared with
//! `framing`. What MQTT 5 adds: a decoded PUBLISH keeps every payload byte
//! of its frame (the frame's remaining length minus topic, packet id and
//! the declared property block), so no property ever eats payload bytes.
#![no_main]

mod common;

use attic::mqtt::framing::v5::{Decoder5, Packet5, encode_packet5};
use attic::mqtt::framing::{Incoming, ProtocolError};
use bytes::BytesMut;
use common::framing::{Framing, header, run, varint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| run::<V5>(input));

struct V5(Decoder5);

impl Framing for V5 {
    type Packet = Packet5;
    fn new(max_payload: usize) -> Self {
        V5(Decoder5::new(max_payload))
    }
    fn push(&mut self, data: &[u8]) {
        self.0.push(data);
    }
    fn next_packet(&mut self) -> Result<Option<Packet5>, ProtocolError> {
        self.0.next_packet()
    }
    fn buffered(&self) -> usize {
        self.0.buffered()
    }
    fn is_oversize(p: &Packet5) -> bool {
        matches!(p, Packet5::Oversize { .. })
    }
    /// The payload of a PUBLISH is exactly what follows the declared
    /// property block.
    fn check(p: &Packet5, frame: &[u8], header_len: usize) {
        if let Packet5::Publish(p) = p {
            let var = &frame[header_len..];
            debug_assert_eq!(header(frame).map(|h| h.0), Some(header_len));
            let qos = (frame[0] >> 1) & 3;
            let topic_len = usize::from(u16::from_be_bytes([var[0], var[1]]));
            let at = 2 + topic_len + if qos > 0 { 2 } else { 0 };
            let (len, n) = varint(&var[at..]);
            assert_eq!(
                &p.payload[..],
                &var[at + n + len..],
                "payload bytes lost or added"
            );
        }
    }
    fn encode(p: &Packet5) -> Option<Vec<u8>> {
        let mut out = BytesMut::new();
        encode_packet5(p, &mut out)?;
        Some(out.to_vec())
    }
    fn may_lack_encoding(p: &Packet5) -> bool {
        matches!(p, Packet5::Common(Incoming::Unexpected(_)))
    }
}
