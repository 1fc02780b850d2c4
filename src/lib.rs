//! Attic logs everything that happens on an MQTT broker into time-rotated
//! SQLite files.
//!
//! # Module map
//!
//! ```text
//!   config      YAML -> typed, validated Config (the only user of serde_yaml)
//!   mqtt/
//!     framing   the only user of mqttbytes: frames bytes into packets, encodes ours
//!     session   sans-IO MQTT 3.1.1 client: bytes + now -> events and bytes to send
//!     backoff   jittered exponential reconnect policy
//!   store/
//!     rotation  pure time arithmetic: periods, day folders, file names
//!     writer    rusqlite: pragmas, schema, batched inserts, finalise, recovery
//!   net         nonblocking TCP; Link = a socket with its poll registration
//!   signals     signalfd: SIGINT/SIGTERM/SIGHUP as a poll source
//!   clock       the two clocks: monotonic deadlines and a CLOCK_REALTIME timerfd
//!   filter/     the per-stream filter chain: keep, drop (counted) or rewrite
//!   stream      one stream = one session + one socket + one filter chain + one writer
//!   report      self-report figures: log lines, JSON report, Prometheus text
//!   publisher   the JSON report's own publish-only MQTT connection
//!   metrics     metrics-file: atomic rewrite of the Prometheus text
//!   systemd     sd_notify (READY, STATUS, WATCHDOG, STOPPING); no-op without NOTIFY_SOCKET
//!   app         the mio loop: tokens, deadlines, dispatch, shutdown sequence
//!   select/     export/replay selection: TIME, files by name, read-only cursors, k-way merge
//!   export/     `attic export`: the selection as JSON lines, CSV or one SQLite file
//! ```
//!
//! # Data flow
//!
//! ```text
//!  broker --TCP--> net --bytes--> session --Message--> filter chain --> writer --rows--> .sqlite.part
//!                   ^                |  ^                                 |
//!                   +--acks, pings---+  +------------ committed ----------+   (ack after commit)
//! ```
//!
//! One thread, one `mio::Poll`. The loop waits until the earliest deadline
//! or a ready socket, hands bytes and `now` to the session, carries out what
//! the session asks for (send bytes, store a message, reconnect later), and
//! commits, acknowledges and rotates when their deadline or trigger is due.

pub mod app;
pub mod clock;
pub mod config;
pub mod export;
pub mod filter;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod net;
pub mod publisher;
pub mod report;
pub mod select;
pub mod signals;
pub mod store;
pub mod stream;
pub mod systemd;

/// Exit code for a bad configuration (`EX_CONFIG` from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;
