//! The loop: one thread, one `mio::Poll`.
//!
//! ```text
//!   wait    poll timeout = earliest monotonic deadline; the wall timerfd
//!           carries the earliest rotation
//!   dispatch  signal fd -> stop / rotate; wall timer -> rotate;
//!             stream token -> Stream::on_ready (read until WouldBlock)
//!   timers  Stream::on_timer (session timers, commit deadline, retries),
//!           rotation of files whose period has ended, the self-report
//! ```
//!
//! It owns start-up (folders, recovery of `.part` files) and the stop
//! sequence; protocol rules live in the session and storage rules in the
//! writer. The loop holds no protocol logic of its own.

use crate::clock::{self, WallTimer};
use crate::config::Config;
use crate::signals::{Signal, Signals};
use crate::store::writer;
use crate::stream::Stream;
use mio::{Events, Poll, Token};
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

const SIGNAL: Token = Token(usize::MAX - 1);
const WALL: Token = Token(usize::MAX - 2);

/// How long the stop sequence may wait for DISCONNECTs to be written.
const STOP_FLUSH: Duration = Duration::from_millis(500);

/// Size of the shared read buffer: large reads amortise the syscall over
/// hundreds of small messages.
const READ_BUF: usize = 64 * 1024;

/// A failure that ends the process before or outside the streams' own
/// error handling (those are per connection and never end the process).
#[derive(Debug)]
pub enum AppError {
    /// Start-up failed: folders, recovery, poll set-up.
    Startup(String),
    /// The loop's own machinery failed (poll, signalfd, timerfd).
    Loop(io::Error),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Startup(s) => write!(f, "{s}"),
            AppError::Loop(e) => write!(f, "event loop failed: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<io::Error> for AppError {
    fn from(e: io::Error) -> Self {
        AppError::Loop(e)
    }
}

/// Prepares the data folder and recovers files left by a crash. Runs
/// before any connection is made, so new data never mixes with recovery.
fn prepare(config: &Config) -> Result<(), AppError> {
    std::fs::create_dir_all(&config.data_folder).map_err(|e| {
        AppError::Startup(format!(
            "cannot create data folder {}: {e}",
            config.data_folder.display()
        ))
    })?;
    for s in &config.streams {
        let dir = config.data_folder.join(&s.folder_name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            AppError::Startup(format!(
                "cannot create stream folder {}: {e}",
                dir.display()
            ))
        })?;
        let recovered = writer::recover_parts(&dir).map_err(|e| {
            AppError::Startup(format!("cannot recover files of {}: {e}", s.folder_name))
        })?;
        for path in recovered {
            log::warn!(
                "[{}] recovered {} left by an earlier run",
                s.folder_name,
                path.display()
            );
        }
    }
    Ok(())
}

/// Runs the service until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), AppError> {
    // Block the signals first: nothing may interrupt the start-up half-way.
    let signals = Signals::new()?;
    prepare(config)?;
    let mut poll = Poll::new()?;
    signals.register(poll.registry(), SIGNAL)?;
    let mut wall = WallTimer::new()?;
    wall.register(poll.registry(), WALL)?;

    let host = crate::config::host_name();
    let start = Instant::now();
    let mut streams: Vec<Stream> = config
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| Stream::new(s, &config.data_folder, Token(i), &host, start))
        .collect();
    log::info!(
        "attic {} started: {} stream(s) into {}",
        env!("CARGO_PKG_VERSION"),
        streams.len(),
        config.data_folder.display()
    );

    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; READ_BUF];
    let mut sigs = Vec::new();
    let mut report = Report::new(config.feedback_period, start);
    let mut longest_turn = Duration::ZERO;

    loop {
        let now = Instant::now();
        wall.set(streams.iter().filter_map(Stream::rotation_due_us).min())?;
        let deadline = streams
            .iter()
            .filter_map(Stream::next_deadline)
            .chain(Some(report.due))
            .min();
        let timeout = if streams.iter().any(Stream::has_unread) {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(now))
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        let now = Instant::now();
        let mut rotate_all = false;
        let mut stop = false;
        for ev in events.iter() {
            match ev.token() {
                SIGNAL => {
                    signals.drain(&mut sigs)?;
                    for s in sigs.drain(..) {
                        match s {
                            Signal::Stop => stop = true,
                            Signal::Rotate => rotate_all = true,
                        }
                    }
                }
                WALL => {
                    if wall.acknowledge() {
                        log::info!("wall clock was stepped; re-evaluating rotation deadlines");
                    }
                }
                Token(i) => {
                    if let Some(s) = streams.get_mut(i) {
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        s.on_ready(poll.registry(), readable, ev.is_writable(), &mut buf, now);
                    }
                }
            }
        }
        // Streams that yielded to the others: another bounded share.
        for s in &mut streams {
            s.continue_reading(poll.registry(), &mut buf, now);
        }
        if stop {
            log::info!(
                "longest loop turn: {:.1} ms",
                longest_turn.as_secs_f64() * 1e3
            );
            return stop_all(&mut poll, &signals, &mut streams, &mut events);
        }
        for s in &mut streams {
            if s.next_deadline().is_some_and(|d| d <= now) {
                s.on_timer(poll.registry(), &mut buf, now);
            }
        }
        let wall_now = clock::now_us();
        for s in &mut streams {
            if rotate_all || s.rotation_due_us().is_some_and(|d| d <= wall_now) {
                s.rotate(poll.registry(), now);
            }
        }
        if now >= report.due {
            report.emit(&streams, now);
        }
        // How long the loop was busy this turn: a long turn delays every
        // stream (the benchmark reads this to bound rotation stalls).
        let busy = now.elapsed();
        if busy > longest_turn {
            longest_turn = busy;
            log::debug!(
                "longest loop turn so far: {:.1} ms",
                busy.as_secs_f64() * 1e3
            );
        }
    }
}

