//! Why the session closes a connection. Every variant prints as the reason
//! in the session's log line (`connection closed: <reason>; retrying in
//! ...`) and in the self-report's last close; the words are the ones
//! users and tests look for.
//!
//! Owns: those reasons and their words. Must not: decide what follows a
//! failure (that is `Session::fail`).

use std::fmt;

use crate::mqtt::framing::{EncodeError, ProtocolError};
use crate::mqtt::outflight::UnknownPacketId;
use crate::mqtt::topic_alias::TopicAliasError;

use super::SUBSCRIBE_PKID;

/// Why the session ends a connection (or an attempt at one).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionError {
    /// The broker's bytes are not a valid packet.
    Protocol(ProtocolError),
    /// A packet of ours could not be encoded (CONNECT, SUBSCRIBE, a
    /// publish sent again).
    Encode(EncodeError),
    /// The first answer to CONNECT cannot start a CONNACK; the words quote
    /// it (`answer::not_mqtt`).
    NotMqtt(String),
    /// The TCP connect did not finish in time.
    ConnectTimeout,
    /// No CONNACK in time, in words (`answer::no_connack`).
    NoConnAck(String),
    /// Nothing from the broker for 1.5 keep-alives.
    Silent {
        /// Seconds since the last byte.
        secs: f32,
        /// A PINGREQ was sent and not answered.
        ping_outstanding: bool,
    },
    /// The broker refused the connection: the CONNACK's code in words
    /// (and, on MQTT 5, what the broker said).
    Refused(String),
    /// The broker sent DISCONNECT (MQTT 5), in words.
    Disconnected(String),
    /// A CONNACK while connected.
    SecondConnAck,
    /// A packet that needs a connection (`PUBLISH`, `PUBREL`) before the
    /// CONNACK.
    BeforeConnAck(&'static str),
    /// A SUBACK while no SUBSCRIBE was waiting for one.
    UnaskedSubAck {
        /// Its packet id.
        pkid: u16,
    },
    /// A SUBACK whose packet id or number of codes does not match our
    /// SUBSCRIBE.
    SubAckMismatch {
        /// Its packet id.
        pkid: u16,
        /// Its number of return codes.
        codes: usize,
        /// Our number of filters.
        filters: usize,
    },
    /// An ack for a packet id not in flight.
    UnknownPacketId(UnknownPacketId),
    /// A packet type a broker never sends to a client.
    ServerBound(&'static str),
    /// An MQTT 5 packet on an MQTT 3.1.1 session.
    NotMqtt5,
    /// A topic alias that cannot be resolved (MQTT 5).
    TopicAlias(TopicAliasError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Protocol(e) => e.fmt(f),
            SessionError::Encode(e) => e.fmt(f),
            SessionError::NotMqtt(words)
            | SessionError::NoConnAck(words)
            | SessionError::Refused(words)
            | SessionError::Disconnected(words) => f.write_str(words),
            SessionError::ConnectTimeout => f.write_str("TCP connect timed out"),
            SessionError::Silent {
                secs,
                ping_outstanding: true,
            } => write!(f, "no PINGRESP and no bytes for {secs:.1} s"),
            SessionError::Silent {
                secs,
                ping_outstanding: false,
            } => write!(f, "no bytes from the broker for {secs:.1} s"),
            SessionError::SecondConnAck => f.write_str("second CONNACK"),
            SessionError::BeforeConnAck(packet) => write!(f, "{packet} before CONNACK"),
            SessionError::UnaskedSubAck { pkid } => write!(f, "SUBACK {pkid} for no SUBSCRIBE"),
            SessionError::SubAckMismatch {
                pkid,
                codes,
                filters,
            } => write!(
                f,
                "SUBACK {pkid} with {codes} codes for SUBSCRIBE {SUBSCRIBE_PKID} of {filters} filters"
            ),
            SessionError::UnknownPacketId(e) => e.fmt(f),
            SessionError::ServerBound(kind) => write!(f, "{kind} packet from the broker"),
            SessionError::NotMqtt5 => f.write_str("MQTT 5 packet on an MQTT 3.1.1 session"),
            SessionError::TopicAlias(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SessionError {}

impl From<ProtocolError> for SessionError {
    fn from(e: ProtocolError) -> Self {
        SessionError::Protocol(e)
    }
}

impl From<EncodeError> for SessionError {
    fn from(e: EncodeError) -> Self {
        SessionError::Encode(e)
    }
}

impl From<UnknownPacketId> for SessionError {
    fn from(e: UnknownPacketId) -> Self {
        SessionError::UnknownPacketId(e)
    }
}

impl From<TopicAliasError> for SessionError {
    fn from(e: TopicAliasError) -> Self {
        SessionError::TopicAlias(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_prints_the_words_of_the_log_line() {
        let cases = [
            (SessionError::ConnectTimeout, "TCP connect timed out"),
            (
                SessionError::Silent {
                    secs: 45.04,
                    ping_outstanding: true,
                },
                "no PINGRESP and no bytes for 45.0 s",
            ),
            (
                SessionError::Silent {
                    secs: 7.25,
                    ping_outstanding: false,
                },
                "no bytes from the broker for 7.2 s",
            ),
            (SessionError::SecondConnAck, "second CONNACK"),
            (
                SessionError::BeforeConnAck("PUBLISH"),
                "PUBLISH before CONNACK",
            ),
            (
                SessionError::UnaskedSubAck { pkid: 3 },
                "SUBACK 3 for no SUBSCRIBE",
            ),
            (
                SessionError::SubAckMismatch {
                    pkid: 1,
                    codes: 2,
                    filters: 3,
                },
                "SUBACK 1 with 2 codes for SUBSCRIBE 1 of 3 filters",
            ),
            (
                UnknownPacketId {
                    packet: "UNSUBACK",
                    pkid: 9,
                }
                .into(),
                "UNSUBACK for unknown packet id 9",
            ),
            (
                SessionError::ServerBound("SUBSCRIBE"),
                "SUBSCRIBE packet from the broker",
            ),
            (
                SessionError::NotMqtt5,
                "MQTT 5 packet on an MQTT 3.1.1 session",
            ),
            (
                TopicAliasError::EmptyTopic.into(),
                "PUBLISH with an empty topic and no topic alias",
            ),
            (
                SessionError::Refused("broker refused the connection: x".into()),
                "broker refused the connection: x",
            ),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
    }
}
