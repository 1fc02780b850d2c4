//! Topic filter matching (MQTT 3.1.1 section 4.7), for `exclude` and the
//! other per-stream filters. Filters are validated by `config`; here they
//! are only matched.

/// True if `topic` matches `filter` (`+` one level, `#` the rest, including
/// the parent level: `a/#` matches `a`). Topics starting with `$` match only
/// filters that start with the same literal level, never a leading wildcard.
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    let mut f = filter.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn plain_plus_and_hash_filters_match_as_mqtt_says() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(matches("a/b/c", "a/+/c"));
        assert!(!matches("a/b/c/d", "a/+/c"));
        assert!(matches("a/b/c", "a/#"));
        assert!(matches("a", "a/#"));
        assert!(matches("a/b", "#"));
        assert!(matches("a//b", "a/+/b"));
        assert!(!matches("b/a", "a/#"));
    }

    #[test]
    fn dollar_topics_do_not_match_leading_wildcards() {
        assert!(!matches("$SYS/broker/uptime", "#"));
        assert!(!matches("$SYS/broker/uptime", "+/broker/uptime"));
        assert!(matches("$SYS/broker/uptime", "$SYS/#"));
    }

    #[test]
    fn multibyte_topics_do_not_panic() {
        assert!(matches("é/ü", "é/+"));
        assert!(!matches("éa", "é") && matches("é", "#"));
    }
}
