//! The loop's side of the two helper threads and of the streams' closed
//! files: files the streams closed become `Closed` events, the finaliser's
//! reports `Finished` events (its other notices are logged here), and
//! finished host-name lookups are routed to the connection that asked.
//!
//! Owns: that routing. Must not: block, or do any of the helpers' work.

use super::{Outputs, PUBLISHER};
use crate::file_events::{FileEvent, FileEvents};
use crate::resolve::Resolver;
use crate::store::finaliser::{self, Finaliser, Outcome};
use crate::stream::Stream;
use mio::Token;
use std::time::Instant;

/// Every file the streams closed, as a `Closed` event.
pub(super) fn take_closed(streams: &mut [Stream], events: &mut FileEvents) {
    for (i, s) in streams.iter_mut().enumerate() {
        let (closed, durability) = s.take_closed();
        for part in closed {
            events.push(FileEvent::Closed {
                stream: i,
                part,
                durability,
            });
        }
    }
}

/// Routes finished host-name lookups to the connections that asked.
pub(super) fn on_resolved(
    resolver: &mut Resolver,
    streams: &mut [Stream],
    out: &mut Outputs,
    registry: &mio::Registry,
    now: Instant,
) {
    let mut answers = Vec::new();
    resolver.drain(&mut answers);
    for answer in answers {
        match answer.token {
            PUBLISHER => {
                if let Some(p) = out.publisher.as_mut() {
                    p.on_resolved(registry, answer, now);
                }
            }
            Token(i) => {
                if let Some(s) = streams.get_mut(i) {
                    s.on_resolved(registry, answer, now);
                }
            }
        }
    }
}

/// The finaliser thread's reports: a finished file becomes a `Finished`
/// event; a file held by a reader or failing is logged.
pub(super) fn on_finalised(finaliser: &mut Finaliser, streams: &[Stream], events: &mut FileEvents) {
    let mut reports = Vec::new();
    finaliser.drain(&mut reports);
    for r in reports {
        let name = streams.get(r.job.stream).map_or("?", |s| s.name.as_str());
        match r.outcome {
            Outcome::Done(facts) => events.push(FileEvent::Finished {
                stream: r.job.stream,
                facts,
            }),
            Outcome::Held => log::warn!(
                "[{name}] {} is held open by a reader; finishing it when the reader lets go (retrying every {} ms)",
                r.job.part.display(),
                finaliser::RETRY_BUSY.as_millis()
            ),
            Outcome::Failing(why) => log::error!(
                "[{name}] cannot finish {}: {why}; retrying (left as .part for the next start if it never works)",
                r.job.part.display()
            ),
        }
    }
}
