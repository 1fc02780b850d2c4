//! `include`: keeps only messages whose topic matches one of its topic
//! filters; drops the rest. Must not: keep state.
//!
//! ```yaml
//! - include: ["sensors/#"]     # or { topics: [...] }
//! ```

use super::{Filter, Options, Verdict};
use crate::mqtt::topic;
use crate::message::Message;

/// Keeps only messages on matching topics.
#[derive(Debug)]
pub struct Include {
    topics: Vec<String>,
}

impl Include {
    /// Keeps messages whose topic matches any of `topics`.
    pub fn new(topics: Vec<String>) -> Self {
        Include { topics }
    }
}

impl Filter for Include {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        if self.topics.iter().any(|f| topic::matches(&msg.topic, f)) {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}

/// Options: `topics` (required; also the shorthand).
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    options.shorthand("topics");
    let topics = options.required_topics("topics");
    Some(Box::new(Include::new(topics)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::msg;

    #[test]
    fn only_matching_topics_are_kept() {
        let mut f = Include::new(vec!["sensors/#".into()]);
        assert_eq!(f.check(&mut msg("sensors/a/t", b"1", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("sensors", b"1", 0)), Verdict::Keep);
        assert_eq!(f.check(&mut msg("other/a", b"1", 0)), Verdict::Drop);
    }
}
