//! The stop sequence: commit, acknowledge, close every file, DISCONNECT;
//! then wait, at most [`STOP_WAIT`], for the DISCONNECTs to be written, the
//! closed files to be finished and running on-finish hooks to end. A file
//! a reader holds (or a slow disk) never holds up the exit: what is
//! unfinished then stays a complete `.part` that the next start finishes;
//! a hook still running then gets SIGTERM and runs again at the next start.
//! A second SIGINT/SIGTERM exits at once, at any point of the wait.
//!
//! Owns: that sequence. Must not: start a new hook, or wait past its bound.

use super::file_events::{Subscribers, dispatch};
use super::helpers::{on_finalised, take_closed};
use super::{AppError, HELPERS, SIGNAL, STOP_WAIT};
use crate::file_events::FileEvents;
use crate::hook::Hooks;
use crate::signals::{Signal, Signals};
use crate::store::finaliser::Finaliser;
use crate::stream::Stream;
use mio::{Events, Poll};
use std::io;
use std::time::Instant;

/// What the stop sequence works on.
pub(super) struct Parts<'a> {
    pub(super) streams: &'a mut [Stream],
    pub(super) finaliser: &'a mut Finaliser,
    pub(super) hooks: &'a mut Hooks,
    pub(super) file_events: &'a mut FileEvents,
}

impl Parts<'_> {
    /// File events produced so far, to their subscribers (no retention
    /// during the stop).
    fn dispatch(&mut self, now: Instant) {
        dispatch(
            self.file_events,
            &mut Subscribers {
                streams: self.streams,
                finaliser: self.finaliser,
                hooks: self.hooks,
                retention: None,
            },
            now,
        );
    }
}

/// Runs the stop sequence (see the module header).
pub(super) fn stop_all(
    poll: &mut Poll,
    signals: &Signals,
    mut p: Parts<'_>,
    events: &mut Events,
) -> Result<(), AppError> {
    log::info!("stopping: committing and closing files");
    p.hooks.begin_stop();
    let now = Instant::now();
    let mut pending = Vec::new();
    for (i, s) in p.streams.iter_mut().enumerate() {
        if !s.shutdown(poll.registry(), now) {
            pending.push(i);
        }
    }
    take_closed(p.streams, p.file_events);
    p.dispatch(now);
    let deadline = now + STOP_WAIT;
    let mut sigs = Vec::new();
    while !pending.is_empty() || p.finaliser.pending() > 0 || p.hooks.running() > 0 {
        let now = Instant::now();
        if now >= deadline {
            if p.finaliser.pending() > 0 {
                log::warn!(
                    "stopping with {} closed file(s) not finished (a reader holds them, or the disk is slow); they stay .part and are finished at the next start",
                    p.finaliser.pending()
                );
            }
            break;
        }
        let wait = p
            .hooks
            .next_deadline()
            .map_or(deadline, |d| d.min(deadline));
        if let Err(e) = poll.poll(events, Some(wait.saturating_duration_since(now))) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        let now = Instant::now();
        for ev in events.iter() {
            match ev.token() {
                SIGNAL => {
                    signals.drain(&mut sigs)?;
                    if sigs.contains(&Signal::Stop) {
                        log::warn!("second stop signal: exiting now");
                        p.hooks.terminate_all(poll.registry());
                        return Ok(());
                    }
                }
                HELPERS => {
                    on_finalised(p.finaliser, p.streams, p.file_events);
                }
                t if p.hooks.owns(t) => p.hooks.on_ready(poll.registry(), t, now),
                _ => {}
            }
        }
        p.hooks.on_timer(poll.registry(), now);
        p.dispatch(now);
        pending.retain(|&i| !p.streams[i].flush_final(poll.registry(), now));
    }
    p.hooks.terminate_all(poll.registry());
    for s in p.streams.iter_mut() {
        s.close(poll.registry());
    }
    log::info!("stopped");
    Ok(())
}
