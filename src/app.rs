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
use crate::event_loop;
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
mod turn;
mod writable;
use file_events::{Subscribers, dispatch};
use helpers::{on_finalised, on_resolved, take_closed};
use turn::{LongestTurn, Turn, Watchdog, poll_timeout, wall_target};

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
    let result = App::start(config, &mut harness).and_then(|mut app| app.run());
    harness.finish(result.as_ref().err().map(ToString::to_string));
    result
}

/// The service: the streams, the helpers beside them and the loop's own
/// state between turns.
///
/// Fields drop in the order they are declared, the reverse of the order
/// in which [`App::start`] makes them: hooks and retention first, the
/// streams before the finaliser, the folder locks and the signal mask
/// last.
struct App<'h> {
    /// `--ready-file`, `--stop-after*`, `--summary`: sees every turn.
    harness: &'h mut Harness,
    /// `on-finish:` hooks: their processes, pending lists and retries.
    hooks: Hooks,
    /// Deletes the oldest finished files; `None` without a limit.
    retention: Option<Retention>,
    /// When the next WATCHDOG=1 is due.
    watchdog: Watchdog,
    /// The longest turn so far.
    longest: LongestTurn,
    /// Loop time each stream used since the last report.
    busy: Vec<Duration>,
    /// Where each report goes besides the log.
    out: Outputs,
    /// The self-report: its period and the figures of the last one.
    reporter: Reporter,
    /// Signals read from the signalfd (kept to reuse the allocation).
    sigs: Vec<Signal>,
    /// The one read buffer every connection reads into.
    buf: Vec<u8>,
    /// The configured streams; a stream's index is its token.
    streams: Vec<Stream>,
    /// Finishes closed files on its thread.
    finaliser: Finaliser,
    /// Host-name lookups, answered through the helpers' waker.
    resolver: Resolver,
    /// The size of a step of the wall clock, when the timer reports one.
    steps: StepWatch,
    /// The wall-clock timerfd: the earliest rotation, and clock steps.
    wall: WallTimer,
    /// The one poll.
    poll: Poll,
    /// The stream folders' locks, held while the service runs.
    _locks: Vec<FolderLock>,
    /// File events not yet handed to their subscribers.
    file_events: FileEvents,
    /// SIGINT/SIGTERM/SIGHUP, blocked and read through a signalfd.
    signals: Signals,
}

