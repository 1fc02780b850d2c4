//! Topic filters (MQTT 3.1.1 section 4.7): matching, for `exclude` and the
//! other per-stream filters, and the validity checks `config` and the
//! filters' options run on them. Must not: import `config` or `filter`.

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

/// MQTT strings carry a 16-bit length.
pub const MAX_MQTT_STRING: usize = 65_535;

/// Why `filter` is not a valid MQTT topic filter, or `None` if it is.
/// Accepts `$share/<group>/<filter>`.
pub fn topic_filter_problem(filter: &str) -> Option<String> {
    if let Some(p) = mqtt_string_problem(filter) {
        return Some(p);
    }
    let body = match filter.strip_prefix("$share/") {
        Some(rest) => {
            let Some((group, inner)) = rest.split_once('/') else {
                return Some("a shared subscription is `$share/<group>/<filter>`".to_owned());
            };
            if group.is_empty() || group.contains(['+', '#']) {
                return Some(
                    "the share group must be non-empty and contain no `+` or `#`".to_owned(),
                );
            }
            if inner.is_empty() {
                return Some("the filter after `$share/<group>/` is empty".to_owned());
            }
            inner
        }
        None => filter,
    };
    let levels: Vec<&str> = body.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Some(format!(
                "`#` must be a whole level and the last one (in `{filter}`)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Some(format!("`+` must be a whole level (in `{filter}`)"));
        }
    }
    None
}

/// Why `s` cannot be an MQTT string (empty, too long, NUL), or `None`.
pub fn mqtt_string_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("must not be empty".to_owned())
    } else if s.len() > MAX_MQTT_STRING {
        Some(format!("is longer than {MAX_MQTT_STRING} bytes"))
    } else if s.contains('\0') {
        Some("must not contain a NUL character".to_owned())
    } else {
        None
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
