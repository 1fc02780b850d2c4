//! The loop's side of the two helper threads: closed files handed to the
//! finaliser and its reports logged, finished host-name lookups routed to
//! the connection that asked.
//!
//! Owns: that routing. Must not: block, or do any of the helpers' work.

use super::{Outputs, PUBLISHER};
use crate::resolve::Resolver;
use crate::store::finaliser::{self, Finaliser, Job, Outcome};
use crate::stream::Stream;
use mio::Token;
use std::time::Instant;

/// Hands every file the streams closed to the finaliser thread.
pub(super) fn hand_over_closed(streams: &mut [Stream], finaliser: &mut Finaliser) {
    for (i, s) in streams.iter_mut().enumerate() {
        let (closed, durability) = s.take_closed();
        for part in closed {
            finaliser.submit(Job {
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

/// Logs what the finaliser thread reports; returns how many files it
/// finished.
pub(super) fn on_finalised(finaliser: &mut Finaliser, streams: &[Stream]) -> usize {
    let mut reports = Vec::new();
    finaliser.drain(&mut reports);
    let mut finished = 0;
    for r in reports {
        let name = streams.get(r.job.stream).map_or("?", |s| s.name.as_str());
        match r.outcome {
            Outcome::Done(path) => {
                finished += 1;
                log::info!("[{name}] finished {}", path.display());
            }
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
    finished
}