/// The stop sequence: commit, acknowledge, finalise, DISCONNECT, close.
/// A second SIGINT/SIGTERM while waiting for the sockets exits at once; the
/// files are already final by then.
fn stop_all(
    poll: &mut Poll,
    signals: &Signals,
    streams: &mut [Stream],
    events: &mut Events,
) -> Result<(), AppError> {
    log::info!("stopping: committing and closing files");
    let now = Instant::now();
    let mut pending = Vec::new();
    for (i, s) in streams.iter_mut().enumerate() {
        if !s.shutdown(poll.registry(), now) {
            pending.push(i);
        }
    }
    let deadline = now + STOP_FLUSH;
    let mut buf = [0u8; 512];
    let mut sigs = Vec::new();
    while !pending.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Err(e) = poll.poll(events, Some(deadline - now)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for ev in events.iter() {
            if ev.token() == SIGNAL {
                signals.drain(&mut sigs)?;
                if sigs.contains(&Signal::Stop) {
                    log::warn!("second stop signal: exiting now");
                    return Ok(());
                }
            }
        }
        let now = Instant::now();
        pending.retain(|&i| !streams[i].shutdown(poll.registry(), now));
        let _ = &mut buf;
    }
    for s in streams.iter_mut() {
        s.close(poll.registry());
    }
    log::info!("stopped");
    Ok(())
}

/// The periodic self-report line per stream.
struct Report {
    period: Duration,
    due: Instant,
    last: Instant,
    prev: Vec<(u64, u64)>,
}

impl Report {
    fn new(period: Duration, now: Instant) -> Self {
        Report {
            period,
            due: now + period,
            last: now,
            prev: Vec::new(),
        }
    }

    fn emit(&mut self, streams: &[Stream], now: Instant) {
        let secs = now
            .saturating_duration_since(self.last)
            .as_secs_f64()
            .max(1e-3);
        self.prev.resize(streams.len(), (0, 0));
        for (s, prev) in streams.iter().zip(self.prev.iter_mut()) {
            let c = &s.counters;
            let rx = c.received - prev.0;
            let st = c.stored - prev.1;
            log::info!(
                "[{}] {}; received {rx} ({:.1}/s), stored {st} ({:.1}/s), total stored {}, skipped {}, excluded {}, reconnects {}, file {}",
                s.name,
                if s.session.is_connected() {
                    "connected"
                } else {
                    "disconnected"
                },
                rx as f64 / secs,
                st as f64 / secs,
                c.stored,
                c.oversize,
                c.excluded,
                s.session.stats().reconnects,
                s.current_file()
                    .map_or_else(|| "none".into(), |p| p.display().to_string()),
            );
            *prev = (c.received, c.stored);
        }
        self.last = now;
        self.due = now + self.period;
    }
}
