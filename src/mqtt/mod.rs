//! MQTT 3.1.1 client side: framing over `mqttbytes`, the sans-IO session
//! with its ack queue, the reconnect policy and topic filters. Nothing here
//! touches a socket or reads a clock, and nothing here imports `net`,
//! `connection`, `store` or `config` (see ARCHITECTURE.md).

mod acks;
pub mod backoff;
pub mod framing;
pub mod identity;
pub mod outflight;
pub mod session;
pub mod topic;
