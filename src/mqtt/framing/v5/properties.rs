//! MQTT 5 property blocks: the strict check that mqttbytes 0.6 does not do,
//! and the stored JSON form of a PUBLISH's properties.
//!
//! mqttbytes reads a property block with a cursor that is compared to the
//! declared length only *between* properties: a property that straddles the
//! declared end silently eats the first payload bytes, and a declared length
//! longer than the properties makes payload bytes parse as properties. It
//! also accepts a property twice (last one wins), a subscription identifier
//! of 0 and a payload format indicator of 7. [`check_block`] rejects all of
//! that before mqttbytes is given the frame, so the values mqttbytes returns
//! come from exactly the declared block.
//!
//! ```text
//!   property block:  | length (varint 1-4 B) | id | value | id | value | ... |
//!                                            <------- length bytes ------->
//! ```
//!
//! It must not allocate for the check, read anything outside the slice it is
//! given, or know about sessions.

use bytes::Bytes;
use serde::Serialize;

/// Which packet a property block belongs to: each allows different ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// PUBLISH.
    Publish,
    /// CONNACK.
    ConnAck,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK: reason string and
    /// user properties only.
    Ack,
    /// DISCONNECT.
    Disconnect,
}

/// What a checked block holds that the framing needs before (or instead
/// of) a full decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// Bytes the block takes, its length varint included.
    pub size: usize,
    /// The block declares no property at all.
    pub empty: bool,
    /// PUBLISH: the Topic Alias property (non-zero; checked).
    pub topic_alias: Option<u16>,
}

/// How a property's value is encoded.
#[derive(Clone, Copy)]
enum Value {
    Byte,
    Two,
    Four,
    VarInt,
    Utf8,
    Binary,
    Pair,
}

fn value_type(id: u8) -> Option<Value> {
    Some(match id {
        1 | 23 | 25 | 36 | 37 | 40 | 41 | 42 => Value::Byte,
        19 | 33 | 34 | 35 => Value::Two,
        2 | 17 | 24 | 39 => Value::Four,
        11 => Value::VarInt,
        3 | 8 | 18 | 21 | 26 | 28 | 31 => Value::Utf8,
        9 | 22 => Value::Binary,
        38 => Value::Pair,
        _ => return None,
    })
}

fn allowed(block: Block, id: u8) -> bool {
    match block {
        Block::Publish => matches!(id, 1 | 2 | 3 | 8 | 9 | 11 | 35 | 38),
        Block::ConnAck => matches!(
            id,
            17 | 18 | 19 | 21 | 22 | 26 | 28 | 31 | 33 | 34 | 36 | 37 | 38 | 39 | 40 | 41 | 42
        ),
        Block::Ack => matches!(id, 31 | 38),
        Block::Disconnect => matches!(id, 17 | 28 | 31 | 38),
    }
}

/// Properties that may appear more than once: User Property and (in a
/// PUBLISH) Subscription Identifier.
fn repeatable(id: u8) -> bool {
    id == 38 || id == 11
}

/// A variable byte integer at the start of `buf`: `(value, bytes used)`.
/// `Ok(None)` = `buf` ends inside it.
pub fn varint(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err("variable byte integer longer than 4 bytes".into())
}

fn take<'a>(buf: &mut &'a [u8], n: usize, id: u8) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err(format!(
            "property {id} runs past the end of its property block"
        ));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_prefixed<'a>(buf: &mut &'a [u8], id: u8) -> Result<&'a [u8], String> {
    let len = take(buf, 2, id)?;
    let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
    take(buf, n, id)
}

/// One property value, borrowed from the block it was read from.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Byte(u8),
    /// A two-byte integer (Topic Alias goes to [`BlockInfo`]; the others
    /// belong to packets whose values mqttbytes reads).
    Two,
    Four(u32),
    VarInt(usize),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

fn read_utf8<'a>(buf: &mut &'a [u8], id: u8) -> Result<&'a str, String> {
    let s = take_prefixed(buf, id)?;
    std::str::from_utf8(s).map_err(|_| format!("property {id} is not valid UTF-8"))
}

