//! Supervise mode (`--supervise`): agent-init as a real PID 1, in a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`), and as a child subreaper
//! when it is not PID 1. Also the exec-mode half of signal-state
//! transparency. Run as root (CI is); a missing tool fails a test, it never
//! skips it.
//!
//! Every wait below is a hang guard ([`PATIENCE`]), never a timing assertion.
//! One test binary; a module per behaviour, the shared machinery (tools,
//! command lines, a running [`Agent`], a signal [`Recorder`]) here, and
//! /proc through `support::procfs`.

#[path = "../support/mod.rs"]
mod support;

mod exit_status;
mod forwarding;
mod launchers;
mod memory;
mod process_state;
mod reaping;
mod terminal;

use agent_init::protocol::token::{b64u, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::procfs::{
    alive, bits, children, comm, descendants, find, in_signal_wait, needle, read_memory, sigmask,
    stat,
};

/// How long anything may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// The synchronous fault signals, which agent-init never forwards.
const FAULTS: [i32; 7] = [
    Signal::SIGILL as i32,
    Signal::SIGTRAP as i32,
    Signal::SIGABRT as i32,
    Signal::SIGBUS as i32,
    Signal::SIGFPE as i32,
    Signal::SIGSEGV as i32,
    Signal::SIGSYS as i32,
];

/// The job-control stops, after which agent-init stops itself.
const JOB_STOPS: [i32; 3] = [
    Signal::SIGTSTP as i32,
    Signal::SIGTTIN as i32,
    Signal::SIGTTOU as i32,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// PID 1 of a fresh PID namespace.
    Pid1,
    /// An ordinary process on the host, which makes itself a child subreaper.
    Subreaper,
}
use Mode::{Pid1, Subreaper};
const MODES: [Mode; 2] = [Pid1, Subreaper];

// ---------------------------------------------------------------------------
// Tools and command lines.

/// Fails the test unless `tool` is on PATH.
fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "the supervise tests need `{tool}` on PATH (scripts/test.sh installs it)"
    );
}

/// The real Python interpreter (not a pyenv shim, which needs its own environment).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("the supervise tests need python3 on PATH");
        assert!(out.status.success(), "python3 does not run");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// The name the kernel shows for the Python interpreter (`comm`).
