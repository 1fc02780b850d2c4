//! `Attic`: the binary under test as a child process. Its config, its
//! combined stdout+stderr log and its `--ready-file` live in the test's
//! `TempDir`; dropping it kills the process and, if the test failed, prints
//! the log's tail. `wait_ready` is how a test knows every stream is
//! subscribed (the ready file, not a log line).

use super::{TempDir, tail, wait_for};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// The binary Cargo built for this test run.
pub const ATTIC_EXE: &str = env!("CARGO_BIN_EXE_attic");

/// How long `stop()` allows for a graceful exit (the spec promises 2 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `run_attic` lets a one-shot command run.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `attic run --config FILE`.
#[derive(Debug)]
pub struct Attic {
    /// The process; reaped once `wait_exit` saw it exit.
    child: Child,
    /// Exit status once known.
    status: Option<ExitStatus>,
    /// The config file it was started with.
    config_path: PathBuf,
    /// Combined stdout and stderr of this run.
    log_path: PathBuf,
    /// Its `--ready-file`: exists once every stream has subscribed.
    ready_path: PathBuf,
}

/// Keeps Attic's environment independent of the one the tests run in.
///
/// When the tests run for another architecture under qemu-user (see
/// `.cargo/config.toml`), `ATTIC_TEST_RUNNER` holds the emulator command
/// (such as `qemu-arm -L /usr/arm-linux-gnueabihf`): the binary is started
/// through it, because the kernel cannot execute it directly.
pub fn base_command() -> Command {
    prefixed_command(&[])
}

/// [`base_command`] run through `prefix` (such as `ip netns exec NAME`,
/// which execs the rest, so the child's pid is still attic's or the
/// emulator's).
pub fn prefixed_command(prefix: &[&str]) -> Command {
    let runner = std::env::var("ATTIC_TEST_RUNNER").unwrap_or_default();
    let mut words = prefix
        .iter()
        .copied()
        .chain(runner.split_whitespace())
        .chain([ATTIC_EXE]);
    let mut cmd = Command::new(words.next().unwrap_or(ATTIC_EXE));
    cmd.args(words);
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .stdin(Stdio::null());
    cmd
}

/// First `dir/<stem>-<k>.<ext>` that does not exist yet (one per start).
fn fresh_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|k| dir.join(format!("{stem}-{k}.{ext}")))
        .find(|p| !p.exists())
        .expect("an unused file name")
}

