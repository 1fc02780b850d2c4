//! The publisher side of a [`Session`]: the self-report's QoS 0 publish,
//! and `attic replay`'s publishes at any QoS within the in-flight window of
//! `mqtt::outflight` (their acks are handled in `on_packet`). No socket, no
//! clock.

use super::Session;
use crate::mqtt::framing::EncodeError;
use bytes::Bytes;
use std::time::Instant;

/// Our QoS 1/2 publishes in flight at once (mosquitto's default
/// `max_inflight_messages`).
pub const WINDOW: usize = 20;

impl Session {
    /// Publishes at QoS 0 (the self-report). Dropped when not connected.
    pub fn publish(&mut self, topic: &str, payload: &[u8], now: Instant) -> bool {
        if !self.is_connected() {
            return false;
        }
        match self.encode_publish(topic, payload) {
            Ok(()) => {
                self.last_sent = now;
                true
            }
            Err(e) => {
                log::warn!("[{}] {e}", self.cfg.name);
                false
            }
        }
    }

    /// Our QoS 1/2 publishes not yet fully acknowledged.
    pub fn in_flight(&self) -> usize {
        self.outflight.len()
    }

    /// Publishes at any QoS (replay). `Ok(false)`: not now (not connected,
    /// or the in-flight window is full); try again after the next read.
    /// `Err`: this message cannot be encoded (topic too long), skip it.
    pub fn publish_message(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: u8,
        retain: bool,
        now: Instant,
    ) -> Result<bool, EncodeError> {
        if !self.is_connected() || !self.outflight.has_room(qos) {
            return Ok(false);
        }
        self.outflight
            .publish(topic, payload, qos, retain, &mut self.outbox)?;
        self.last_sent = now;
        Ok(true)
    }
}
