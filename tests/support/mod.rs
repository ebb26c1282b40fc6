//! Test support shared by every integration test: running the built
//! binary, capturing the exact environment its command received, and
//! checking that a failure started nothing and leaked nothing.
//!
//! Submodules (each owned by the tests that need it) add servers and tools.
#![allow(dead_code)]

/// Sealed test bundles and the token strings that must never be printed.
pub mod bundle;
/// What must never be printed: the one definition.
pub mod forbidden;
/// The one fixture: a run's directory, marker, capture, environment.
pub mod harness;
/// Reading /proc: process state, signal masks, environ, memory scans.
pub mod procfs;
/// A loopback HTTP CONNECT proxy.
pub mod proxy;
/// The bridge to python-dotenv, the dotenv reference.
pub mod python_dotenv;
/// An agent-init the test started and keeps talking to.
pub mod running;
/// The scriptable HTTPS secrets server.
pub mod server;
/// A real agent-secrets service and its CLI.
pub mod service;
/// A test CA and server certificates, good and bad.
pub mod tls;
/// The workspace's binaries and scratch directories (shared with service/tests).
pub mod workspace;

#[allow(unused_imports)]
pub use forbidden::Forbidden;
#[allow(unused_imports)]
pub use harness::Harness;
#[allow(unused_imports)]
pub use workspace::scratch;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `PATH` every run inherits (and so its command receives).
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The agent-init binary under test: the one `AGENT_INIT_BIN` names (a
/// relative path is taken from the crate root), else the one `cargo test`
/// built. `scripts/test.sh` sets it to the release binary, the one that
/// ships, for the suites whose promises are about memory, signals,
/// environment and output.
pub fn bin() -> PathBuf {
    workspace::agent_init()
}

/// Fails the test, saying so, unless it runs as root: a test that needs
/// root (for `what`) is `#[ignore]`d and run by scripts/test.sh, never
/// skipped.
#[track_caller]
pub fn needs_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for {what}"
    );
}

/// The full path of a system tool (the runs' PATH has no sbin directory).
pub fn system_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// Polls `done` until it holds; fails after `patience` with `explain()`.
/// A bound against hanging forever, never a timing assertion.
#[track_caller]
pub fn wait_until(
    patience: std::time::Duration,
    mut done: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) {
    let every = std::time::Duration::from_millis(50);
    wait_for(patience, every, || done().then_some(()), explain)
}

/// A command line for agent-init's child that records it started (by
/// creating `marker`) and writes its exact initial environment block
/// (`/proc/self/environ`, byte for byte) to `out`.
pub fn capture_command(marker: &Path, out: &Path) -> Vec<OsString> {
    vec![
        "python3".into(),
        "-c".into(),
        "import sys\nopen(sys.argv[1], 'w').close()\nopen(sys.argv[2], 'wb').write(open('/proc/self/environ', 'rb').read())".into(),
        marker.into(),
        out.into(),
    ]
}

/// Parses a captured environment block into `NAME=VALUE` byte strings, in order.
pub fn read_captured(out: &Path) -> Vec<Vec<u8>> {
    let raw = std::fs::read(out).expect("the command wrote its environment");
    raw.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// A builder for one agent-init run with an empty base environment.
pub struct Run {
    pub cmd: Command,
}

impl Run {
    /// agent-init with only `PATH` inherited, in `cwd`.
    pub fn new(cwd: &Path) -> Run {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", PATH)
            .current_dir(cwd)
            .stdin(Stdio::null());
        Run { cmd }
    }
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }
    pub fn args<I, S>(mut self, a: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(a);
        self
    }
    pub fn output(mut self) -> Output {
        self.cmd.output().expect("agent-init runs")
    }
}

/// Asserts the two invariants of every failure: the command never started
/// (no marker) and none of `secrets` appears in stdout or stderr.
pub fn assert_failed_cleanly(out: &Output, code: i32, marker: &Path, secrets: &[&str]) {
    assert_failed_at(out, code, marker, &forbid(secrets));
}

/// [`assert_failed_cleanly`] with a [`Forbidden`]: exit `code`, no marker,
/// every stderr line prefixed, nothing forbidden printed.
pub fn assert_failed_at(out: &Output, code: i32, marker: &Path, forbidden: &Forbidden) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr: {stderr}"
    );
    assert!(
        !marker.exists(),
        "the command must not start; stderr: {stderr}"
    );
    forbidden.assert_not_printed(out);
    assert!(
        stderr.lines().all(|l| l.starts_with("agent-init:")),
        "every stderr line is prefixed: {stderr}"
    );
}

/// Asserts that `out` exited `code` and its stderr says `says`.
#[track_caller]
pub fn assert_exit_says(out: &Output, code: i32, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(says), "{err}");
}

/// Asserts that `out`'s stderr says `says`.
#[track_caller]
pub fn assert_says(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(says), "{err}");
}

/// Asserts that none of `secrets` appears in stdout or stderr.
pub fn assert_no_leak(out: &Output, secrets: &[&str]) {
    forbid(secrets).assert_not_printed(out);
}

/// `secrets` as a [`Forbidden`]; an empty one is a mistake in the test.
fn forbid(secrets: &[&str]) -> Forbidden {
    assert!(
        secrets.iter().all(|s| !s.is_empty()),
        "an empty string cannot be checked for"
    );
    secrets.iter().collect()
}

/// Asks `probe` every `every` until it answers, and returns the answer; after
/// `patience` fails the test with `why()`. A hang guard, never a timing
/// assertion.
#[track_caller]
pub fn wait_for<T>(
    patience: std::time::Duration,
    every: std::time::Duration,
    mut probe: impl FnMut() -> Option<T>,
    why: impl FnOnce() -> String,
) -> T {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(answer) = probe() {
            return answer;
        }
        assert!(t0.elapsed() < patience, "{}", why());
        std::thread::sleep(every);
    }
}

/// `#[test]` fns, each named for the behaviour it proves and each one call
/// of the parameterized `runner`, all `#[ignore]`d for `reason`
/// (scripts/test.sh runs them with `--include-ignored`):
/// `ignored_tests! { "needs …"; runner: name(args…); … }`.
#[macro_export]
macro_rules! ignored_tests {
    ($reason:tt; $runner:ident: $($name:ident($($arg:expr),*);)+) => {$(
        #[test]
        #[ignore = $reason]
        fn $name() {
            $runner($($arg),*);
        }
    )+};
}