impl Attic {
    /// Writes `config_yaml` to `dir/attic-<k>.yaml` and spawns
    /// `attic run --config` on it, with `dir` as working directory.
    pub fn start(config_yaml: &str, dir: &TempDir) -> Attic {
        let config_path = fresh_path(dir.path(), "attic", "yaml");
        std::fs::write(&config_path, config_yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        Attic::start_with_config_file(&config_path, dir)
    }

    /// Like [`Attic::start`], with extra environment variables (such as
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC` or `JOURNAL_STREAM`, which are
    /// otherwise removed).
    pub fn start_with_env(config_yaml: &str, dir: &TempDir, env: &[(&str, &str)]) -> Attic {
        let config_path = fresh_path(dir.path(), "attic", "yaml");
        std::fs::write(&config_path, config_yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        Attic::spawn(&config_path, dir, env)
    }

    /// Spawns `attic run --config <config_path>` on an existing file.
    pub fn start_with_config_file(config_path: &Path, dir: &TempDir) -> Attic {
        Attic::spawn(config_path, dir, &[])
    }

    /// Like [`Attic::start`], with more `attic run` arguments after
    /// `--config FILE --ready-file FILE` (e.g. `--summary`, `--stop-after`).
    pub fn start_with_args(config_yaml: &str, dir: &TempDir, args: &[&str]) -> Attic {
        let config_path = fresh_path(dir.path(), "attic", "yaml");
        std::fs::write(&config_path, config_yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        Attic::spawn_with_args(&config_path, dir, &[], args)
    }

    /// Like [`Attic::start`], run through `prefix` (`ip netns exec NAME`).
    pub fn start_with_prefix(config_yaml: &str, dir: &TempDir, prefix: &[&str]) -> Attic {
        let config_path = fresh_path(dir.path(), "attic", "yaml");
        std::fs::write(&config_path, config_yaml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        Attic::spawn_full(&config_path, dir, prefix, &[], &[])
    }

    fn spawn(config_path: &Path, dir: &TempDir, env: &[(&str, &str)]) -> Attic {
        Attic::spawn_with_args(config_path, dir, env, &[])
    }

    fn spawn_with_args(
        config_path: &Path,
        dir: &TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Attic {
        Attic::spawn_full(config_path, dir, &[], env, args)
    }

    fn spawn_full(
        config_path: &Path,
        dir: &TempDir,
        prefix: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Attic {
        let log_path = fresh_path(dir.path(), "attic", "log");
        let ready_path = log_path.with_extension("ready.json");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let child = prefixed_command(prefix)
            .envs(env.iter().copied())
            .arg("run")
            .arg("--config")
            .arg(config_path)
            .arg("--ready-file")
            .arg(&ready_path)
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {ATTIC_EXE}: {e}"));
        Attic {
            child,
            status: None,
            config_path: config_path.to_path_buf(),
            log_path,
            ready_path,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Path of the combined stdout+stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Its `--ready-file`.
    pub fn ready_path(&self) -> &Path {
        &self.ready_path
    }

    /// Waits until the ready file exists, i.e. every stream's first
    /// subscription is acknowledged, and returns its JSON; panics (quoting
    /// the log) on timeout or if attic exits first.
    pub fn wait_ready(&mut self, timeout: Duration) -> serde_json::Value {
        let what = format!(
            "the ready file {} (log {})",
            self.ready_path.display(),
            self.log_path.display()
        );
        let text = wait_for(timeout, what, || {
            if let Ok(text) = std::fs::read_to_string(&self.ready_path) {
                return Some(text);
            }
            if let Some(status) = self.poll_exit() {
                panic!(
                    "attic exited ({status}) before writing its ready file (log: {}):\n{}",
                    self.log_path.display(),
                    tail(&self.log(), 40)
                );
            }
            None
        });
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("ready file is not JSON ({e}): {text:?}"))
    }

    /// The config file it runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything it printed so far (stdout and stderr, interleaved).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends a signal (`libc::SIGTERM`, `SIGINT`, `SIGHUP`, `SIGKILL`, ...).
    /// Panics if the process has already been reaped.
    pub fn signal(&mut self, sig: libc::c_int) {
        assert!(
            self.status.is_none(),
            "cannot send signal {sig}: attic already exited with {:?} (log: {})",
            self.status,
            self.log_path.display()
        );
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: the child is not reaped yet (status is None), so `pid` is ours.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.poll_exit() {
                return Some(s);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then wait up to 5 s; panics (quoting the log) if it hangs.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.poll_exit() {
            return s;
        }
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(s) => s,
            None => panic!(
                "attic did not exit within {STOP_TIMEOUT:?} of SIGTERM (log: {}):\n{}",
                self.log_path.display(),
                tail(&self.log(), 40)
            ),
        }
    }

    /// `stop()` and assert a clean exit (code 0).
    pub fn stop_clean(&mut self) {
        let s = self.stop();
        assert_eq!(
            s.code(),
            Some(0),
            "attic stopped with {s} instead of exit code 0 (log: {}):\n{}",
            self.log_path.display(),
            tail(&self.log(), 40)
        );
    }

    /// Waits until the log contains `text`; panics (quoting the log) on
    /// timeout or if attic exits without printing it.
    pub fn wait_log_contains(&mut self, text: &str, timeout: Duration) {
        let log_path = self.log_path.display().to_string();
        let mut exited = None;
        wait_for(
            timeout,
            format_args!("{text:?} in attic's log {log_path}"),
            || {
                if self.log().contains(text) {
                    return Some(());
                }
                // Read the log once more after exit: the text may be its last line.
                exited = self.poll_exit();
                exited.map(|_| ())
            },
        );
        if let Some(status) = exited {
            if !self.log().contains(text) {
                panic!(
                    "attic exited ({status}) without logging {text:?} (log: {log_path}):\n{}",
                    tail(&self.log(), 40)
                );
            }
        }
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on attic");
        }
        self.status
    }
}

impl Drop for Attic {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- attic log {} (last 40 lines) ----\n{}\n----",
                self.log_path.display(),
                tail(&self.log(), 40)
            );
        }
    }
}

/// Spawns `attic ARGS` (a one-shot command the test watches and stops,
/// such as a replay that keeps retrying) with `dir` as working directory
/// and stdout+stderr in the returned log file. The caller reaps it.
pub fn spawn_attic_in(dir: &TempDir, args: &[&str]) -> (Child, PathBuf) {
    let log_path = fresh_path(dir.path(), "attic-spawn", "log");
    let log = File::create(&log_path).expect("create log file");
    let child = base_command()
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {ATTIC_EXE}: {e}"));
    (child, log_path)
}

/// Runs `attic ARGS` to completion (`check`, `--help`, bad configs) in the
/// current directory; panics if it runs longer than 20 s.
pub fn run_attic(args: &[&str]) -> Output {
    let scratch = TempDir::new("attic-run");
    run(args, None, &scratch)
}

/// Like [`run_attic`], with `dir` as working directory (relative paths and
/// the default `config/config.yaml` resolve there).
pub fn run_attic_in(dir: &TempDir, args: &[&str]) -> Output {
    run(args, Some(dir.path()), dir)
}

fn run(args: &[&str], cwd: Option<&Path>, scratch: &TempDir) -> Output {
    let out_path = fresh_path(scratch.path(), "attic-run", "stdout");
    let err_path = out_path.with_extension("stderr");
    let mut cmd = base_command();
    cmd.args(args)
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"));
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {ATTIC_EXE}: {e}"));
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait on attic") {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {RUN_TIMEOUT:?} waiting for `attic {}` to exit (output in {})",
                args.join(" "),
                scratch.path().display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}
