//! MQTT 5 framing: part of [`framing`](crate::mqtt::framing), the only user
//! of `mqttbytes`. Turns the bytes of an MQTT 5 connection into [`Packet5`]s
//! and encodes what a v5 subscriber sends.
//!
//! ```text
//!   decode      bytes -> Packet5: frames, checks, then mqttbytes' v5 codecs
//!   properties  strict property-block check; PUBLISH properties -> stored JSON
//!   reason      reason codes in words
//!   encode      CONNECT/SUBSCRIBE/PUBLISH v5; broker packets for round trips
//! ```
//!
//! A v5 PUBLISH frame (the property block is what 3.1.1 lacks):
//!
//! ```text
//!   | type+flags | rem.len | topic len | topic | pkid* | prop.len | props | payload |
//!                                                 * QoS > 0 only
//! ```
//!
//! It knows nothing about sessions, sockets or clocks; reason codes are
//! turned into words here, but what they do is the session's business.

pub mod decode;
pub mod encode;
pub mod properties;
pub mod reason;

pub use decode::{ConnAck5, Decoder5, Disconnect5, Packet5, Publish5};
pub use encode::{
    Connect5Params, encode_connect5, encode_packet5, encode_publish5, encode_subscribe5, frame,
};
pub use properties::PublishProps;

#[cfg(test)]
mod tests;
