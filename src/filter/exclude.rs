//! `exclude`: drops messages whose topic matches one of its topic filters.
//! Must not: keep state; it looks at the topic only.
//!
//! ```yaml
//! - exclude: ["$SYS/#", "debug/#"]     # or { topics: [...] }
//! ```

use super::{Filter, Options, Verdict};
use crate::mqtt::topic;
use crate::message::Message;

/// Drops messages on matching topics.
#[derive(Debug)]
pub struct Exclude {
    topics: Vec<String>,
}

impl Exclude {
    /// Drops messages whose topic matches any of `topics`.
    pub fn new(topics: Vec<String>) -> Self {
        Exclude { topics }
    }
}

impl Filter for Exclude {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        if self.topics.iter().any(|f| topic::matches(&msg.topic, f)) {
            Verdict::Drop
        } else {
            Verdict::Keep
        }
    }
}

/// Options: `topics` (required; also the shorthand).
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    options.shorthand("topics");
    let topics = options.required_topics("topics");
    Some(Box::new(Exclude::new(topics)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::msg;

    #[test]
    fn matching_topics_are_dropped_and_others_kept() {
        let mut f = Exclude::new(vec!["$SYS/#".into(), "debug/+".into()]);
        assert_eq!(f.check(&mut msg("$SYS/uptime", b"1", 0)), Verdict::Drop);
        assert_eq!(f.check(&mut msg("debug/x", b"1", 0)), Verdict::Drop);
        assert_eq!(f.check(&mut msg("debug/x/y", b"1", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("a", b"1", 0)), Verdict::Keep);
    }
}
