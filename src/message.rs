//! The one shape of a message, from the stream that stamps it to the reader
//! that reads it back: what the filters see, what the gate and the writer
//! store, and what `store::reader` returns (with its stream, as
//! `select::Row`).
//!
//! A leaf: it imports no other module of the crate, so that `mqtt`,
//! `filter`, `store` and `select` can all name it without naming each
//! other.

/// One received message, as it is stored and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unix microseconds of the local clock when the message was read (the
    /// `reception_timestamp` column).
    pub timestamp_us: i64,
    /// The topic exactly as the broker delivered it.
    pub topic: String,
    /// The payload, byte for byte (on ingest it shares the read buffer; no
    /// copy).
    pub payload: bytes::Bytes,
    /// QoS the message was delivered with (0, 1 or 2).
    pub qos: u8,
    /// The retain flag as delivered.
    pub retain: bool,
    /// MQTT 5 properties as JSON (the `properties` column); `None` = NULL:
    /// a message without properties, or a stream of MQTT 3.1.1.
    pub properties: Option<String>,
}
