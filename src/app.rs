//! The loop: one thread, one `mio::Poll`.
//!
//! ```text
//!   wait    poll timeout = earliest monotonic deadline; the wall timerfd
//!           carries the earliest rotation
//!   dispatch  signal fd -> stop / rotate; wall timer -> rotate;
//!             stream token -> Stream::on_ready (read until WouldBlock)
//!           publisher token -> Publisher::on_ready
//!   timers  Stream::on_timer (session timers, commit deadline, retries),
//!           rotation of files whose period has ended, the self-report
//!           (log lines, JSON report, metrics file, systemd STATUS=), the
//!           systemd watchdog
//! ```
//!
//! It owns start-up (folders, recovery of `.part` files), the systemd
//! notifications (READY=1 after set-up, STOPPING=1 when the stop sequence
//! begins, WATCHDOG=1 from the loop's own deadlines so that a wedged loop
//! stops sending it) and the stop sequence; `harness` sees each turn (ready
//! file, `--stop-after*`, summary) and may start that stop sequence as a
//! signal does. Protocol rules live in the session, ack-after-commit in
//! `store::gate`, file rules in the writer, figures and formats in
//! `report`. The loop holds no protocol logic of its own.

use crate::clock::{self, StepWatch, WallTimer};
use crate::config::Config;
use crate::file_events::{FileEvent, FileEvents};
use crate::harness::{Harness, Progress};
use crate::hook::Hooks;
use crate::layout;
use crate::metrics::MetricsFile;
use crate::publisher::Publisher;
use crate::report::{self, ProcessSample, Reporter, StreamSample};
use crate::resolve::{self, Resolver};
use crate::run_options::RunOptions;
use crate::signals::{Signal, Signals};
use crate::store::facts::read_facts;
use crate::store::finaliser::Finaliser;
use crate::store::lock::{FolderLock, lock_folder};
use crate::store::retention::{self, Retention};
use crate::store::writer;
use crate::stream::Stream;
use crate::summary::StreamTotals;
use crate::systemd::Notifier;
use mio::{Events, Poll, Token, Waker};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod file_events;
mod helpers;
pub mod preflight;
mod stop;
mod writable;
use file_events::{Subscribers, dispatch};
use helpers::{on_finalised, on_resolved, take_closed};

const SIGNAL: Token = Token(usize::MAX - 1);
const WALL: Token = Token(usize::MAX - 2);
const PUBLISHER: Token = Token(usize::MAX - 3);
/// The helper threads' waker (resolver and finaliser: mio allows one per poll).
const HELPERS: Token = Token(usize::MAX - 4);

/// The wall timer's moment when no file is open: far away, so that it only
/// ever wakes the loop for a step of the clock.
fn far_wall_us() -> i64 {
    layout::latest_wall_deadline_us().min(layout::NAME_MAX_US)
}

/// How long the stop sequence may wait for DISCONNECTs to be written and
/// closed files to be finished; what is unfinished by then stays `.part`
/// for the next start (the whole stop must take less than 2 s).
const STOP_WAIT: Duration = Duration::from_millis(1500);

/// Longest slice of retention work per loop turn (deleting 100,000 old
/// files must not stall the streams).
const RETENTION_SLICE: Duration = Duration::from_millis(5);

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

/// Prepares the data folder and recovers files left by a crash (each one a
/// `Recovered` event). Runs before any connection is made, so new data
/// never mixes with recovery.
///
/// Returns the stream folders' locks, taken before recovery and held until
/// the process ends: a second instance on the same folders stops here.
fn prepare(config: &Config, events: &mut FileEvents) -> Result<Vec<FolderLock>, AppError> {
    std::fs::create_dir_all(&config.data_folder).map_err(|e| {
        AppError::Startup(format!(
            "cannot create data folder {}: {e}",
            config.data_folder.display()
        ))
    })?;
    let mut locks = Vec::with_capacity(config.streams.len());
    for (i, s) in config.streams.iter().enumerate() {
        let dir = config.data_folder.join(&s.folder_name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            AppError::Startup(format!(
                "cannot create stream folder {}: {e}",
                dir.display()
            ))
        })?;
        writable::check(&dir).map_err(|e| {
            AppError::Startup(format!(
                "cannot write into stream folder {}: {e}",
                dir.display()
            ))
        })?;
        locks.push(lock_folder(&dir).map_err(|e| AppError::Startup(e.to_string()))?);
        let recovered = writer::recover_parts(&dir).map_err(|e| {
            AppError::Startup(format!("cannot recover files of {}: {e}", s.folder_name))
        })?;
        for path in recovered {
            events.push(FileEvent::Recovered {
                stream: i,
                facts: read_facts(&path),
            });
        }
    }
    Ok(locks)
}

