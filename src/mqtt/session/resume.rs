//! What a persistent session at QoS 2 hands its owner to keep across a
//! restart: the packet ids answered with PUBREC and awaiting PUBREL
//! (MQTT 3.1.1 / MQTT 5 section 4.3.3). The owner saves them beside the
//! stream's files before the bytes that follow are sent, and gives them
//! back to a new session of the same client id.
//!
//! Owns: when there is something to save. Must not: touch a file (that is
//! the owner's `qos2_state`) or read a clock.

use super::Session;

impl Session {
    /// True when this session's QoS 2 ids outlive a connection: subscribed
    /// at QoS 2 with `clean-session: false`.
    pub fn keeps_qos2_ids(&self) -> bool {
        self.cfg.qos == 2 && !self.cfg.clean_session && !self.cfg.filters.is_empty()
    }

    /// The ids awaiting PUBREL, when they changed since the last call (and
    /// the session keeps them); `None` = nothing new to save.
    pub fn qos2_ids_to_save(&mut self) -> Option<Vec<u16>> {
        (self.keeps_qos2_ids() && self.acks.take_changed()).then(|| self.acks.awaiting_pubrel())
    }

    /// Ids saved by an earlier run of the same session: a PUBLISH the
    /// broker resends with one of them gets PUBREC and is not delivered.
    /// Forgotten if the broker's CONNACK says it has no session.
    pub fn restore_qos2_ids(&mut self, ids: &[u16]) {
        if self.keeps_qos2_ids() {
            self.acks.restore_awaiting_pubrel(ids);
        }
    }
}
