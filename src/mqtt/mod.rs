//! MQTT 3.1.1 client side: framing over `mqttbytes`, the sans-IO session, and
//! the reconnect policy. Nothing here touches a socket or reads a clock.

mod acks;
pub mod backoff;
pub mod framing;
pub mod identity;
pub mod session;
pub mod topic;
