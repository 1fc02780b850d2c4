//! Attic logs everything that happens on an MQTT broker into time-rotated
//! SQLite files.
//!
//! # Module map
//!
//! ARCHITECTURE.md at the top of the repository has the same map, the path
//! of one message and its ack, and the rules `tests/architecture.rs` checks.
//!
//! ```text
//!   config/     YAML -> typed, validated Config: yaml (the only user of serde_yaml),
//!               checker, sections, describe (`attic check`), locate (line/column)
//!   mqtt/
//!     framing/  the only user of mqttbytes: decode (bytes -> packets), encode (ours);
//!               v5/ the MQTT 5 packets, properties as JSON, reason codes in words
//!     session   sans-IO MQTT client: bytes + now -> events and bytes to send; v5 = MQTT 5
//!     topic_alias  the broker's MQTT 5 topic aliases, one table per connection
//!     acks      acks waiting for a commit (arrival order); QoS 2 packet-id sets
//!     outflight our own QoS 1/2 publishes until acked (replay): window, resend
//!     backoff   jittered exponential reconnect policy
//!     topic     topic-filter matching and validity checks
//!   store/
//!     gate      ack-after-commit as a sans-IO state machine over the Store trait
//!     writer/   rusqlite: open file + prepared statement, finalise, recovery, sessions table
//!     lock      the stream folder's flock: one instance per folder
//!     finaliser closed files finished on a helper thread (checkpoint, fsync, rename)
//!     retention deletes the oldest finished files (age, size, free space), sliced
//!     reader    read-only chunked cursor over one file (export, replay)
//!     export_file  the SQLite file of `attic export --format sqlite`
//!   layout/     the one definition of day folders and file names (16 digits);
//!               period: rotation arithmetic (periods, UTC days, the 2038 limit)
//!   message     Message: the one shape of a message, from the stream to the reader (a leaf)
//!   filter/     the per-stream filter chain: keep, drop (counted) or rewrite
//!   connection  one session + one net::Link (publish-side): commands carried out, notices to the owner
//!   stream/     core: sans-IO session + filter chain + gate, the read state, commit and ack
//!               rules -> actions; mod: the shell that carries them out (Link, writer, clocks)
//!   publisher   the JSON report's own publish-only Connection
//!   counters    per-stream counters: written by stream, read by report
//!   file_events Closed / Finished / Recovered: one event per file, dispatched in app::file_events
//!   hook/       on-finish: one process per stream at a time (child: pidfd, pipes, timeout),
//!               the pending list beside the files (state), retries with backoff
//!   report/     self-report: figures, process sample, text, JSON, Prometheus
//!   net         nonblocking TCP; Link = a socket with its poll registration
//!     tls       rustls ClientConnection driven nonblocking between socket and framing
//!   tls/        `tls:` settings, PEM files, the rustls client config; failures in words
//!   resolve     host names resolved off the loop (lookup threads + mio::Waker)
//!   signals     signalfd: SIGINT/SIGTERM/SIGHUP as a poll source
//!   clock       the two clocks: monotonic deadlines and a CLOCK_REALTIME timerfd
//!   metrics     metrics-file: atomic rewrite of the Prometheus text
//!   qos2_state  a persistent QoS 2 session's ids awaiting PUBREL, kept in the stream folder
//!   run_options `attic run`'s scripting flags: --ready-file, --stop-after*, --summary
//!   harness     what they do: ready file, stop conditions, summary at exit
//!   summary     the summary's JSON and each stream's Tally (time span, files)
//!   systemd     sd_notify (READY, STATUS, WATCHDOG, STOPPING); no-op without NOTIFY_SOCKET
//!   logging     the log format
//!   suggest     "did you mean": the closest known key
//!   app         the mio loop: tokens, deadlines, dispatch, shutdown sequence
//!   event_loop  what every mio loop shares: earliest deadline, poll timeout, a wait over EINTR
//!   atomic      small files written whole (temporary name, then rename)
//!   cli         what every subcommand shares: exit codes, config or exit 78, stdout
//!   progress    the progress line of export and replay; counts in words
//!   time        timestamps in RFC 3339 UTC (the one formatter), UTC days
//!   select/     export/replay selection: TIME, files by name, k-way merge over store::reader
//!   export/     `attic export`: the selection as JSON lines, CSV, one SQLite file or Parquet
//!     decode/   payloads decoded on the way out: JSON, Avro (schemas, framings), --field columns
//!     parquet_file  one Parquet file (the only user of parquet); hive: --output-dir partitions
//!   replay/     `attic replay`: the selection published to a broker over one Connection
//! ```
//!
//! # Data flow
//!
//! ```text
//!  broker --TCP--> Link --bytes--> stream core: session --Message--> filter chain --> gate --> writer --rows--> .sqlite.part
//!                   ^                    |       ^                                      |
//!                   +--Flush: acks, pings+       +--------- release_acks after commit --+   (ack after commit)
//! ```
//!
//! One thread, one `mio::Poll`. The loop waits until the earliest deadline
//! or a ready socket; a stream's shell hands bytes and `now` to its core,
//! carries out what the core asks for (write the outbox, open or close the
//! socket, park or resume reading), and the core commits, acknowledges and
//! rotates when their deadline or trigger is due.

pub mod app;
pub mod atomic;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod counters;
pub mod event_loop;
pub mod export;
pub mod file_events;
pub mod filter;
pub mod harness;
pub mod hook;
pub mod layout;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod mqtt;
pub mod net;
pub mod progress;
pub mod publisher;
pub mod qos2_state;
pub mod replay;
pub mod report;
pub mod resolve;
pub mod run_options;
pub mod select;
pub mod signals;
pub mod store;
pub mod stream;
pub mod suggest;
pub mod summary;
pub mod systemd;
#[cfg(test)]
mod test_dir;
pub mod time;
pub mod tls;
