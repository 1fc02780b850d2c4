//! Finds where a key path (`streams[1].qos`) sits in block-style YAML text,
//! so that a problem can name its line and column.
//!
//! Owns: a best-effort text walk over indentation, `- ` list items, comments
//! and quoted keys. Must not: decide what a value means or whether it is
//! valid, or use the YAML crate. It answers `None` for flow style
//! (`{a: 1}`, `[1, 2]`) or anything else it does not understand.

use super::Seg;

/// One line that holds something: comment removed, trailing blanks removed.
struct Line<'t> {
    /// 1-based line number in the file.
    number: usize,
    /// The text, still at its original columns.
    text: &'t str,
    /// The whole line, comment included.
    raw: &'t str,
}

/// A node: starts at `col` on `lines[line]`; its deeper lines run up to
/// (not including) `lines[end]`.
#[derive(Clone, Copy)]
struct Node {
    line: usize,
    col: usize,
    end: usize,
}

/// Indexes the text once; answers many [`Locator::find`] calls.
pub(super) struct Locator<'t> {
    lines: Vec<Line<'t>>,
}

impl<'t> Locator<'t> {
    /// Keeps the lines of `text` that hold something.
    pub(super) fn new(text: &'t str) -> Self {
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, raw)| Line {
                number: i + 1,
                text: strip_comment(raw).trim_end(),
                raw,
            })
            .filter(|l| {
                let t = l.text.trim_start();
                !(t.is_empty() || t == "---" || t == "..." || t.starts_with('%'))
            })
            .collect();
        Locator { lines }
    }

    /// True when the key at `path` is followed on its line by nothing but a
    /// comment: `topic: #` is the key `topic` with no value, since `#`
    /// after a blank starts a YAML comment.
    pub(super) fn value_is_a_comment(&self, path: &[Seg]) -> bool {
        let Some((number, col)) = self.find(path) else {
            return false;
        };
        let Some(line) = self.lines.iter().find(|l| l.number == number) else {
            return false;
        };
        let after_key = line.raw.get(col.saturating_sub(1)..).unwrap_or("");
        after_key
            .split_once(':')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('#'))
    }

    /// The 1-based line and column of the last segment of `path` (a key, or
    /// the `-` of a list item); `None` for the empty path or when not found.
    pub(super) fn find(&self, path: &[Seg]) -> Option<(usize, usize)> {
        let mut node = Node {
            line: 0,
            col: 0,
            end: self.lines.len(),
        };
        let mut at = None;
        for seg in path {
            let (next, pos) = match seg {
                Seg::Key(key) => self.find_key(node, key)?,
                Seg::Index(index) => self.find_item(node, *index)?,
            };
            node = next;
            at = Some(pos);
        }
        let (line, col) = at?;
        let l = self.lines.get(line)?;
        let column = l.text.get(..col)?.chars().count() + 1;
        Some((l.number, column))
    }

    /// Like [`find`](Self::find), but when `path` itself cannot be placed
    /// (a missing key, an item of a flow-style list) gives the position of
    /// the deepest parent that can; for a top-level key that is the first
    /// line that holds something. `None` only for a file with no content.
    pub(super) fn find_nearest(&self, path: &[Seg]) -> Option<(usize, usize)> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.find(&path[..n]))
            .or_else(|| self.lines.first().map(|l| (l.number, 1)))
    }

    fn indent(&self, line: usize) -> usize {
        self.lines.get(line).map_or(0, |l| indent(l.text))
    }

    /// Where the content of `node` starts, skipping an anchor or tag.
    fn first_content(&self, node: Node) -> Option<(usize, usize)> {
        let text = self.lines.get(node.line)?.text;
        let mut col = node.col;
        while let Some(rest) = text.get(col..) {
            let trimmed = rest.trim_start_matches(' ');
            if trimmed.is_empty() {
                break;
            }
            col += rest.len() - trimmed.len();
            if trimmed.starts_with('&') || trimmed.starts_with('!') {
                col += trimmed.find(' ').unwrap_or(trimmed.len());
                continue;
            }
            return Some((node.line, col));
        }
        let next = node.line + 1;
        (next < node.end).then(|| (next, self.indent(next)))
    }

    /// The start column of line `i` as a sibling at column `col` in a block
    /// that started on line `first`: `Ok(Some(col))` for a sibling,
    /// `Ok(None)` for a deeper line, `Err(())` when the block has ended.
    fn sibling(&self, i: usize, first: usize, col: usize) -> Result<Option<usize>, ()> {
        if i == first {
            return Ok(Some(col));
        }
        let ind = self.indent(i);
        match ind.cmp(&col) {
            std::cmp::Ordering::Less => Err(()),
            std::cmp::Ordering::Greater => Ok(None),
            std::cmp::Ordering::Equal => Ok(Some(col)),
        }
    }

    fn find_key(&self, node: Node, key: &str) -> Option<(Node, (usize, usize))> {
        let (first, kc) = self.first_content(node)?;
        for i in first..node.end {
            let Ok(at) = self.sibling(i, first, kc) else {
                break;
            };
            let Some(at) = at else { continue };
            let rest = self.lines.get(i)?.text.get(at..)?;
            let Some((name, used)) = split_key(rest) else {
                continue;
            };
            if name != key {
                continue;
            }
            // The value runs over deeper lines, and over `- ` items at the
            // key's own column (a compact list under a key).
            let mut end = i + 1;
            while end < node.end {
                let ind = self.indent(end);
                let dash = self.lines[end].text.get(kc..).is_some_and(is_dash);
                if ind > kc || (ind == kc && dash) {
                    end += 1;
                } else {
                    break;
                }
            }
            let value = Node {
                line: i,
                col: at + used,
                end,
            };
            return Some((value, (i, at)));
        }
        None
    }

    fn find_item(&self, node: Node, index: usize) -> Option<(Node, (usize, usize))> {
        let (first, dc) = self.first_content(node)?;
        let mut count = 0;
        for i in first..node.end {
            let Ok(at) = self.sibling(i, first, dc) else {
                break;
            };
            let Some(at) = at else { continue };
            if !self.lines.get(i)?.text.get(at..).is_some_and(is_dash) {
                return None;
            }
            if count == index {
                let mut end = i + 1;
                while end < node.end && self.indent(end) > dc {
                    end += 1;
                }
                let item = Node {
                    line: i,
                    col: at + 1,
                    end,
                };
                return Some((item, (i, at)));
            }
            count += 1;
        }
        None
    }
}

fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}

fn is_dash(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ")
}

/// `text` without its `# comment`; a `#` inside quotes or glued to a word
/// (`a#b`) is not a comment.
fn strip_comment(text: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut prev_significant = ' ';
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => return &text[..i],
                '"' | '\''
                    if matches!(prev_significant, ' ' | ':' | '-' | ',' | '[' | '{' | '?') =>
                {
                    quote = Some(c);
                }
                _ => {}
            },
        }
        prev = c;
        if !c.is_whitespace() {
            prev_significant = c;
        }
        if c.is_whitespace() && quote.is_none() {
            prev_significant = ' ';
        }
    }
    text
}

/// The key at the start of `rest` and the bytes up to and including its
/// colon, for `key: ...`, `"key": ...` and `'key': ...`.
fn split_key(rest: &str) -> Option<(String, usize)> {
    let (name, after) = if let Some(body) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = body.char_indices();
        let mut close = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => name.extend(chars.next().map(|(_, e)| e)),
                '"' => {
                    close = Some(i);
                    break;
                }
                _ => name.push(c),
            }
        }
        (name, 1 + close? + 1)
    } else if let Some(body) = rest.strip_prefix('\'') {
        let mut name = String::new();
        let mut chars = body.char_indices().peekable();
        let mut close = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                    chars.next();
                    name.push('\'');
                    continue;
                }
                close = Some(i);
                break;
            }
            name.push(c);
        }
        (name, 1 + close? + 1)
    } else {
        let colon = rest
            .char_indices()
            .find(|&(i, c)| c == ':' && rest[i + 1..].chars().next().is_none_or(|n| n == ' '))?
            .0;
        return Some((rest[..colon].trim_end().to_owned(), colon + 1));
    };
    let tail = rest.get(after..)?;
    let gap = tail.len() - tail.trim_start_matches(' ').len();
    let tail = &tail[gap..];
    (tail == ":" || tail.starts_with(": ")).then_some((name, after + gap + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    const TEXT: &str = "\
# a comment
data-folder: \"/x\"   # trailing comment
streams:
  - topic: \"#\"
    prefix: a
  -   \"qos\": 1
      'it''s': 2
    # between
  - prefix: c
    topic:
      - a/b
      - c/#
compact:
- one
- two: 2
log-level: info
";

    #[test]
    fn top_level_keys_are_found_after_comments() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.find(&[key("data-folder")]), Some((2, 1)));
        assert_eq!(loc.find(&[key("log-level")]), Some((16, 1)));
        assert_eq!(loc.find(&[key("missing")]), None);
        assert_eq!(loc.find(&[]), None);
    }

    #[test]
    fn keys_inside_list_items_are_found() {
        let loc = Locator::new(TEXT);
        let path = |i: usize, k: &str| vec![key("streams"), Seg::Index(i), key(k)];
        assert_eq!(loc.find(&path(0, "topic")), Some((4, 5)));
        assert_eq!(loc.find(&path(0, "prefix")), Some((5, 5)));
        assert_eq!(loc.find(&path(1, "qos")), Some((6, 7)));
        assert_eq!(loc.find(&path(1, "it's")), Some((7, 7)));
        assert_eq!(loc.find(&path(2, "prefix")), Some((9, 5)));
        assert_eq!(loc.find(&[key("streams"), Seg::Index(2)]), Some((9, 3)));
        assert_eq!(loc.find(&path(3, "prefix")), None);
        let topic1 = [key("streams"), Seg::Index(2), key("topic"), Seg::Index(1)];
        assert_eq!(loc.find(&topic1), Some((12, 7)));
    }

    #[test]
    fn compact_lists_under_a_key_are_found() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.find(&[key("compact"), Seg::Index(1)]), Some((15, 1)));
        let two = [key("compact"), Seg::Index(1), key("two")];
        assert_eq!(loc.find(&two), Some((15, 3)));
    }

    #[test]
    fn the_nearest_position_falls_back_to_the_parent_then_to_the_first_line() {
        let text = "# comment\n\ndata-folder: x\nstreams:\n  - topic: [\"a\", \"b\"]\n";
        let l = Locator::new(text);
        let item = [key("streams"), Seg::Index(0), key("topic"), Seg::Index(1)];
        assert_eq!(l.find(&item), None);
        assert_eq!(l.find_nearest(&item), Some((5, 5)));
        assert_eq!(l.find_nearest(&[key("missing")]), Some((3, 1)));
        assert_eq!(l.find_nearest(&[]), Some((3, 1)));
        assert_eq!(Locator::new("# only a comment\n").find_nearest(&[]), None);
    }

    #[test]
    fn flow_style_gives_no_position_rather_than_a_wrong_one() {
        let loc = Locator::new("streams: [{topic: a}]\n");
        assert_eq!(loc.find(&[key("streams"), Seg::Index(0)]), None);
        assert_eq!(loc.find(&[key("streams")]), Some((1, 1)));
    }

    #[test]
    fn hashes_in_quotes_and_words_are_not_comments() {
        assert_eq!(strip_comment("topic: \"#\" # c"), "topic: \"#\" ");
        assert_eq!(strip_comment("a: b#c"), "a: b#c");
        assert_eq!(strip_comment("a: it's # c"), "a: it's ");
    }
}
