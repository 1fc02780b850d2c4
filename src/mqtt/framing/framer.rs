//! The framer under both MQTT decoders (3.1.1 and 5): the read buffer, the
//! fixed header, the size rules and the skipping of an oversize PUBLISH.
//! What a frame *means* is the decoders' business; what bytes are kept is
//! decided here, once, for both versions.
//!
//! Rules it owns (the allocation bound):
//! - bytes are buffered only as they arrive, never because a header
//!   announces a size;
//! - a packet other than PUBLISH may announce at most
//!   [`MAX_CONTROL_PACKET`] bytes;
//! - a PUBLISH whose payload exceeds `max-payload-bytes` has its header
//!   consumed (topic, packet id and, in MQTT 5, the checked property
//!   block: at most 64 KiB each) and its payload dropped as it arrives.
//!
//! ```text
//!   | byte1 | remaining length (varint 1-4 B) | variable header | payload |
//!   PUBLISH variable header: | topic len | topic | pkid (QoS > 0) | props (v5) |
//! ```
//!
//! Must not: decode anything but the fixed header and an oversize
//! PUBLISH's header; know about sessions, sockets or clocks.

use bytes::{Buf, BytesMut};

use super::v5::properties::{Block, check_block, varint};
use super::{MAX_CONTROL_PACKET, ProtocolError};

/// Which protocol's frames: MQTT 5 adds a property block to a PUBLISH's
/// header and names packet type 15 (AUTH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5.
    V5,
}

/// The name of the packet whose first byte is `byte1`.
pub(super) fn packet_name(byte1: u8, version: Version) -> &'static str {
    match byte1 >> 4 {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 if version == Version::V5 => "AUTH",
        _ => "reserved",
    }
}

/// A malformed packet, named by its first byte.
pub(super) fn malformed(byte1: u8, version: Version, detail: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        packet: packet_name(byte1, version),
        detail: detail.into(),
    }
}

/// What the framer found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A whole frame is buffered: its first byte, the length of its fixed
    /// header and its remaining length. The decoder takes it from
    /// [`Framer::buf`] and consumes exactly `header_len + remaining` bytes.
    Whole {
        /// First byte: type and flags.
        byte1: u8,
        /// Bytes of the fixed header (2-5).
        header_len: usize,
        /// Bytes after the fixed header.
        remaining: usize,
    },
    /// An oversize PUBLISH: its header is consumed, its payload skipped.
    Oversize(OversizeHeader),
}

/// The header of a skipped PUBLISH: what its acknowledgement (and, in
/// MQTT 5, its topic alias) still needs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OversizeHeader {
    /// Topic as received (empty when an MQTT 5 broker sent only an alias).
    pub topic: String,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Packet id (0 for QoS 0).
    pub pkid: u16,
    /// Payload size the header announced.
    pub payload_len: usize,
    /// MQTT 5 Topic Alias property.
    pub topic_alias: Option<u16>,
}

/// The read buffer of one connection and the skip of an oversize payload.
#[derive(Debug)]
pub(super) struct Framer {
    /// Bytes received and not yet framed.
    buf: BytesMut,
    /// Bytes of an oversize PUBLISH still to be discarded as they arrive.
    skip: usize,
    /// The stream's `max-payload-bytes`.
    max_payload: usize,
    /// Which protocol's frames.
    version: Version,
}

impl Framer {
    /// A framer that skips PUBLISH payloads larger than `max_payload`.
    pub(super) fn new(max_payload: usize, version: Version) -> Self {
        Framer {
            buf: BytesMut::new(),
            skip: 0,
            max_payload,
            version,
        }
    }

    /// Forgets everything buffered (the connection is gone).
    pub(super) fn reset(&mut self) {
        self.buf.clear();
        self.skip = 0;
    }

    /// Bytes buffered and not yet framed.
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The buffer, for the decoder to take a [`Frame::Whole`] from.
    pub(super) fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Appends bytes read from the socket. Bytes of a skipped payload are
    /// dropped here and never buffered.
    pub(super) fn push(&mut self, mut data: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        if !data.is_empty() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next frame, `Ok(None)` if more bytes are needed.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.skip > 0 {
            return Ok(None);
        }
        let Some((byte1, header_len, remaining)) = self.fixed_header()? else {
            return Ok(None);
        };
        let is_publish = byte1 >> 4 == 3;
        if !is_publish && remaining > MAX_CONTROL_PACKET {
            return Err(ProtocolError::TooLarge {
                packet: packet_name(byte1, self.version),
                len: remaining,
            });
        }
        if is_publish
            && remaining > self.max_payload
            && let Some(found) = self.oversize(byte1, header_len, remaining)?
        {
            return Ok(Some(Frame::Oversize(found)));
        }
        if self.buf.len() < header_len + remaining {
            return Ok(None);
        }
        Ok(Some(Frame::Whole {
            byte1,
            header_len,
            remaining,
        }))
    }

