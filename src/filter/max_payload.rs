//! `max-payload-bytes` as a filter: drops messages whose payload is larger
//! than `bytes`. Must not: be confused with the stream-level key of the same
//! name, which is the wire-level limit (oversize payloads are discarded by
//! the framing as they arrive, never buffered). This filter sees payloads
//! that were already received, so it can use a smaller limit per chain.
//!
//! ```yaml
//! - max-payload-bytes: 65536     # or { bytes: 65536 }
//! ```

use super::{Filter, Options, Verdict};
use crate::message::Message;

/// The largest payload MQTT can carry.
const MAX_LIMIT: u64 = 268_435_455;

/// Drops payloads longer than a limit.
#[derive(Debug)]
pub struct MaxPayload {
    bytes: usize,
}

impl MaxPayload {
    /// Drops payloads longer than `bytes`.
    pub fn new(bytes: usize) -> Self {
        MaxPayload { bytes }
    }
}

impl Filter for MaxPayload {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        if msg.payload.len() > self.bytes {
            Verdict::Drop
        } else {
            Verdict::Keep
        }
    }
}

/// Options: `bytes` (required, 0..=268435455; also the shorthand).
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    options.shorthand("bytes");
    let bytes = options.required_integer("bytes", 0, MAX_LIMIT)?;
    Some(Box::new(MaxPayload::new(
        usize::try_from(bytes).unwrap_or(usize::MAX),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::msg;

    #[test]
    fn payloads_up_to_the_limit_are_kept_and_longer_ones_dropped() {
        let mut f = MaxPayload::new(4);
        assert_eq!(f.check(&mut msg("a", b"", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("a", b"1234", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("a", b"12345", 0)), Verdict::Drop);
    }
}
