//! `attic replay`: publishes a selection of stored rows to a broker, in
//! stored order, keeping the recorded gaps divided by `--speed`.
//!
//! It runs the service's machinery: one `mio::Poll`, a signalfd, and one
//! [`Connection`] (the sans-IO session + `net::Link`) used publish-only.
//! QoS 1/2 publishes stay within the session's in-flight window and are
//! awaited before DISCONNECT; a lost connection is re-established with the
//! session's backoff and what was in flight is sent again. SIGINT/SIGTERM
//! stop publishing; what is in flight is awaited for up to 2 s.
//!
//! ```text
//!  select::Plan --rows--> pace (due time) --> Session::publish_message --> Link --> broker
//!                                               ^-- acks free the window --+
//! ```
//!
//! With `--tls-ca-file` (or `--tls`) the link speaks TLS (`crate::tls`),
//! as a stream with `tls:` does; a host name in `--broker` is looked up
//! off the loop (`crate::resolve`).
//!
//! [`cli`] parses the arguments; [`pace`] is the schedule. Must not write
//! to the data folder.

pub mod cli;
pub mod pace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use crate::config::Config;
use crate::connection::Connection;
use crate::event_loop;
use crate::mqtt::session::{Event, Session, SessionConfig};
use crate::net::Link;
use crate::progress::Progress;
use crate::resolve::{self, Resolver};
use crate::select::{Plan, Row, SelectError, Selection};
use crate::signals::{Signal, Signals};

const BROKER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Host name lookups finished.
const RESOLVER: Token = Token(2);

/// Longest wait for the acks of what is in flight after the last row.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The same after a stop signal (the service stops within 2 s too).
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes queued for the socket above which no further row is published
/// until the socket has taken them (QoS 0 at speed 0 must not fill memory).
const MAX_OUTBOX: usize = 256 * 1024;
/// Rows published per loop turn at most, so acks are read in between.
const BURST: usize = 512;

/// Where and how to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// The rows.
    pub selection: Selection,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// `--speed`: 1 = as recorded; 0 = as fast as the broker takes it.
    pub speed: f64,
    /// `--qos`: `None` = as stored.
    pub qos: Option<u8>,
    /// `--retain-as-stored`: otherwise retain is off.
    pub retain_as_stored: bool,
    /// `--topic-prefix`, prepended to every topic.
    pub topic_prefix: String,
    /// MQTT client id.
    pub client_id: String,
    /// `--user`.
    pub user: Option<String>,
    /// From `--password-file`.
    pub password: Option<String>,
    /// `--tls-ca-file` / `--tls`: TLS to the broker; `None` = plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaySummary {
    /// Rows published (and, at QoS 1/2, acknowledged).
    pub published: u64,
    /// Rows that could not be published (topic too long with the prefix).
    pub skipped: u64,
    /// Stopped early by a signal.
    pub interrupted: bool,
}

/// Why a replay failed.
#[derive(Debug)]
pub enum ReplayError {
    /// Reading the selection.
    Select(SelectError),
    /// Setting up the loop.
    Io(String),
    /// The in-flight publishes were not acknowledged in time at the end.
    Unacknowledged(usize),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Select(e) => e.fmt(f),
            ReplayError::Io(e) => f.write_str(e),
            ReplayError::Unacknowledged(n) => {
                write!(f, "{n} publishes were not acknowledged by the broker")
            }
        }
    }
}

impl std::error::Error for ReplayError {}

