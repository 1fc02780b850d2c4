//! The one place where file events are acted on: each [`FileEvent`] goes
//! to its subscribers here, in the order the events were produced.
//!
//! ```text
//!   Closed    -> log, summary tally, on-finish (pending), finaliser
//!   Finished  -> log, on-finish (runnable), retention (once no closed file is left)
//!   Recovered -> log, on-finish (runnable)
//! ```
//!
//! Owns: that wiring. Must not: do a subscriber's work itself, or block.

use crate::file_events::{FileEvent, FileEvents, final_name};
use crate::hook::Hooks;
use crate::store::finaliser::{Finaliser, Job};
use crate::store::retention::Retention;
use crate::stream::Stream;
use std::time::Instant;

/// Everything that subscribes to file events.
pub(super) struct Subscribers<'a> {
    pub(super) streams: &'a mut [Stream],
    pub(super) finaliser: &'a mut Finaliser,
    pub(super) hooks: &'a mut Hooks,
    /// `None` during the stop, or when no retention is configured.
    pub(super) retention: Option<&'a mut Retention>,
}

/// Hands every waiting event to its subscribers.
pub(super) fn dispatch(events: &mut FileEvents, subs: &mut Subscribers<'_>, now: Instant) {
    let mut finished_any = false;
    for event in events.take() {
        let i = event.stream();
        let name = subs
            .streams
            .get(i)
            .map_or("?", |s| s.name.as_str())
            .to_owned();
        match event {
            FileEvent::Closed {
                stream,
                part,
                durability,
            } => {
                log::info!("[{name}] closed {}", part.display());
                if let Some(s) = subs.streams.get_mut(stream) {
                    s.tally.file_written(&final_name(&part));
                }
                subs.hooks.closed(stream, &part, now);
                subs.finaliser.submit(Job {
                    stream,
                    part,
                    durability,
                });
            }
            FileEvent::Finished { stream, facts } => {
                log::info!("[{name}] finished {}", facts.path.display());
                subs.hooks.finished(stream, &facts, now);
                finished_any = true;
            }
            FileEvent::Recovered { stream, facts } => {
                log::warn!(
                    "[{name}] recovered {} left by an earlier run",
                    facts.path.display()
                );
                subs.hooks.finished(stream, &facts, now);
            }
        }
    }
    // Retention runs after a rotation once its files are finished (a
    // `.part` does not count): when the last one handed over is done.
    if finished_any
        && subs.finaliser.pending() == 0
        && let Some(r) = subs.retention.as_deref_mut()
    {
        r.request(now);
    }
}
