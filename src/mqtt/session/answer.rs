//! What the first answer to our CONNECT says, or its absence: bytes that
//! cannot start a CONNACK (an HTTP server, a captive portal, a proxy) are
//! reported as a non-MQTT answer quoting them, no CONNACK to an MQTT 5
//! CONNECT hints that the broker may not speak MQTT 5, a 3.1.1 refusal is
//! put in words, and a persistent session the broker did not keep is said.
//!
//! Owns: those checks and their words. Must not: own a socket or read
//! a clock (the session passes what it knows).

use super::{Session, SessionError, State};
use std::time::Duration;

/// First byte of every CONNACK (packet type 2, flags 0), in both versions.
const CONNACK_BYTE1: u8 = 0x20;

/// At most this many printable characters of a non-MQTT answer are quoted.
const QUOTE_MAX: usize = 12;

impl Session {
    /// Before CONNACK, the first byte the broker sends must start one; a
    /// broker sends nothing else first (MQTT 3.1.1 3.2, MQTT 5 3.2). `Err`
    /// is the log line for anything else.
    pub(super) fn check_first_bytes(&self, data: &[u8]) -> Result<(), SessionError> {
        if !matches!(self.state, State::AwaitConnAck { .. }) {
            return Ok(());
        }
        let buffered = match self.v5.as_deref() {
            Some(v5) => v5.buffered(),
            None => self.decoder.buffered(),
        };
        match data.first() {
            Some(&b) if buffered == 0 && b != CONNACK_BYTE1 => {
                Err(SessionError::NotMqtt(not_mqtt(data)))
            }
            _ => Ok(()),
        }
    }

    /// Logs what an accepted CONNACK says about a persistent session.
    pub(super) fn log_session_present(&self, session_present: bool) {
        if !self.cfg.clean_session && !session_present && !self.cfg.filters.is_empty() {
            if self.stats.connections > 1 {
                log::warn!(
                    "[{}] the broker kept no session for client id {:?} (clean-session: false): messages published while Attic was disconnected are gone; subscribing again",
                    self.cfg.name,
                    self.cfg.client_id
                );
            } else {
                log::info!(
                    "[{}] the broker has no session for client id {:?} yet; starting a persistent one",
                    self.cfg.name,
                    self.cfg.client_id
                );
            }
        }
    }
}

/// A 3.1.1 CONNACK return code in words.
pub(super) fn refusal(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version (1)",
        2 => "client identifier rejected (2)",
        3 => "server unavailable (3)",
        4 => "bad user name or password (4)",
        5 => "not authorized (5)",
        _ => "unknown return code",
    }
}

/// `got "HTTP/1.1 400" instead of an MQTT CONNACK: is this port a broker?`
/// (the first printable characters), or the first bytes in hex when they
/// are not text.
pub(super) fn not_mqtt(data: &[u8]) -> String {
    let text: String = data
        .iter()
        .take(QUOTE_MAX)
        .take_while(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect();
    let text = text.trim_end();
    let shown = if text.is_empty() {
        let hex: Vec<String> = data.iter().take(4).map(|b| format!("0x{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    } else {
        format!("{text:?}")
    };
    format!("got {shown} instead of an MQTT CONNACK: is this port a broker?")
}

/// The log line when no CONNACK came within `timeout`.
pub(super) fn no_connack(timeout: Duration, mqtt5: bool) -> String {
    let secs = timeout.as_secs();
    if mqtt5 {
        format!(
            "no CONNACK from the broker within {secs} s: it may not speak MQTT 5; if so, set `mqtt-version: 3.1.1` for this stream"
        )
    } else {
        format!("no CONNACK from the broker within {secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_answer_is_quoted_by_its_first_printable_characters() {
        assert_eq!(
            not_mqtt(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            "got \"HTTP/1.1 400\" instead of an MQTT CONNACK: is this port a broker?"
        );
        assert_eq!(
            not_mqtt(b"SSH-2.0\r\n"),
            "got \"SSH-2.0\" instead of an MQTT CONNACK: is this port a broker?"
        );
    }

    #[test]
    fn binary_garbage_is_shown_in_hex() {
        assert_eq!(
            not_mqtt(&[0x16, 0x03, 0x01, 0x00, 0x05]),
            "got bytes 0x16 0x03 0x01 0x00 instead of an MQTT CONNACK: is this port a broker?"
        );
    }

    #[test]
    fn only_an_mqtt_5_connection_hints_at_the_version() {
        let t = Duration::from_secs(5);
        assert!(no_connack(t, true).contains("may not speak MQTT 5"));
        assert!(no_connack(t, true).contains("`mqtt-version: 3.1.1`"));
        assert_eq!(
            no_connack(t, false),
            "no CONNACK from the broker within 5 s"
        );
    }
}
