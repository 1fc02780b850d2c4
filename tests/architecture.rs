//! Checks the invariants of ARCHITECTURE.md that can be read off the source:
//! which top-level module names which (`crate::x` paths), where the foreign
//! crates and the clock are used, no import cycle between top-level
//! modules, no file in `src/` above 600 lines of non-test code
//! (counted without comments and blank lines: explanations never count
//! against a file, so none is deleted to fit), and no file name spelled
//! outside `layout`.
//!
//! It reads `src/` as text; test code (a `tests.rs` file, or everything from
//! a file's first top-level `#[cfg(test)]`) and comments are left out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Most lines of non-test code one file in `src/` may have.
const MAX_LINES: usize = 600;

/// One source file: its path under `src/`, its top-level module, and its
/// non-test code with comments removed, line by line.
struct Source {
    rel: String,
    module: String,
    code: Vec<String>,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == "main.rs" || rel == "lib.rs" || rel.ends_with("/tests.rs") {
            continue;
        }
        let first = rel.split('/').next().unwrap();
        let module = first.trim_end_matches(".rs").to_owned();
        let text = fs::read_to_string(&path).unwrap();
        let code = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .map(|l| match l.find("//") {
                Some(i) => l[..i].to_owned(),
                None => l.to_owned(),
            })
            .collect();
        out.push(Source { rel, module, code });
    }
    assert!(
        out.len() > 20,
        "found only {} files under {root:?}",
        out.len()
    );
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::<module>`.
fn crate_refs(src: &Source) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in &src.code {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != src.module {
                refs.insert(name);
            }
        }
    }
    refs
}

fn mentions(src: &Source, needle: &str) -> bool {
    src.code.iter().any(|l| l.contains(needle))
}

/// Module -> the modules it names, over every file.
fn graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        g.entry(s.module.clone()).or_default().extend(crate_refs(s));
    }
    g
}

#[test]
fn modules_import_only_what_architecture_md_allows() {
    let sources = sources();
    let never: &[(&str, &[&str])] = &[
        (
            "mqtt",
            &[
                "net",
                "connection",
                "clock",
                "stream",
                "store",
                "config",
                "app",
            ],
        ),
        (
            "store",
            &[
                "mqtt",
                "net",
                "connection",
                "filter",
                "stream",
                "config",
                "app",
                "hook",
                "file_events",
            ],
        ),
        (
            "config",
            &[
                "net",
                "connection",
                "stream",
                "publisher",
                "app",
                "report",
                "clock",
                "metrics",
                "signals",
                "systemd",
            ],
        ),
        (
            "filter",
            &["clock", "config", "net", "connection", "stream", "app"],
        ),
        (
            "report",
            &["net", "connection", "stream", "app", "publisher"],
        ),
        ("net", &["mqtt", "store", "config"]),
        (
            "tls",
            &[
                "net",
                "connection",
                "config",
                "mqtt",
                "store",
                "stream",
                "app",
            ],
        ),
        ("counters", &["stream", "report"]),
        (
            "hook",
            &[
                "net",
                "connection",
                "mqtt",
                "filter",
                "stream",
                "publisher",
                "app",
            ],
        ),
        (
            "file_events",
            &[
                "net",
                "connection",
                "mqtt",
                "config",
                "hook",
                "stream",
                "app",
            ],
        ),
    ];
    let mut broken = Vec::new();
    for s in &sources {
        let refs = crate_refs(s);
        for (module, banned) in never {
            if s.module == *module {
                for b in *banned {
                    if refs.contains(*b) {
                        broken.push(format!("{} ({module}) imports {b}", s.rel));
                    }
                }
            }
        }
        for only_app in ["stream", "publisher", "app"] {
            if refs.contains(only_app) && s.module != "app" {
                broken.push(format!("{} imports {only_app}; only app may", s.rel));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let g = graph(&sources());
    // Depth-first search; a back edge is a cycle.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        let cycle = visit(m, &g, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn the_session_the_gate_the_filters_and_the_stream_core_read_no_clock_and_own_no_socket() {
    let mut broken = Vec::new();
    for s in &sources() {
        let core = s.rel.starts_with("stream/core");
        let clockless =
            s.module == "mqtt" || s.module == "filter" || s.rel == "store/gate.rs" || core;
        if clockless {
            for needle in ["Instant::now", "SystemTime::now", "now_us()"] {
                if mentions(s, needle) {
                    broken.push(format!("{} calls {needle}", s.rel));
                }
            }
        }
        if s.module == "mqtt" || core {
            for needle in ["mio::", "std::net", "TcpStream"] {
                if mentions(s, needle) {
                    broken.push(format!("{} uses {needle}", s.rel));
                }
            }
        }
        if core {
            let refs = crate_refs(s);
            for edge in ["net", "connection", "clock"] {
                if refs.contains(edge) {
                    broken.push(format!("{} (the stream core) imports {edge}", s.rel));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn each_foreign_format_has_one_user() {
    let mut broken = Vec::new();
    for s in &sources() {
        let allowed = [
            ("mqttbytes", s.rel.starts_with("mqtt/framing/")),
            ("serde_yaml", s.rel == "config/yaml.rs"),
            ("rusqlite", s.module == "store"),
            ("parquet", s.rel == "export/parquet_file.rs"),
            ("apache_avro", s.rel == "export/decode/avro.rs"),
        ];
        for (krate, ok) in allowed {
            if !ok && mentions(s, &format!("{krate}::")) {
                broken.push(format!("{} uses {krate}", s.rel));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Lines that hold code: comments (doc comments included) and blank
/// lines do not count.
fn code_lines(s: &Source) -> usize {
    s.code.iter().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn no_file_in_src_has_more_than_600_lines_of_non_test_code() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|s| code_lines(s) > MAX_LINES)
        .map(|s| format!("{}: {} lines of code", s.rel, code_lines(s)))
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn comments_and_blank_lines_do_not_count_as_code() {
    let s = Source {
        rel: "x.rs".into(),
        module: "x".into(),
        code: vec![
            "fn a() {}".into(),
            "".into(),
            "   ".into(),
            "let b = 1;  ".into(),
        ],
    };
    assert_eq!(code_lines(&s), 2);
}

#[test]
fn only_layout_spells_a_file_name() {
    // The name patterns of a stream folder, and the ways of deriving one
    // name from another, as they would be spelled outside `layout`.
    let spellings = [
        ".sqlite.part",
        ".sqlite.init",
        ".sqlite.corrupt",
        "}.sqlite",
        ":016",
        ":16}",
        "with_extension(\"\")",
        "with_extension(\"part\")",
        "with_extension(\"init\")",
        "with_extension(\"corrupt\")",
        "strip_suffix(\".sqlite",
        "ends_with(\".sqlite",
    ];
    let mut broken = Vec::new();
    for s in &sources() {
        if s.module == "layout" {
            let refs = crate_refs(s);
            if !refs.is_empty() {
                broken.push(format!("{} (layout, a leaf) imports {refs:?}", s.rel));
            }
            continue;
        }
        for needle in spellings {
            if mentions(s, needle) {
                broken.push(format!("{} spells {needle:?}", s.rel));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "file names belong to `layout`: {broken:#?}"
    );
}

#[test]
fn message_is_a_leaf() {
    let mut broken = Vec::new();
    for s in &sources() {
        if s.module == "message" {
            let refs = crate_refs(s);
            if !refs.is_empty() {
                broken.push(format!("{} (message, a leaf) imports {refs:?}", s.rel));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
