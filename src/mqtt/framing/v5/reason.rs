//! MQTT 5 reason codes in words, for log lines ("not authorized (0x87)").
//!
//! One table for every packet: a code means the same wherever it is
//! allowed, except 0x00, whose wording depends on the packet. It must not
//! decide what a code *does* to the connection (the session does).

/// The packet a reason code came in, for the wording of 0x00-0x02.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// CONNACK.
    ConnAck,
    /// SUBACK: 0-2 are the granted QoS.
    SubAck,
    /// DISCONNECT.
    Disconnect,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK.
    Ack,
}

/// The reason code's name from the MQTT 5 specification, in lower case.
pub fn name(packet: Packet, code: u8) -> &'static str {
    match (packet, code) {
        (Packet::SubAck, 0) => "granted QoS 0",
        (Packet::SubAck, 1) => "granted QoS 1",
        (Packet::SubAck, 2) => "granted QoS 2",
        (Packet::Disconnect, 0) => "normal disconnection",
        (_, 0) => "success",
        (Packet::Disconnect, 0x04) => "disconnect with will message",
        (_, 0x10) => "no matching subscribers",
        (_, 0x11) => "no subscription existed",
        (_, 0x18) => "continue authentication",
        (_, 0x19) => "re-authenticate",
        (_, 0x80) => "unspecified error",
        (_, 0x81) => "malformed packet",
        (_, 0x82) => "protocol error",
        (_, 0x83) => "implementation specific error",
        (_, 0x84) => "unsupported protocol version",
        (_, 0x85) => "client identifier not valid",
        (_, 0x86) => "bad user name or password",
        (_, 0x87) => "not authorized",
        (_, 0x88) => "server unavailable",
        (_, 0x89) => "server busy",
        (_, 0x8A) => "banned",
        (_, 0x8B) => "server shutting down",
        (_, 0x8C) => "bad authentication method",
        (_, 0x8D) => "keep alive timeout",
        (_, 0x8E) => "session taken over",
        (_, 0x8F) => "topic filter invalid",
        (_, 0x90) => "topic name invalid",
        (_, 0x91) => "packet identifier in use",
        (_, 0x92) => "packet identifier not found",
        (_, 0x93) => "receive maximum exceeded",
        (_, 0x94) => "topic alias invalid",
        (_, 0x95) => "packet too large",
        (_, 0x96) => "message rate too high",
        (_, 0x97) => "quota exceeded",
        (_, 0x98) => "administrative action",
        (_, 0x99) => "payload format invalid",
        (_, 0x9A) => "retain not supported",
        (_, 0x9B) => "QoS not supported",
        (_, 0x9C) => "use another server",
        (_, 0x9D) => "server moved",
        (_, 0x9E) => "shared subscriptions not supported",
        (_, 0x9F) => "connection rate exceeded",
        (_, 0xA0) => "maximum connect time",
        (_, 0xA1) => "subscription identifiers not supported",
        (_, 0xA2) => "wildcard subscriptions not supported",
        _ => "unknown reason code",
    }
}

/// `"<name> (0x<code>)"`, the form every log line uses.
pub fn words(packet: Packet, code: u8) -> String {
    format!("{} (0x{code:02X})", name(packet, code))
}

/// Maps the return code of an MQTT 3.1.1 CONNACK (which a broker that does
/// not speak MQTT 5 sends in answer to our CONNECT) to its MQTT 5 reason.
pub fn from_v311_connack(code: u8) -> u8 {
    match code {
        0 => 0x00,
        1 => 0x84,
        2 => 0x85,
        3 => 0x88,
        4 => 0x86,
        5 => 0x87,
        _ => 0x80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_words_with_their_number() {
        assert_eq!(words(Packet::SubAck, 0x87), "not authorized (0x87)");
        assert_eq!(words(Packet::Disconnect, 0x8E), "session taken over (0x8E)");
        assert_eq!(words(Packet::SubAck, 1), "granted QoS 1 (0x01)");
        assert_eq!(words(Packet::ConnAck, 0), "success (0x00)");
        assert_eq!(words(Packet::Disconnect, 0), "normal disconnection (0x00)");
        assert_eq!(words(Packet::ConnAck, 0x7F), "unknown reason code (0x7F)");
    }

    #[test]
    fn a_311_refusal_maps_to_the_matching_reason() {
        assert_eq!(
            name(Packet::ConnAck, from_v311_connack(1)),
            "unsupported protocol version"
        );
        assert_eq!(
            name(Packet::ConnAck, from_v311_connack(5)),
            "not authorized"
        );
    }
}
