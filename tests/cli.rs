//! The command line as a shell user meets it: output into a pipe that the
//! reader closed early (`attic --help | head -1`) is a normal end, not a
//! panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TempDir;
use common::attic::base_command;
use std::process::Stdio;

/// Runs attic with `args` writing into a pipe whose reading end is already
/// closed, as `| head -1` does once it has its line; returns the exit code
/// and stderr.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are new and owned by nobody else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = base_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_version_and_check_into_a_closed_pipe_end_quietly_with_success() {
    let dir = TempDir::new("cli-pipe");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data-folder: {}\nstreams:\n  - topic: \"#\"\n    prefix: p\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_owned();
    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["check", "--config", &cfg],
        vec!["export", "--help"],
        vec!["replay", "--help"],
    ] {
        let (code, err) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "attic {args:?}: {err}");
        assert!(!err.contains("panicked"), "attic {args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "attic {args:?}: {err}");
    }
}