/// Runs the service until SIGINT or SIGTERM.
pub fn run(config: &Config) -> Result<(), AppError> {
    run_with(config, &RunOptions::default())
}

/// Runs the service with the scripting options of `attic run` (ready file,
/// stop conditions, summary; see `harness`).
pub fn run_with(config: &Config, opts: &RunOptions) -> Result<(), AppError> {
    let mut harness = Harness::new(opts, config, Instant::now()).map_err(AppError::Startup)?;
    let result = serve(config, &mut harness);
    harness.finish(result.as_ref().err().map(ToString::to_string));
    result
}

fn serve(config: &Config, harness: &mut Harness) -> Result<(), AppError> {
    // Block the signals first: nothing may interrupt the start-up half-way.
    let signals = Signals::new()?;
    let mut file_events = FileEvents::default();
    let _locks = prepare(config, &mut file_events)?;
    let mut poll = Poll::new()?;
    signals.register(poll.registry(), SIGNAL)?;
    let mut wall = WallTimer::new()?;
    wall.register(poll.registry(), WALL)?;
    let mut steps = StepWatch::new(clock::now_us(), Instant::now());

    let waker = Arc::new(Waker::new(poll.registry(), HELPERS)?);
    let mut resolver = Resolver::new(waker.clone(), resolve::from_env());
    let mut finaliser = Finaliser::start(waker)?;

    let host = crate::config::host_name();
    let start = Instant::now();
    let mut streams: Vec<Stream> = config
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut stream = Stream::new(s, &config.data_folder, Token(i), &host, start);
            stream.set_resolver(resolver.handle());
            stream
        })
        .collect();
    if harness.wants_files() {
        streams.iter_mut().for_each(|s| s.tally.record_files());
    }
    log::info!(
        "attic {} started: {} stream(s) into {}",
        env!("CARGO_PKG_VERSION"),
        streams.len(),
        config.data_folder.display()
    );

    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; READ_BUF];
    let mut sigs = Vec::new();
    let mut reporter = Reporter::new(config.feedback_period, start, ProcessSample::read().cpu);
    let mut out = Outputs {
        publisher: config.performance.as_ref().map(|p| {
            let mut publisher = Publisher::new(p, PUBLISHER, start);
            publisher.set_resolver(resolver.handle());
            publisher
        }),
        metrics: config.metrics_file.clone().map(MetricsFile::new),
        notifier: Notifier::from_env(),
    };
    // Time the loop spent on each stream since the last report.
    let mut busy = vec![Duration::ZERO; streams.len()];
    let watchdog_every = out.notifier.watchdog_every();
    let mut watchdog_due = watchdog_every.map(|_| start);
    let mut longest_turn = Duration::ZERO;
    // The same in CPU time: on a loaded machine the wall figure includes
    // time the scheduler gave to other processes.
    let mut longest_turn_cpu = Duration::ZERO;
    // Runs first in the loop, after the recovery above.
    let mut retention = Retention::new(retention_setup(config), start);
    let mut hooks = Hooks::new(hook_setup(config), start);
    dispatch(
        &mut file_events,
        &mut Subscribers {
            streams: &mut streams,
            finaliser: &mut finaliser,
            hooks: &mut hooks,
            retention: None,
        },
        start,
    );
    // Every stream is set up (folders recovered, poll ready); brokers are
    // connected by the loop, not awaited.
    out.notifier.ready();

    loop {
        let now = Instant::now();
        // Always armed, so that every step of the clock is noticed.
        let rotation = streams.iter().filter_map(Stream::rotation_due_us).min();
        let far = far_wall_us();
        wall.set(rotation.or_else(|| (far > clock::now_us()).then_some(far)))?;
        let deadline = streams
            .iter()
            .filter_map(Stream::next_deadline)
            .chain(Some(reporter.due))
            .chain(out.publisher.as_ref().and_then(Publisher::next_deadline))
            .chain(watchdog_due)
            .chain(harness.next_deadline())
            .chain(retention.as_ref().map(Retention::next_deadline))
            .chain(hooks.next_deadline())
            .min();
        let unread = streams.iter().any(Stream::has_unread)
            || out.publisher.as_ref().is_some_and(Publisher::has_unread);
        let timeout = if unread {
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
        let turn_cpu = thread_cpu();
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
                        let step = steps.step_us(clock::now_us(), Instant::now());
                        log::warn!(
                            "the wall clock stepped {}; closing the open files so that file names and day folders follow the new time",
                            clock::step_words(step)
                        );
                        rotate_all = true;
                    }
                }
                PUBLISHER => {
                    if let Some(p) = out.publisher.as_mut() {
                        p.on_ready(poll.registry(), &mut buf, now);
                    }
                }
                HELPERS => {
                    on_resolved(&mut resolver, &mut streams, &mut out, poll.registry(), now);
                    on_finalised(&mut finaliser, &streams, &mut file_events);
                }
                t if hooks.owns(t) => hooks.on_ready(poll.registry(), t, now),
                Token(i) => {
                    if let Some(s) = streams.get_mut(i) {
                        let t = Instant::now();
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        s.on_ready(poll.registry(), readable, ev.is_writable(), &mut buf, now);
                        busy[i] += t.elapsed();
                    }
                }
            }
        }
        // Streams that yielded to the others: another bounded share.
        for s in &mut streams {
            s.continue_reading(poll.registry(), &mut buf, now);
        }
        if let Some(p) = out.publisher.as_mut() {
            p.continue_reading(poll.registry(), &mut buf, now);
        }
        let stop = harness.on_turn(streams.iter().map(progress), stop, now);
        if stop {
            log::info!(
                "longest loop turn: {:.1} ms (CPU {:.1} ms)",
                longest_turn.as_secs_f64() * 1e3,
                longest_turn_cpu.as_secs_f64() * 1e3
            );
            out.notifier.stopping();
            if let Some(p) = out.publisher.as_mut() {
                p.shutdown(poll.registry(), now);
            }
            let stopped = stop::stop_all(
                &mut poll,
                &signals,
                stop::Parts {
                    streams: &mut streams,
                    finaliser: &mut finaliser,
                    hooks: &mut hooks,
                    file_events: &mut file_events,
                },
                &mut events,
            );
            harness.stopped(streams.iter().map(totals));
            // The metrics file says what is true after the exit (no
            // connection, the final counts), not what the last period saw.
            if let Some(m) = out.metrics.as_mut() {
                let samples = samples(&streams, &mut busy, retention.as_ref(), &hooks);
                let end = Instant::now();
                let figures = reporter.take(samples, ProcessSample::read(), end, clock::now_us());
                m.write(&report::prometheus(&figures));
            }
            return stopped;
        }
        for (s, b) in streams.iter_mut().zip(busy.iter_mut()) {
            if s.next_deadline().is_some_and(|d| d <= now) {
                let t = Instant::now();
                s.on_timer(poll.registry(), &mut buf, now);
                *b += t.elapsed();
            }
        }
        if let Some(p) = out.publisher.as_mut()
            && p.next_deadline().is_some_and(|d| d <= now)
        {
            p.on_timer(poll.registry(), now);
        }
        let wall_now = clock::now_us();
        for (s, b) in streams.iter_mut().zip(busy.iter_mut()) {
            if rotate_all || s.rotation_due_us().is_some_and(|d| d <= wall_now) {
                let t = Instant::now();
                s.rotate(now);
                *b += t.elapsed();
            }
        }
        // Files closed this turn (rotation, or a message past the period
        // end), finished by the finaliser: to their subscribers.
        take_closed(&mut streams, &mut file_events);
        if !file_events.is_empty() {
            dispatch(
                &mut file_events,
                &mut Subscribers {
                    streams: &mut streams,
                    finaliser: &mut finaliser,
                    hooks: &mut hooks,
                    retention: retention.as_mut(),
                },
                now,
            );
        }
        hooks.on_timer(poll.registry(), now);
        hooks.run_due(poll.registry(), now);
        if hooks.take_released()
            && let Some(r) = retention.as_mut()
        {
            r.request(now);
        }
        if let Some(r) = retention.as_mut() {
            retention_turn(r, &mut streams, &hooks, now, wall_now);
        }
        if now >= reporter.due {
            let samples = samples(&streams, &mut busy, retention.as_ref(), &hooks);
            let figures = reporter.take(samples, ProcessSample::read(), now, wall_now);
            out.emit(poll.registry(), &figures, now);
        }
        if let (Some(due), Some(every)) = (watchdog_due, watchdog_every)
            && now >= due
        {
            out.notifier.watchdog();
            watchdog_due = Some(now + every);
        }
        // How long the loop was busy this turn: a long turn delays every
        // stream (the benchmark reads this to bound rotation stalls).
        let busy = now.elapsed();
        longest_turn_cpu = longest_turn_cpu.max(thread_cpu().saturating_sub(turn_cpu));
        if busy > longest_turn {
            longest_turn = busy;
            log::debug!(
                "longest loop turn so far: {:.1} ms",
                busy.as_secs_f64() * 1e3
            );
        }
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`); zero if it
/// cannot be read.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    let s = u64::try_from(ts.tv_sec).unwrap_or(0);
    let ns = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(s, ns)
}

/// What the harness sees of a stream each turn.
fn progress(s: &Stream) -> Progress<'_> {
    let stats = s.session().stats();
    Progress {
        subscribed: stats.subscribed > 0,
        granted: &stats.granted,
        stored: s.counters.stored + s.uncommitted() as u64,
    }
}

/// A stream's figures as the summary needs them.
fn totals(s: &Stream) -> StreamTotals {
    StreamTotals {
        folder: s.name.clone(),
        received: s.counters.received,
        received_bytes: s.counters.received_bytes,
        stored: s.counters.stored,
        stored_bytes: s.counters.stored_bytes,
        filtered: s.counters.filtered,
        skipped: s.counters.oversize,
        lost: s.counters.lost,
        reconnects: s.session().stats().reconnects,
        tally: s.tally.clone(),
    }
}

/// A stream's figures as the report needs them.
/// Every stream's sample for a report, taking the loop time each spent
/// since the last one.
fn samples(
    streams: &[Stream],
    busy: &mut [Duration],
    retention: Option<&Retention>,
    hooks: &Hooks,
) -> Vec<StreamSample> {
    streams
        .iter()
        .zip(busy.iter_mut())
        .enumerate()
        .map(|(i, (s, b))| {
            let deleted = retention.map_or((0, 0), |r| r.deleted(i));
            sample(s, std::mem::take(b), deleted, hooks.counts(i))
        })
        .collect()
}

fn sample(
    s: &Stream,
    busy: Duration,
    deleted: (u64, u64),
    hooks: crate::hook::HookCounts,
) -> StreamSample {
    StreamSample {
        name: s.name.clone(),
        counters: s.counters.clone(),
        reconnects: s.session().stats().reconnects,
        connected: s.session().is_connected(),
        file: s.current_file().map(|p| p.display().to_string()),
        busy,
        filter_drops: s
            .filter_drops()
            .map(|(name, n)| (name.to_owned(), n))
            .collect(),
        files_deleted: deleted.0,
        bytes_deleted: deleted.1,
        hooks_done: hooks.done,
        hooks_failed: hooks.failed,
        hooks_pending: hooks.pending,
    }
}

/// What retention needs of the config.
fn retention_setup(config: &Config) -> retention::Setup {
    retention::Setup {
        data_folder: config.data_folder.clone(),
        streams: config
            .streams
            .iter()
            .map(|s| (s.folder_name.clone(), s.retention))
            .collect(),
        min_free_bytes: config.min_free_bytes,
    }
}

/// What the hooks need of the config: each stream's folder and hook.
fn hook_setup(
    config: &Config,
) -> Vec<(String, std::path::PathBuf, Option<crate::config::OnFinish>)> {
    config
        .streams
        .iter()
        .map(|s| {
            let dir = config.data_folder.join(&s.folder_name);
            (s.folder_name.clone(), dir, s.on_finish.clone())
        })
        .collect()
}

/// One slice of retention: a pass starts when one is due (once a minute,
/// after a rotation, when a stream's storage starts failing); storage that
/// failed is retried as soon as a pass freed space. Files whose hook is not
/// done are kept where `keep-until-done` says so.
fn retention_turn(
    r: &mut Retention,
    streams: &mut [Stream],
    hooks: &Hooks,
    now: Instant,
    wall_us: i64,
) {
    for (i, s) in streams.iter().enumerate() {
        r.storage_failing(i, s.storage_failing(), now);
    }
    if r.next_deadline() > now {
        return;
    }
    let mut budget = retention::Budget::until(Instant::now() + RETENTION_SLICE);
    if r.step_keeping(now, wall_us, &mut budget, &|i, created| {
        hooks.holds(i, created)
    }) {
        for s in streams.iter_mut() {
            s.retry_storage_soon(now);
        }
    }
}

/// Where each report goes besides the log.
struct Outputs {
    /// The JSON report's connection (`log-performance`).
    publisher: Option<Publisher>,
    /// `metrics-file`.
    metrics: Option<MetricsFile>,
    /// systemd (`STATUS=`).
    notifier: Notifier,
}

impl Outputs {
    fn emit(&mut self, registry: &mio::Registry, figures: &report::Figures, now: Instant) {
        for line in report::log_lines(figures) {
            log::info!("{line}");
        }
        if let Some(p) = self.publisher.as_mut() {
            p.publish(registry, &report::json(figures), now);
        }
        if let Some(m) = self.metrics.as_mut() {
            m.write(&report::prometheus(figures));
        }
        self.notifier.status(&report::status_line(figures));
    }
}