/// Runs a replay to its end (or a stop signal).
pub fn replay(config: &Config, opts: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    let io = |what: &str, e: std::io::Error| ReplayError::Io(format!("{what}: {e}"));
    let plan = Plan::new(config, &opts.selection).map_err(ReplayError::Select)?;
    let (_, mut rows) = plan.rows();
    let mut poll = Poll::new().map_err(|e| io("poll", e))?;
    let signals = Signals::new().map_err(|e| io("signalfd", e))?;
    signals
        .register(poll.registry(), SIGNALS)
        .map_err(|e| io("signalfd", e))?;
    let start = Instant::now();
    let session = Session::new(
        SessionConfig {
            name: "replay".into(),
            client_id: opts.client_id.clone(),
            user: opts.user.clone(),
            password: opts.password.clone(),
            keep_alive: Duration::from_secs(30),
            clean_session: true,
            filters: Vec::new(),
            qos: 0,
            max_payload: 64 * 1024,
            // Replay speaks MQTT 3.1.1.
            mqtt5: None,
        },
        u64::from(std::process::id()),
        start,
    );
    let link = Link::new(&opts.host, opts.port, BROKER).with_tls(opts.tls.clone());
    let mut conn = Connection::new(session, link);
    let waker = Waker::new(poll.registry(), RESOLVER).map_err(|e| io("waker", e))?;
    let mut resolver = Resolver::new(Arc::new(waker), resolve::from_env());
    conn.set_resolver(resolver.handle());
    let mut answers = Vec::new();
    let mut events = Events::with_capacity(64);
    let mut scratch: Vec<Event> = Vec::new();
    let mut sigs: Vec<Signal> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pace = pace::Pace::new(opts.speed);
    let mut progress = Progress::new("attic replay");
    let mut summary = ReplaySummary::default();
    // The next row and when it is due.
    let mut next: Option<(Row, Instant)> = None;
    let mut exhausted = false;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Publish what is due, within the window. `held`: a due row waits
        // for acks or for the socket, so the poll must not wake for it.
        let mut sent = 0;
        let mut held = false;
        while drain_until.is_none() && conn.is_connected() && sent < BURST {
            if conn.queued_bytes() >= MAX_OUTBOX {
                held = true;
                break;
            }
            if next.is_none() && !exhausted {
                match rows.next_row().map_err(ReplayError::Select)? {
                    Some(row) => {
                        let due = pace.due(row.message.timestamp_us, now);
                        next = Some((row, due));
                    }
                    None => exhausted = true,
                }
            }
            let Some((row, due)) = next.as_ref() else {
                break;
            };
            if *due > now {
                break;
            }
            let m = &row.message;
            let topic = format!("{}{}", opts.topic_prefix, m.topic);
            let qos = opts.qos.unwrap_or(m.qos);
            let retain = opts.retain_as_stored && m.retain;
            let payload = m.payload.clone();
            match conn.publish_message(&topic, payload, qos, retain, now) {
                Ok(true) => summary.published += 1,
                Ok(false) => {
                    held = true; // window full: wait for acks
                    break;
                }
                Err(e) => {
                    log::warn!("skipping a row of {topic:?}: {e}");
                    summary.skipped += 1;
                }
            }
            progress.show(summary.published, m.timestamp_us);
            next = None;
            sent += 1;
        }
        if sent > 0 {
            conn.flush(poll.registry(), now);
        }
        // Done: everything sent and acknowledged.
        let idle = conn.session().in_flight() == 0 && !conn.has_output();
        if exhausted && next.is_none() && drain_until.is_none() {
            drain_until = Some(now + DRAIN_TIMEOUT);
        }
        if let Some(until) = drain_until {
            if idle {
                break;
            }
            if now >= until {
                progress.clear();
                return Err(ReplayError::Unacknowledged(conn.session().in_flight()));
            }
        }
        // Wait for the broker, a signal, the next due row or a session
        // timer; after a full burst, only look at the sockets and go on.
        let row_due = next
            .as_ref()
            .filter(|_| !held && conn.is_connected() && drain_until.is_none())
            .map(|(_, due)| *due);
        let deadline = if sent >= BURST {
            event_loop::earliest([Some(now), row_due, drain_until])
        } else {
            event_loop::earliest([conn.next_deadline(), row_due, drain_until])
        };
        let timeout = event_loop::timeout(deadline, Instant::now());
        // Interrupted by a signal: the signalfd brings it.
        event_loop::wait(&mut poll, &mut events, timeout).map_err(|e| io("poll", e))?;
        let now = Instant::now();
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    sigs.clear();
                    signals.drain(&mut sigs).map_err(|e| io("signalfd", e))?;
                    if sigs.contains(&Signal::Stop) && drain_until.is_none() {
                        log::warn!("stopping: waiting for the publishes in flight");
                        summary.interrupted = true;
                        next = None;
                        exhausted = true;
                        drain_until = Some(now + STOP_TIMEOUT);
                    }
                }
                BROKER => {
                    if conn.on_ready(poll.registry(), now) {
                        while let crate::connection::Read::Data(_) =
                            conn.read(poll.registry(), &mut buf, now)
                        {}
                    }
                    conn.flush(poll.registry(), now);
                }
                RESOLVER => {
                    resolver.drain(&mut answers);
                    for answer in answers.drain(..) {
                        conn.on_resolved(poll.registry(), answer, now);
                    }
                }
                _ => {}
            }
        }
        conn.on_timer(poll.registry(), now);
        conn.flush(poll.registry(), now);
        scratch.clear();
        conn.take_events(&mut scratch);
    }
    conn.shutdown();
    conn.flush(poll.registry(), Instant::now());
    conn.close(poll.registry());
    progress.clear();
    Ok(summary)
}