impl<'h> App<'h> {
    /// Start-up: signals blocked, folders locked and recovered, the
    /// streams and helpers made, the recovered files dispatched, READY=1.
    /// Brokers are connected by the loop, not awaited.
    fn start(config: &Config, harness: &'h mut Harness) -> Result<App<'h>, AppError> {
        // Block the signals first: nothing may interrupt the start-up half-way.
        let signals = Signals::new()?;
        let mut file_events = FileEvents::default();
        let locks = prepare(config, &mut file_events)?;
        let poll = Poll::new()?;
        signals.register(poll.registry(), SIGNAL)?;
        let wall = WallTimer::new()?;
        wall.register(poll.registry(), WALL)?;
        let steps = StepWatch::new(clock::now_us(), Instant::now());

        let waker = Arc::new(Waker::new(poll.registry(), HELPERS)?);
        let resolver = Resolver::new(waker.clone(), resolve::from_env());
        let finaliser = Finaliser::start(waker)?;

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

        let reporter = Reporter::new(config.feedback_period, start, ProcessSample::read().cpu);
        let out = Outputs {
            publisher: config.performance.as_ref().map(|p| {
                let mut publisher = Publisher::new(p, PUBLISHER, start);
                publisher.set_resolver(resolver.handle());
                publisher
            }),
            metrics: config.metrics_file.clone().map(MetricsFile::new),
            notifier: Notifier::from_env(),
        };
        let busy = vec![Duration::ZERO; streams.len()];
        let watchdog = Watchdog::new(out.notifier.watchdog_every(), start);
        // Runs first in the loop, after the recovery above.
        let retention = Retention::new(retention_setup(config), start);
        let hooks = Hooks::new(hook_setup(config), start);
        let mut app = App {
            harness,
            hooks,
            retention,
            watchdog,
            longest: LongestTurn::default(),
            busy,
            out,
            reporter,
            sigs: Vec::new(),
            buf: vec![0u8; READ_BUF],
            streams,
            finaliser,
            resolver,
            steps,
            wall,
            poll,
            _locks: locks,
            file_events,
            signals,
        };
        dispatch(
            &mut app.file_events,
            &mut Subscribers {
                streams: &mut app.streams,
                finaliser: &mut app.finaliser,
                hooks: &mut app.hooks,
                retention: None,
            },
            start,
        );
        // Every stream is set up (folders recovered, poll ready); brokers are
        // connected by the loop, not awaited.
        app.out.notifier.ready();
        Ok(app)
    }

    /// The loop: wait, dispatch each ready token, then the timers; until
    /// a stop signal or the harness ends it with the stop sequence.
    fn run(&mut self) -> Result<(), AppError> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            self.arm_wall_timer()?;
            let timeout = poll_timeout(self.has_unread(), self.next_deadline(), now);
            if !event_loop::wait(&mut self.poll, &mut events, timeout)? {
                continue;
            }
            let now = Instant::now();
            let turn_cpu = thread_cpu();
            let mut turn = Turn::default();
            for ev in events.iter() {
                self.dispatch_token(ev, now, &mut turn)?;
            }
            self.continue_reading(now);
            let stop = self
                .harness
                .on_turn(self.streams.iter().map(progress), turn.stop, now);
            if stop {
                return self.stop(&mut events, now);
            }
            self.run_due_timers(now, turn.rotate_all);
            let busy = now.elapsed();
            if self
                .longest
                .record(busy, thread_cpu().saturating_sub(turn_cpu))
            {
                log::debug!(
                    "longest loop turn so far: {:.1} ms",
                    busy.as_secs_f64() * 1e3
                );
            }
        }
    }

    /// Sets the wall timer to the earliest rotation. Always armed, so that
    /// every step of the clock is noticed.
    fn arm_wall_timer(&mut self) -> Result<(), AppError> {
        let rotation = self
            .streams
            .iter()
            .filter_map(Stream::rotation_due_us)
            .min();
        self.wall
            .set(wall_target(rotation, far_wall_us(), clock::now_us()))?;
        Ok(())
    }

    /// The earliest monotonic deadline of anything the loop runs.
    fn next_deadline(&self) -> Option<Instant> {
        event_loop::earliest(
            self.streams.iter().map(Stream::next_deadline).chain([
                Some(self.reporter.due),
                self.out
                    .publisher
                    .as_ref()
                    .and_then(Publisher::next_deadline),
                self.watchdog.due,
                self.harness.next_deadline(),
                self.retention.as_ref().map(Retention::next_deadline),
                self.hooks.next_deadline(),
            ]),
        )
    }

    /// Bytes wait unread in a connection (a stream yielded, or storage
    /// held them): the poll must not sleep.
    fn has_unread(&self) -> bool {
        self.streams.iter().any(Stream::has_unread)
            || self
                .out
                .publisher
                .as_ref()
                .is_some_and(Publisher::has_unread)
    }

    /// Hands one ready token to its owner; what it asks of the whole loop
    /// (stop, rotate every file) goes into `turn`.
    fn dispatch_token(
        &mut self,
        ev: &mio::event::Event,
        now: Instant,
        turn: &mut Turn,
    ) -> Result<(), AppError> {
        match ev.token() {
            SIGNAL => {
                self.signals.drain(&mut self.sigs)?;
                for s in self.sigs.drain(..) {
                    match s {
                        Signal::Stop => turn.stop = true,
                        Signal::Rotate => turn.rotate_all = true,
                    }
                }
            }
            WALL => {
                if self.wall.acknowledge() {
                    let step = self.steps.step_us(clock::now_us(), Instant::now());
                    log::warn!(
                        "the wall clock stepped {}; closing the open files so that file names and day folders follow the new time",
                        clock::step_words(step)
                    );
                    turn.rotate_all = true;
                }
            }
            PUBLISHER => {
                if let Some(p) = self.out.publisher.as_mut() {
                    p.on_ready(self.poll.registry(), &mut self.buf, now);
                }
            }
            HELPERS => {
                on_resolved(
                    &mut self.resolver,
                    &mut self.streams,
                    &mut self.out,
                    self.poll.registry(),
                    now,
                );
                on_finalised(&mut self.finaliser, &self.streams, &mut self.file_events);
            }
            t if self.hooks.owns(t) => self.hooks.on_ready(self.poll.registry(), t, now),
            Token(i) => {
                if let Some(s) = self.streams.get_mut(i) {
                    let t = Instant::now();
                    let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                    s.on_ready(
                        self.poll.registry(),
                        readable,
                        ev.is_writable(),
                        &mut self.buf,
                        now,
                    );
                    self.busy[i] += t.elapsed();
                }
            }
        }
        Ok(())
    }

    /// Streams that yielded to the others: another bounded share.
    fn continue_reading(&mut self, now: Instant) {
        for s in &mut self.streams {
            s.continue_reading(self.poll.registry(), &mut self.buf, now);
        }
        if let Some(p) = self.out.publisher.as_mut() {
            p.continue_reading(self.poll.registry(), &mut self.buf, now);
        }
    }

    /// Everything due at `now`: connection timers, rotation, file events,
    /// hooks, retention, the self-report and the watchdog.
    fn run_due_timers(&mut self, now: Instant, rotate_all: bool) {
        let registry = self.poll.registry();
        for (s, b) in self.streams.iter_mut().zip(self.busy.iter_mut()) {
            if s.next_deadline().is_some_and(|d| d <= now) {
                let t = Instant::now();
                s.on_timer(registry, &mut self.buf, now);
                *b += t.elapsed();
            }
        }
        if let Some(p) = self.out.publisher.as_mut()
            && p.next_deadline().is_some_and(|d| d <= now)
        {
            p.on_timer(registry, now);
        }
        let wall_now = clock::now_us();
        for (s, b) in self.streams.iter_mut().zip(self.busy.iter_mut()) {
            if rotate_all || s.rotation_due_us().is_some_and(|d| d <= wall_now) {
                let t = Instant::now();
                s.rotate(now);
                *b += t.elapsed();
            }
        }
        // Files closed this turn (rotation, or a message past the period
        // end), finished by the finaliser: to their subscribers.
        take_closed(&mut self.streams, &mut self.file_events);
        if !self.file_events.is_empty() {
            dispatch(
                &mut self.file_events,
                &mut Subscribers {
                    streams: &mut self.streams,
                    finaliser: &mut self.finaliser,
                    hooks: &mut self.hooks,
                    retention: self.retention.as_mut(),
                },
                now,
            );
        }
        self.hooks.on_timer(registry, now);
        self.hooks.run_due(registry, now);
        if self.hooks.take_released()
            && let Some(r) = self.retention.as_mut()
        {
            r.request(now);
        }
        if let Some(r) = self.retention.as_mut() {
            retention_turn(r, &mut self.streams, &self.hooks, now, wall_now);
        }
        if now >= self.reporter.due {
            let samples = samples(
                &self.streams,
                &mut self.busy,
                self.retention.as_ref(),
                &self.hooks,
            );
            let figures = self
                .reporter
                .take(samples, ProcessSample::read(), now, wall_now);
            self.out.emit(registry, &figures, now);
        }
        if self.watchdog.take_due(now) {
            self.out.notifier.watchdog();
        }
    }

    /// The stop sequence (`stop::stop_all`), then the summary's totals and
    /// a last metrics file.
    fn stop(&mut self, events: &mut Events, now: Instant) -> Result<(), AppError> {
        log::info!(
            "longest loop turn: {:.1} ms (CPU {:.1} ms)",
            self.longest.wall.as_secs_f64() * 1e3,
            self.longest.cpu.as_secs_f64() * 1e3
        );
        self.out.notifier.stopping();
        if let Some(p) = self.out.publisher.as_mut() {
            p.shutdown(self.poll.registry(), now);
        }
        let stopped = stop::stop_all(
            &mut self.poll,
            &self.signals,
            stop::Parts {
                streams: &mut self.streams,
                finaliser: &mut self.finaliser,
                hooks: &mut self.hooks,
                file_events: &mut self.file_events,
            },
            events,
        );
        self.harness.stopped(self.streams.iter().map(totals));
        // The metrics file says what is true after the exit (no
        // connection, the final counts), not what the last period saw.
        if let Some(m) = self.out.metrics.as_mut() {
            let samples = samples(
                &self.streams,
                &mut self.busy,
                self.retention.as_ref(),
                &self.hooks,
            );
            let end = Instant::now();
            let figures = self
                .reporter
                .take(samples, ProcessSample::read(), end, clock::now_us());
            m.write(&report::prometheus(&figures));
        }
        stopped
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
