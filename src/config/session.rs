//! What a stream's configuration means to its MQTT session: the one place
//! that turns a [`StreamConfig`] into a [`SessionConfig`].
//!
//! Owns: that mapping. Must not: open a connection or read a file.

use super::StreamConfig;
use crate::mqtt::session::SessionConfig;

impl StreamConfig {
    /// The session settings of this stream (its log name is its folder).
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            name: self.folder_name.clone(),
            client_id: self.broker.client_id.clone(),
            user: self.broker.user.clone(),
            password: self.broker.password.clone(),
            keep_alive: self.broker.keep_alive,
            clean_session: self.broker.clean_session,
            filters: self.topics.clone(),
            qos: self.qos,
            max_payload: self.max_payload_bytes,
            mqtt5: self.broker.mqtt5,
        }
    }
}
