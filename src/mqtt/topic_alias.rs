//! MQTT 5 topic aliases sent by the broker: one table per connection,
//! emptied on every reconnect, bounded by the Topic Alias Maximum we
//! announced in CONNECT.
//!
//! A PUBLISH with a topic and an alias (re)defines the alias; one with an
//! empty topic and an alias uses it. The real topic is what gets stored.
//! It must not know about framing or sockets.

use std::fmt;

/// A PUBLISH whose topic alias cannot be resolved: a protocol error that
/// ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAliasError {
    /// An empty topic and no alias.
    EmptyTopic,
    /// An alias although we announced a maximum of 0.
    NoneOffered {
        /// The alias used.
        alias: u16,
    },
    /// Alias 0, or one above the maximum we announced.
    OutOfRange {
        /// The alias used.
        alias: u16,
        /// The maximum we announced.
        maximum: u16,
    },
    /// An empty topic with an alias this connection never defined.
    Undefined {
        /// The alias used.
        alias: u16,
    },
}

impl fmt::Display for TopicAliasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicAliasError::EmptyTopic => {
                f.write_str("PUBLISH with an empty topic and no topic alias")
            }
            TopicAliasError::NoneOffered { alias } => write!(
                f,
                "the broker used topic alias {alias} although Attic offered none (`topic-alias-maximum: 0`); nothing stored from it"
            ),
            TopicAliasError::OutOfRange { alias, maximum } => write!(
                f,
                "topic alias {alias} outside 1..={maximum} (the maximum we announced)"
            ),
            TopicAliasError::Undefined { alias } => write!(
                f,
                "topic alias {alias} with an empty topic, but this connection never defined it; nothing stored from it"
            ),
        }
    }
}

impl std::error::Error for TopicAliasError {}

/// The aliases of one connection.
#[derive(Debug, Clone)]
pub struct AliasTable {
    /// Index = alias - 1; at most `maximum` entries, created as used.
    topics: Vec<Option<String>>,
    /// The Topic Alias Maximum announced in CONNECT (0 = none allowed).
    maximum: u16,
}

impl AliasTable {
    /// A table for aliases 1..=`maximum`.
    pub fn new(maximum: u16) -> Self {
        AliasTable {
            topics: Vec::new(),
            maximum,
        }
    }

    /// Forgets every alias (a new connection starts with none).
    pub fn reset(&mut self) {
        self.topics.clear();
    }

    /// The topic a PUBLISH is about. `Err` is a protocol error that ends
    /// the connection (alias 0 or above the maximum, unknown alias, empty
    /// topic without alias).
    pub fn resolve(
        &mut self,
        topic: String,
        alias: Option<u16>,
    ) -> Result<String, TopicAliasError> {
        let Some(alias) = alias else {
            if topic.is_empty() {
                return Err(TopicAliasError::EmptyTopic);
            }
            return Ok(topic);
        };
        if self.maximum == 0 {
            return Err(TopicAliasError::NoneOffered { alias });
        }
        if alias == 0 || alias > self.maximum {
            return Err(TopicAliasError::OutOfRange {
                alias,
                maximum: self.maximum,
            });
        }
        let i = usize::from(alias - 1);
        if topic.is_empty() {
            return match self.topics.get(i) {
                Some(Some(t)) => Ok(t.clone()),
                _ => Err(TopicAliasError::Undefined { alias }),
            };
        }
        if self.topics.len() <= i {
            self.topics.resize(i + 1, None);
        }
        self.topics[i] = Some(topic.clone());
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_defined_with_a_topic_resolves_later_publishes() {
        let mut t = AliasTable::new(10);
        assert_eq!(t.resolve("a/b".into(), Some(3)).unwrap(), "a/b");
        assert_eq!(t.resolve(String::new(), Some(3)).unwrap(), "a/b");
    }

    #[test]
    fn an_alias_can_be_redefined() {
        let mut t = AliasTable::new(10);
        t.resolve("a".into(), Some(1)).unwrap();
        t.resolve("b".into(), Some(1)).unwrap();
        assert_eq!(t.resolve(String::new(), Some(1)).unwrap(), "b");
    }

    #[test]
    fn a_topic_without_alias_passes_unchanged() {
        let mut t = AliasTable::new(0);
        assert_eq!(t.resolve("x".into(), None).unwrap(), "x");
    }

    #[test]
    fn unknown_zero_and_too_large_aliases_are_protocol_errors() {
        let mut t = AliasTable::new(4);
        assert!(t.resolve(String::new(), Some(2)).is_err());
        assert!(t.resolve("x".into(), Some(0)).is_err());
        assert!(t.resolve("x".into(), Some(5)).is_err());
        assert!(t.resolve(String::new(), None).is_err());
    }

    #[test]
    fn with_no_maximum_announced_every_alias_is_refused() {
        let mut t = AliasTable::new(0);
        let e = t.resolve("a".into(), Some(1)).unwrap_err();
        assert!(e.to_string().contains("offered none"), "{e}");
        assert!(t.resolve(String::new(), Some(1)).is_err());
    }

    #[test]
    fn a_reset_forgets_every_alias() {
        let mut t = AliasTable::new(4);
        t.resolve("a".into(), Some(1)).unwrap();
        t.reset();
        assert!(t.resolve(String::new(), Some(1)).is_err());
    }
}
