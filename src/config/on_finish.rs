//! The `on-finish:` section: at the top level (every stream's hook) and in
//! each stream (its block replaces the top-level one whole).
//!
//! ```yaml
//! on-finish:
//!   command: ["rsync", "-a", "{file}", "nas:/attic/{stream}/{day}/"]
//!   timeout-seconds: 300     # default 300
//!   keep-until-done: true    # default false
//! ```
//!
//! Owns: the keys, their checks (a non-empty argv list of strings; its
//! program absolute, or a name found on `PATH`; only the placeholders
//! `{file}`, `{stream}` and `{day}`), the resolution per stream, and the
//! `attic check` line. Must not: run anything (that is `hook`).

use super::checker::{Checker, Fields};
use super::yaml::Yaml;
use super::{Seg, child, key};
use std::path::Path;
use std::time::Duration;

/// The keys of an `on-finish:` mapping.
const KEYS: &[&str] = &["command", "timeout-seconds", "keep-until-done"];

/// The placeholders an argument may hold.
pub const PLACEHOLDERS: &[&str] = &["file", "stream", "day"];

/// Default `timeout-seconds`.
const DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// Largest `timeout-seconds` accepted (one week).
const MAX_TIMEOUT_SECONDS: u64 = 7 * 86_400;

/// A stream's hook on finished files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnFinish {
    /// `command`: the program and its arguments, placeholders unexpanded.
    pub command: Vec<String>,
    /// `timeout-seconds`: a run that takes longer is ended and failed.
    pub timeout: Duration,
    /// `keep-until-done`: retention keeps a file until its hook is done.
    pub keep_until_done: bool,
}

impl OnFinish {
    /// The `attic check` line.
    pub fn describe(hook: Option<&OnFinish>) -> String {
        match hook {
            None => "(none)".to_owned(),
            Some(h) => {
                let argv: Vec<String> = h.command.iter().map(|a| format!("{a:?}")).collect();
                format!(
                    "[{}], timeout {} s, keep-until-done {}",
                    argv.join(", "),
                    h.timeout.as_secs(),
                    h.keep_until_done
                )
            }
        }
    }
}

