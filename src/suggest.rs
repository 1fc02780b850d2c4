//! "Did you mean": the known key closest to a misspelt one, for the
//! unknown-key problems of the config file and of filter options.
//!
//! Owns: one edit-distance function. Must not: import anything of the crate.

/// The known key closest to `unknown`, if it is close enough to be a typo.
pub fn suggestion<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    };
    let unknown = unknown.to_lowercase();
    known
        .iter()
        .map(|k| (distance(&unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