/// Walks the property block at the start of `buf` (its length varint
/// first), checking every rule, and hands each property to `visit`. The
/// block must lie within `buf`; what follows it is not looked at. Every
/// length, variable byte integers included, is counted here from the bytes
/// themselves, so the block ends exactly where its length says.
fn walk<'a>(
    block: Block,
    buf: &'a [u8],
    mut visit: impl FnMut(u8, Val<'a>),
) -> Result<BlockInfo, String> {
    let Some((len, len_len)) = varint(buf)? else {
        return Err("property length missing".into());
    };
    let end = len_len
        .checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or_else(|| format!("property length {len} runs past the end of the packet"))?;
    let mut rest = &buf[len_len..end];
    // Ids seen so far (all are below 64).
    let mut seen = 0u64;
    let mut info = BlockInfo {
        size: end,
        empty: len == 0,
        topic_alias: None,
    };
    while let Some((&id, tail)) = rest.split_first() {
        rest = tail;
        let Some(kind) = value_type(id).filter(|_| allowed(block, id)) else {
            return Err(format!("property {id} is not allowed in {block:?}"));
        };
        let bit = 1u64 << (id & 63);
        if seen & bit != 0 && !repeatable(id) {
            return Err(format!("property {id} appears twice"));
        }
        seen |= bit;
        let value = match kind {
            Value::Byte => {
                let v = take(&mut rest, 1, id)?[0];
                // Payload format indicator, Maximum QoS and the "available"
                // flags are 0 or 1; the request flags never reach a client.
                if v > 1 {
                    return Err(format!("property {id} has value {v} (0 or 1 allowed)"));
                }
                Val::Byte(v)
            }
            Value::Two => {
                let b = take(&mut rest, 2, id)?;
                let v = u16::from_be_bytes([b[0], b[1]]);
                // Receive Maximum and Topic Alias must not be 0.
                if v == 0 && (id == 33 || id == 35) {
                    return Err(format!("property {id} is 0"));
                }
                if id == 35 {
                    info.topic_alias = Some(v);
                }
                Val::Two
            }
            Value::Four => {
                let b = take(&mut rest, 4, id)?;
                let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                // Maximum Packet Size must not be 0.
                if id == 39 && v == 0 {
                    return Err("maximum packet size is 0".into());
                }
                Val::Four(v)
            }
            Value::VarInt => {
                let Some((v, n)) = varint(rest)? else {
                    return Err(format!(
                        "property {id} runs past the end of its property block"
                    ));
                };
                if v == 0 {
                    return Err("subscription identifier 0".into());
                }
                take(&mut rest, n, id)?;
                Val::VarInt(v)
            }
            Value::Utf8 => Val::Str(read_utf8(&mut rest, id)?),
            Value::Binary => Val::Bin(take_prefixed(&mut rest, id)?),
            Value::Pair => {
                let k = read_utf8(&mut rest, id)?;
                Val::Pair(k, read_utf8(&mut rest, id)?)
            }
        };
        visit(id, value);
    }
    Ok(info)
}

/// Checks the property block at the start of `buf` (its length varint
/// first). The block must lie within `buf`; what follows it is not looked
/// at. Returns its size and the topic alias, if any.
pub fn check_block(block: Block, buf: &[u8]) -> Result<BlockInfo, String> {
    walk(block, buf, |_, _| ())
}

/// Checks and reads the property block of a PUBLISH at the start of `buf`:
/// its size, its topic alias and the properties Attic stores. The values
/// come from this module's own reading of the block, never from mqttbytes
/// (whose 0.6 reader miscounts subscription identifiers and so moves the
/// end of the block into the payload).
pub fn read_publish_block(buf: &[u8]) -> Result<(BlockInfo, PublishProps), String> {
    let mut props = PublishProps::default();
    let info = walk(Block::Publish, buf, |id, value| match (id, value) {
        (1, Val::Byte(v)) => props.payload_format_indicator = Some(v),
        (2, Val::Four(v)) => props.message_expiry_interval = Some(v),
        (3, Val::Str(s)) => props.content_type = Some(s.to_owned()),
        (8, Val::Str(s)) => props.response_topic = Some(s.to_owned()),
        (9, Val::Bin(b)) => props.correlation_data = Some(Bytes::copy_from_slice(b)),
        (11, Val::VarInt(v)) => props.subscription_identifiers.push(v),
        (38, Val::Pair(k, v)) => props.user_properties.push((k.to_owned(), v.to_owned())),
        // The topic alias is in `BlockInfo`; nothing else is allowed here.
        _ => {}
    })?;
    Ok((info, props))
}

/// The properties of a received PUBLISH that Attic stores (the topic
/// alias is transport and is resolved, not stored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProps {
    /// 0 = unspecified bytes, 1 = UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// Seconds of life left when the broker forwarded it.
    pub message_expiry_interval: Option<u32>,
    /// MIME type or any string the publisher chose.
    pub content_type: Option<String>,
    /// Request/response: where to answer.
    pub response_topic: Option<String>,
    /// Request/response: opaque bytes.
    pub correlation_data: Option<Bytes>,
    /// In the order the broker sent them.
    pub user_properties: Vec<(String, String)>,
    /// Of the matching subscriptions.
    pub subscription_identifiers: Vec<usize>,
}

/// The JSON object of SPEC 13, keys in this order, absent ones left out.
#[derive(Serialize)]
struct StoredJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data_base64: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    user_properties: &'a [(String, String)],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    subscription_identifiers: &'a [usize],
}

impl PublishProps {
    /// True when the message carries none of the stored properties.
    pub fn is_empty(&self) -> bool {
        *self == PublishProps::default()
    }