fn python_comm() -> String {
    let name = python().file_name().unwrap().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

fn helper(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/supervise_helpers")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// The argv that runs agent-init with `flags`, then `--`, then `command`.
fn agent_argv(mode: Mode, flags: &[&str], command: &[&str]) -> Vec<OsString> {
    agent_argv_via(mode, &[], flags, command)
}

/// As [`agent_argv`], with agent-init started by `via`, a program that
/// changes the process state and execs the rest of its arguments (inside
/// the new namespace, so that nothing but `via` stands between it and
/// agent-init).
fn agent_argv_via(mode: Mode, via: &[&str], flags: &[&str], command: &[&str]) -> Vec<OsString> {
    let mut v = Vec::new();
    if mode == Pid1 {
        need("unshare");
        v.extend(os(&[
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ]));
    }
    v.extend(os(via));
    v.push(support::bin().into_os_string());
    v.extend(os(flags));
    v.push("--".into());
    v.extend(os(command));
    v
}

/// `prefix` (a program that execs the rest of its arguments) before `argv`.
fn wrapped(prefix: &[&str], argv: Vec<OsString>) -> Vec<OsString> {
    let mut v = os(prefix);
    v.extend(argv);
    v
}

/// A command for `argv` with a small, known environment; no input, no stdout,
/// stderr shared with the test (agent-init logs errors only).
fn command(argv: &[OsString]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("AGENT_INIT_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    c
}

/// Waits for `child` to exit; a hang past [`PATIENCE`] kills it and fails.
fn wait_guarded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {PATIENCE:?} (hung)");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` with stdout and stderr piped, hang-guarded as
/// [`wait_guarded`]: its status, stdout and stderr.
fn output_guarded(mut cmd: Command, what: &str) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let st = wait_guarded(&mut child, what);
    (st, out.join().unwrap(), err.join().unwrap())
}

/// Runs `cmd` to completion under the hang guard.
fn run(mut cmd: Command, what: &str) -> ExitStatus {
    let mut child = cmd.spawn().expect("spawn");
    wait_guarded(&mut child, what)
}

/// Polls `f` until it gives a value; fails after [`PATIENCE`] naming `what`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    wait_for(what, || f().then_some(()))
}

/// Sends signal number `n` (real-time ones included) with kill(1).
fn send(pid: Pid, n: i32) {
    match Signal::try_from(n) {
        Ok(sig) => kill(pid, sig).expect("kill"),
        Err(_) => {
            let st = Command::new("kill")
                .arg(format!("-{n}"))
                .arg(pid.to_string())
                .status()
                .expect("kill(1) runs");
            assert!(st.success(), "kill -{n} {pid}");
        }
    }
}

// ---------------------------------------------------------------------------
// A running agent-init.

struct Agent {
    /// What the test started: agent-init itself, or unshare.
    top: Child,
    /// agent-init's pid as the host sees it.
    pid: Pid,
    mode: Mode,
}

impl Agent {
    /// Starts `cmd` (whose argv comes from [`agent_argv`], possibly behind
    /// wrappers that exec, which keeps the pid) and finds agent-init's pid.
    /// As PID 1, that is unshare's child once it no longer runs unshare: it
    /// may already have exec'd the command (exec mode), so its executable
    /// cannot tell. Otherwise it is the process the test started, once it
    /// runs agent-init (supervise mode only). A failure here, as later,
    /// takes the whole tree down (see `Drop`).
    fn start(mode: Mode, mut cmd: Command) -> Agent {
        let top = cmd.spawn().expect("start agent-init");
        drop(cmd);
        let mut agent = Agent {
            top,
            pid: Pid::from_raw(0),
            mode,
        };
        let bin = fs::canonicalize(support::bin()).unwrap();
        let exe = |p: i32| fs::read_link(format!("/proc/{p}/exe")).ok();
        let top_pid = agent.top.id() as i32;
        let deadline = Instant::now() + PATIENCE;
        let pid = loop {
            let found = match mode {
                Pid1 => children(top_pid)
                    .into_iter()
                    .find(|&c| exe(c).is_some() && exe(c) != exe(top_pid)),
                Subreaper => Some(top_pid).filter(|&p| exe(p).as_ref() == Some(&bin)),
            };
            if let Some(p) = found {
                break p;
            }
            if let Some(st) = agent.top.try_wait().unwrap() {
                panic!("agent-init ended before it could be observed: {st}");
            }
            assert!(Instant::now() < deadline, "agent-init never started");
            std::thread::sleep(Duration::from_millis(1));
        };
        agent.pid = Pid::from_raw(pid);
        agent
    }

    fn raw(&self) -> i32 {
        self.pid.as_raw()
    }

    fn signal(&self, n: i32) {
        send(self.pid, n);
    }

    /// The command agent-init started, once it runs `comm`.
    fn command_pid(&self, comm_is: &str) -> i32 {
        wait_for(&format!("agent-init's child to run {comm_is}"), || {
            children(self.raw())
                .into_iter()
                .find(|&c| comm(c) == comm_is)
        })
    }

    /// Waits until agent-init is idle in its signal loop: the spawn, the
    /// scrubbing and the hygiene steps are done.
    fn wait_idle(&self) {
        until("agent-init to sit in its signal loop", || {
            in_signal_wait(self.raw())
        });
    }

    fn running(&mut self) -> bool {
        self.top.try_wait().unwrap().is_none()
    }

    /// SIGTERM to agent-init, and its exit code once it has ended.
    fn stop(&mut self) -> Option<i32> {
        self.signal(Signal::SIGTERM as i32);
        self.wait().code()
    }

    /// agent-init's exit status (unshare passes it through).
    fn wait(&mut self) -> ExitStatus {
        let what = format!("agent-init ({:?})", self.mode);
        wait_guarded(&mut self.top, &what)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Only after a failed assertion: take the whole tree down.
        if let Ok(None) = self.top.try_wait() {
            if self.raw() > 0 {
                for p in descendants(self.raw()) {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                let _ = kill(self.pid, Signal::SIGKILL);
            }
            let _ = self.top.kill();
            let _ = self.top.wait();
        }
    }
}

/// `agent-init --supervise` in `mode` running a [`Recorder`] named `name`,
/// once the recorder is ready and agent-init idle in its signal loop.
fn recording(mode: Mode, name: &str) -> (Recorder, Agent) {
    let rec = Recorder::new(name);
    let argv = agent_argv(mode, &["--supervise"], &strs(&rec.argv()));
    let agent = Agent::start(mode, command(&argv));
    rec.wait_ready();
    agent.wait_idle();
    (rec, agent)
}

/// The Python child that records each signal it receives
/// (`tests/supervise_helpers/record_signals.py`).
struct Recorder {
    record: PathBuf,
    ready: PathBuf,
    stop: PathBuf,
}

impl Recorder {
    fn new(name: &str) -> Recorder {
        let dir = support::scratch(name);
        Recorder {
            record: dir.join("record"),
            ready: dir.join("ready"),
            stop: dir.join("stop"),
        }
    }

    fn argv(&self) -> Vec<String> {
        vec![
            python().to_string_lossy().into_owned(),
            helper("record_signals.py"),
            self.record.to_string_lossy().into_owned(),
            self.ready.to_string_lossy().into_owned(),
            self.stop.to_string_lossy().into_owned(),
        ]
    }

    /// Waits until every handler is installed.
    fn wait_ready(&self) {
        until("the recorder to install its handlers", || {
            self.ready.exists()
        });
    }

    fn counts(&self) -> BTreeMap<i32, usize> {
        let mut m = BTreeMap::new();
        for l in fs::read_to_string(&self.record).unwrap_or_default().lines() {
            *m.entry(l.parse().unwrap()).or_default() += 1;
        }
        m
    }

    fn count(&self, sig: i32) -> usize {
        self.counts().get(&sig).copied().unwrap_or(0)
    }

    fn wait_count(&self, sig: i32, n: usize) {
        until(&format!("the child to receive signal {sig} x{n}"), || {
            self.count(sig) >= n
        });
    }

    fn stop(&self) {
        fs::write(&self.stop, b"").unwrap();
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