/// The names in `{...}` of `arg` that are not placeholders.
pub fn unknown_placeholders(arg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find('}') else {
            break;
        };
        let name = after.get(..close).unwrap_or("");
        let word = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if word && !PLACEHOLDERS.contains(&name) {
            out.push(name.to_owned());
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out
}

/// Whether `program` (no `/` in it) is an executable file in one of the
/// folders of `path` (`PATH`'s value).
fn on_path(program: &str, path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.split(':').filter(|d| !d.is_empty()).any(|d| {
        std::fs::metadata(Path::new(d).join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

impl Checker<'_> {
    /// The top-level `on-finish:` block, if any.
    pub(super) fn top_on_finish(&mut self, top: &Fields) -> Option<OnFinish> {
        let value = top.get("on-finish")?;
        self.on_finish_block(value, &top.at("on-finish"))
    }

    /// A stream's hook: its own `on-finish:` (in the raw stream mapping
    /// `item` at `path`), else the top-level one.
    pub(super) fn stream_on_finish(
        &mut self,
        item: &Yaml,
        path: &[Seg],
        top: Option<&OnFinish>,
    ) -> Option<OnFinish> {
        let own = match item {
            Yaml::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
                Yaml::Str(name) if name == "on-finish" && !matches!(v, Yaml::Null) => Some(v),
                _ => None,
            }),
            _ => None,
        };
        match own {
            Some(value) => self.on_finish_block(value, &key(path, "on-finish")),
            None => top.cloned(),
        }
    }

    fn on_finish_block(&mut self, value: &Yaml, path: &[Seg]) -> Option<OnFinish> {
        let f = self.mapping(value, path, KEYS)?;
        let command = self.hook_command(&f);
        let timeout = self
            .integer(&f, "timeout-seconds", 1, MAX_TIMEOUT_SECONDS)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        let keep_until_done = self.boolean(&f, "keep-until-done").unwrap_or(false);
        Some(OnFinish {
            command: command?,
            timeout: Duration::from_secs(timeout),
            keep_until_done,
        })
    }

    /// `command`: a non-empty list of strings, checked.
    fn hook_command(&mut self, f: &Fields) -> Option<Vec<String>> {
        let path = f.at("command");
        let Some(value) = f.get("command") else {
            self.missing(f, "command", "");
            return None;
        };
        let Yaml::List(items) = value else {
            self.wrong_type(
                &path,
                "a list: the program and its arguments, e.g. [\"rsync\", \"-a\", \"{file}\", \"/backup/\"]",
                value,
            );
            return None;
        };
        if items.is_empty() {
            self.report(
                &path,
                "is empty; name the program to run and its arguments".to_owned(),
            );
            return None;
        }
        let mut argv = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let at = child(&path, Seg::Index(i));
            let Yaml::Str(arg) = item else {
                self.wrong_type(&at, "a string", item);
                ok = false;
                continue;
            };
            for name in unknown_placeholders(arg) {
                self.report(
                    &at,
                    format!(
                        "unknown placeholder `{{{name}}}`; the placeholders are {{file}}, {{stream}} and {{day}}"
                    ),
                );
                ok = false;
            }
            argv.push(arg.clone());
        }
        if let Some(program) = argv.first() {
            let at = child(&path, Seg::Index(0));
            if program.is_empty() {
                self.report(&at, "the program is an empty string".to_owned());
                ok = false;
            } else if program.starts_with('/') {
                if !Path::new(program).is_file() {
                    self.report(&at, format!("program `{program}` does not exist"));
                    ok = false;
                }
            } else if program.contains('/') {
                self.report(
                    &at,
                    format!(
                        "program `{program}` is a relative path; give an absolute path or a name found on PATH"
                    ),
                );
                ok = false;
            } else {
                let path_var = std::env::var("PATH").unwrap_or_default();
                if !on_path(program, &path_var) {
                    self.report(
                        &at,
                        format!(
                            "program `{program}` is not on PATH; give an absolute path or install it"
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn yaml(top: &str, stream: &str) -> String {
        format!(
            "data-folder: /tmp/x\n{top}streams:\n  - topic: \"#\"\n    prefix: a\n{stream}  - topic: \"#\"\n    prefix: b\n"
        )
    }

    #[test]
    fn a_streams_hook_replaces_the_top_level_one_and_defaults_apply() {
        let top = "on-finish:\n  command: [\"true\", \"{file}\"]\n";
        let own = "    on-finish:\n      command: [\"/bin/sh\", \"-c\", \"x\", \"{day}\"]\n      timeout-seconds: 20\n      keep-until-done: true\n";
        let c = parse(&yaml(top, own), Path::new("c.yaml")).unwrap();
        let a = c.streams[0].on_finish.as_ref().unwrap();
        assert_eq!(a.command, ["/bin/sh", "-c", "x", "{day}"]);
        assert_eq!((a.timeout.as_secs(), a.keep_until_done), (20, true));
        let b = c.streams[1].on_finish.as_ref().unwrap();
        assert_eq!(b.command, ["true", "{file}"]);
        assert_eq!((b.timeout.as_secs(), b.keep_until_done), (300, false));
    }

    #[test]
    fn no_on_finish_means_no_hook() {
        let c = parse(&yaml("", ""), Path::new("c.yaml")).unwrap();
        assert!(c.streams.iter().all(|s| s.on_finish.is_none()));
    }

    #[test]
    fn an_empty_command_an_unknown_program_and_an_unknown_placeholder_name_key_and_line() {
        let top = "on-finish:\n  command: []\n";
        let own =
            "    on-finish:\n      command: [\"attic-no-such-program\", \"{file}\", \"{host}\"]\n";
        let e = parse(&yaml(top, own), Path::new("c.yaml")).unwrap_err();
        let shown: Vec<(String, Option<usize>)> =
            e.problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            shown,
            [
                ("on-finish.command".to_owned(), Some(3)),
                ("streams[0].on-finish.command[2]".to_owned(), Some(8)),
                ("streams[0].on-finish.command[0]".to_owned(), Some(8)),
            ]
        );
        let text = e.to_string();
        assert!(text.contains("is empty"), "{text}");
        assert!(text.contains("unknown placeholder `{host}`"), "{text}");
        assert!(text.contains("is not on PATH"), "{text}");
    }

    #[test]
    fn a_relative_path_as_program_is_refused() {
        let top = "on-finish:\n  command: [\"./ship.sh\"]\n";
        let e = parse(&yaml(top, ""), Path::new("c.yaml")).unwrap_err();
        assert_eq!(e.problems[0].key, "on-finish.command[0]");
        assert!(e.to_string().contains("relative path"), "{e}");
    }

    #[test]
    fn braces_that_are_not_placeholders_are_left_alone() {
        assert!(unknown_placeholders("{file}.{day}/{stream}").is_empty());
        assert!(unknown_placeholders("awk '{ print $1 }'").is_empty());
        assert_eq!(unknown_placeholders("{files}"), ["files"]);
    }
}