    /// The `properties` column value: a JSON object, or `None` (SQL NULL)
    /// when there is nothing to store.
    ///
    /// ```text
    /// {"content_type":"application/json","payload_format_indicator":1,
    ///  "message_expiry_interval":60,"response_topic":"reply/1",
    ///  "correlation_data_base64":"AQID","user_properties":[["k","v"]],
    ///  "subscription_identifiers":[7]}
    /// ```
    pub fn to_json(&self) -> Option<String> {
        use base64::Engine as _;
        if self.is_empty() {
            return None;
        }
        let stored = StoredJson {
            content_type: self.content_type.as_deref(),
            payload_format_indicator: self.payload_format_indicator,
            message_expiry_interval: self.message_expiry_interval,
            response_topic: self.response_topic.as_deref(),
            correlation_data_base64: self
                .correlation_data
                .as_ref()
                .map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
            user_properties: &self.user_properties,
            subscription_identifiers: &self.subscription_identifiers,
        };
        // Serialising strings, integers and arrays of them cannot fail.
        serde_json::to_string(&stored).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(props: &[u8]) -> Vec<u8> {
        let mut v = vec![u8::try_from(props.len()).unwrap()];
        v.extend_from_slice(props);
        v
    }

    #[test]
    fn an_empty_block_is_one_byte() {
        let info = check_block(Block::Publish, &[0, 0xAA, 0xBB]).unwrap();
        assert_eq!((info.size, info.empty), (1, true));
    }

    #[test]
    fn a_block_with_every_publish_property_is_accepted_and_its_alias_read() {
        let b = block(&[
            1, 1, // payload format indicator
            2, 0, 0, 0, 60, // message expiry
            3, 0, 1, b't', // content type
            8, 0, 1, b'r', // response topic
            9, 0, 2, 0xff, 0x00, // correlation data (binary)
            11, 0x80, 0x01, // subscription id 128 (two-byte varint)
            11, 7, // a second subscription id
            35, 0, 9, // topic alias
            38, 0, 1, b'k', 0, 1, b'v', // user property
            38, 0, 1, b'k', 0, 1, b'w', // the same key again
        ]);
        let info = check_block(Block::Publish, &b).unwrap();
        assert_eq!(info.size, b.len());
        assert_eq!(info.topic_alias, Some(9));
    }

    #[test]
    fn a_property_straddling_the_declared_end_is_refused() {
        // Declared length 3, but the message expiry needs 5 bytes: the two
        // "payload" bytes after the block must not be read as its value.
        let b = [3, 2, 0, 0, 0, 60];
        let err = check_block(Block::Publish, &b).unwrap_err();
        assert!(err.contains("past the end"), "{err}");
    }

    #[test]
    fn a_declared_length_beyond_the_packet_is_refused() {
        assert!(check_block(Block::Publish, &[10, 1, 1]).is_err());
    }

    #[test]
    fn a_single_valued_property_twice_is_refused() {
        let b = block(&[1, 1, 1, 0]);
        assert!(
            check_block(Block::Publish, &b)
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn subscription_identifier_zero_and_topic_alias_zero_are_refused() {
        assert!(check_block(Block::Publish, &block(&[11, 0])).is_err());
        assert!(check_block(Block::Publish, &block(&[35, 0, 0])).is_err());
    }

    #[test]
    fn a_payload_format_indicator_other_than_0_or_1_is_refused() {
        assert!(check_block(Block::Publish, &block(&[1, 7])).is_err());
    }

    #[test]
    fn a_property_of_another_packet_is_refused() {
        // Session Expiry Interval belongs to CONNECT/CONNACK/DISCONNECT.
        let b = block(&[17, 0, 0, 0, 1]);
        assert!(check_block(Block::Publish, &b).is_err());
        assert!(check_block(Block::ConnAck, &b).is_ok());
        assert!(check_block(Block::Ack, &b).is_err());
    }

    #[test]
    fn an_unknown_property_id_is_refused() {
        assert!(check_block(Block::ConnAck, &block(&[99, 0])).is_err());
    }

    #[test]
    fn invalid_utf8_in_a_string_property_is_refused() {
        assert!(check_block(Block::Publish, &block(&[3, 0, 1, 0xff])).is_err());
    }

    #[test]
    fn a_five_byte_property_length_is_refused() {
        assert!(check_block(Block::Publish, &[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
    }

    #[test]
    fn no_properties_store_as_null() {
        assert_eq!(PublishProps::default().to_json(), None);
    }

    #[test]
    fn properties_store_as_json_in_spec_order_with_user_properties_in_order() {
        let p = PublishProps {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("application/json".into()),
            response_topic: Some("reply/\"1\"".into()),
            correlation_data: Some(Bytes::from_static(&[1, 2, 3])),
            user_properties: vec![
                ("z".into(), "1".into()),
                ("a".into(), "2".into()),
                ("z".into(), "3".into()),
            ],
            subscription_identifiers: vec![7],
        };
        assert_eq!(
            p.to_json().unwrap(),
            r#"{"content_type":"application/json","payload_format_indicator":1,"message_expiry_interval":60,"response_topic":"reply/\"1\"","correlation_data_base64":"AQID","user_properties":[["z","1"],["a","2"],["z","3"]],"subscription_identifiers":[7]}"#
        );
    }

    #[test]
    fn only_present_properties_are_written() {
        let p = PublishProps {
            content_type: Some("text/plain".into()),
            ..PublishProps::default()
        };
        assert_eq!(p.to_json().unwrap(), r#"{"content_type":"text/plain"}"#);
    }
}