    /// Fixed header: first byte, header length (2-5), remaining length.
    fn fixed_header(&self) -> Result<Option<(u8, usize, usize)>, ProtocolError> {
        let Some(&byte1) = self.buf.first() else {
            return Ok(None);
        };
        match varint(&self.buf[1..]) {
            Ok(Some((len, n))) => Ok(Some((byte1, 1 + n, len))),
            Ok(None) => Ok(None),
            Err(_) => Err(malformed(
                byte1,
                self.version,
                "remaining length longer than 4 bytes",
            )),
        }
    }

    /// For a PUBLISH announcing more than `max_payload` bytes: if its
    /// payload really exceeds the limit, consume its header, arm the skip
    /// and return it. `Ok(None)` means "not oversize" or "need more bytes"
    /// (then the frame is incomplete too). The header is at most
    /// 2 + 65,535 + 2 bytes (+ a property block of at most
    /// [`MAX_CONTROL_PACKET`]), so buffering it is bounded.
    fn oversize(
        &mut self,
        byte1: u8,
        header_len: usize,
        remaining: usize,
    ) -> Result<Option<OversizeHeader>, ProtocolError> {
        let v = self.version;
        let qos = (byte1 >> 1) & 0b11;
        if qos == 3 {
            return Err(malformed(byte1, v, "QoS 3"));
        }
        let var = &self.buf[header_len.min(self.buf.len())..];
        if var.len() < 2 {
            return Ok(None);
        }
        let topic_len = usize::from(u16::from_be_bytes([var[0], var[1]]));
        let props_at = 2 + topic_len + if qos > 0 { 2 } else { 0 };
        let var_len = match v {
            Version::V311 => {
                if props_at > remaining {
                    return Err(malformed(byte1, v, "topic runs past the end of the packet"));
                }
                props_at
            }
            Version::V5 => {
                if props_at >= remaining {
                    return Err(malformed(byte1, v, "topic runs past the end of the packet"));
                }
                let Some((props_len, len_len)) = varint(var.get(props_at..).unwrap_or(&[]))
                    .map_err(|e| malformed(byte1, v, e))?
                else {
                    return Ok(None);
                };
                if props_len > MAX_CONTROL_PACKET {
                    return Err(ProtocolError::TooLarge {
                        packet: "PUBLISH properties",
                        len: props_len,
                    });
                }
                let var_len = props_at + len_len + props_len;
                if var_len > remaining {
                    return Err(malformed(
                        byte1,
                        v,
                        format!("property length {props_len} runs past the end of the packet"),
                    ));
                }
                var_len
            }
        };
        let payload_len = remaining - var_len;
        if payload_len <= self.max_payload || var.len() < var_len {
            return Ok(None);
        }
        let topic = std::str::from_utf8(&var[2..2 + topic_len])
            .map_err(|_| malformed(byte1, v, "topic is not UTF-8"))?
            .to_owned();
        let pkid = if qos > 0 {
            u16::from_be_bytes([var[2 + topic_len], var[3 + topic_len]])
        } else {
            0
        };
        if qos > 0 && pkid == 0 {
            return Err(malformed(byte1, v, "packet id 0"));
        }
        let topic_alias = match v {
            Version::V311 => None,
            Version::V5 => {
                check_block(Block::Publish, &var[props_at..var_len])
                    .map_err(|e| malformed(byte1, v, e))?
                    .topic_alias
            }
        };
        // Drop the header and whatever of the payload is already buffered;
        // the rest is dropped by `push` as it arrives.
        let consumed = header_len + var_len;
        let buffered_payload = (self.buf.len() - consumed).min(payload_len);
        self.buf.advance(consumed + buffered_payload);
        self.skip = payload_len - buffered_payload;
        Ok(Some(OversizeHeader {
            topic,
            qos,
            pkid,
            payload_len,
            topic_alias,
        }))
    }
}
