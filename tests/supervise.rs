//! Supervise mode (`--supervise`): agent-init as a real PID 1, in a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`), and as a child subreaper
//! when it is not PID 1. Also the exec-mode half of signal-state
//! transparency. Run as root (CI is); a missing tool fails a test, it never
//! skips it.
//!
//! Every wait below is a hang guard ([`PATIENCE`]), never a timing assertion.

mod support;

use agent_init::token::{b64u, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long anything may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// The synchronous fault signals, which agent-init never forwards.
const FAULTS: [i32; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

/// The job-control stops, after which agent-init stops itself.
const JOB_STOPS: [i32; 3] = [20, 21, 22]; // TSTP TTIN TTOU

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
// /proc.

/// Fields of /proc/PID/stat (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    pgrp: i32,
    tpgid: i32,
    starttime: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s[s.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: f[0].chars().next()?,
        pgrp: f[2].parse().ok()?,
        tpgid: f[5].parse().ok()?,
        starttime: f[19].parse().ok()?,
    })
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Children of single-threaded `pid`, zombies included.
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = children(pid);
    while let Some(p) = todo.pop() {
        todo.extend(children(p));
        out.push(p);
    }
    out
}

/// Whether the process `pid` started at `starttime` still runs (not a zombie).
fn alive(pid: i32, starttime: u64) -> bool {
    stat(pid).is_some_and(|s| s.starttime == starttime && !matches!(s.state, 'Z' | 'X'))
}

/// Whether `pid` sits in sigtimedwait, i.e. agent-init's loop, idle.
fn in_signal_wait(pid: i32) -> bool {
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    if wchan.contains("sigtimedwait") {
        return true;
    }
    let syscall = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    syscall.split_whitespace().next() == Some(&nix::libc::SYS_rt_sigtimedwait.to_string())
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_string()
}

fn sigmask(status: &str, field: &str) -> u64 {
    u64::from_str_radix(&status_field(status, field), 16).unwrap()
}

fn bits(sigs: &[i32]) -> u64 {
    sigs.iter().fold(0, |m, s| m | 1 << (s - 1))
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

// ---------------------------------------------------------------------------
// Exit status.

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn exit_status_is_the_commands_own_for_every_code_0_to_255() {
    for mode in MODES {
        for code in 0..=255 {
            let script = format!("exit {code}");
            let argv = agent_argv(mode, &["--supervise"], &["sh", "-c", &script]);
            let st = run(command(&argv), &format!("exit {code} ({mode:?})"));
            assert_eq!(st.code(), Some(code), "{mode:?}: sh -c 'exit {code}'");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_command_that_cannot_start_is_127_or_126_and_agent_init_does_not_hang() {
    for mode in MODES {
        for (cmd, code, why) in [
            ("/nonexistent/agent", 127, "No such file or directory"),
            ("/etc", 126, "Permission denied"),
        ] {
            let mut c = command(&agent_argv(mode, &["--supervise"], &[cmd]));
            c.stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            let st = wait_guarded(&mut child, "spawn failure");
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert_eq!(st.code(), Some(code), "{mode:?}: {cmd}: {err}");
            assert!(err.contains(&format!("{cmd}: {why}")), "{mode:?}: {err}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn forwarded_signals_with_default_action_give_128_plus_n() {
    let table = [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
        (Signal::SIGQUIT, 131),
        (Signal::SIGUSR1, 138),
        (Signal::SIGUSR2, 140),
    ];
    let dir = support::scratch("default-action");
    for mode in MODES {
        for flags in [&["--supervise"][..], &["--supervise", "--signal-child"]] {
            for (sig, code) in table {
                // `sleep` keeps every default action; the cwd takes any core file.
                let mut cmd = command(&agent_argv(mode, flags, &["sleep", "600"]));
                cmd.current_dir(&dir);
                let mut agent = Agent::start(mode, cmd);
                // Sent before the child runs, the signal would end agent-init
                // through its early handler, with the same code.
                agent.command_pid("sleep");
                agent.wait_idle();
                agent.signal(sig as i32);
                assert_eq!(agent.wait().code(), Some(code), "{mode:?} {flags:?} {sig}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Forwarding.

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn every_catchable_signal_reaches_a_handling_child_exactly_once_and_sigchld_never() {
    for mode in MODES {
        let rec = Recorder::new("every-signal");
        let argv = agent_argv(mode, &["--supervise"], &strs(&rec.argv()));
        let mut agent = Agent::start(mode, command(&argv));
        rec.wait_ready();
        agent.wait_idle();

        let mut forwarded = Vec::new();
        for n in 1..=31 {
            if n == Signal::SIGKILL as i32 || n == Signal::SIGSTOP as i32 {
                continue; // cannot be caught, so cannot be forwarded
            }
            if FAULTS.contains(&n) {
                continue; // see fault_signals_* below
            }
            if JOB_STOPS.contains(&n) {
                continue; // agent-init stops itself: see job_control_* below
            }
            agent.signal(n);
            if n != Signal::SIGCHLD as i32 {
                rec.wait_count(n, 1);
                forwarded.push(n);
            }
        }
        // A barrier: agent-init forwards in order, so anything it sent
        // before this (a duplicate, a SIGCHLD) reached the child before it.
        let rtmin = nix::libc::SIGRTMIN();
        agent.signal(rtmin);
        rec.wait_count(rtmin, 1);

        let counts = rec.counts();
        for n in &forwarded {
            assert_eq!(counts.get(n), Some(&1), "{mode:?}: signal {n} arrives once");
        }
        assert_eq!(
            counts.get(&(Signal::SIGCHLD as i32)),
            None,
            "{mode:?}: SIGCHLD is never forwarded"
        );
        assert_eq!(forwarded.len(), 18, "{mode:?}: {forwarded:?}");
        assert!(agent.running(), "{mode:?}: agent-init survives them all");
        rec.stop();
        assert_eq!(agent.wait().code(), Some(0), "{mode:?}");
    }
}

/// What a parent waiting with `WUNTRACED | WCONTINUED` sees of `pid` next:
/// `Some(true)` stopped, `Some(false)` continued, polling until
/// [`PATIENCE`] (a parent that blocks in waitpid would hang instead).
fn wait_stopped_or_continued(pid: Pid) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED | WaitPidFlag::WNOHANG;
    wait_for(
        "agent-init to stop or continue (waitpid WUNTRACED)",
        || match waitpid(pid, Some(flags)).expect("waitpid") {
            WaitStatus::Stopped(_, sig) => {
                assert_eq!(sig, Signal::SIGSTOP, "agent-init stops itself with SIGSTOP");
                Some(true)
            }
            WaitStatus::Continued(_) => Some(false),
            WaitStatus::StillAlive => None,
            other => panic!("agent-init neither stopped nor continued: {other:?}"),
        },
    )
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn job_control_sigtstp_sigttin_and_sigttou_stop_agent_init_and_its_child_and_sigcont_resumes_both()
{
    // dumb-init's test_shell_background_support: a shell that sends one of
    // these (Ctrl-Z, a background job touching the terminal) waits with
    // WUNTRACED until its job stops. The child keeps every default action,
    // so it stops too.
    let argv = agent_argv(Subreaper, &["--supervise"], &["sleep", "600"]);
    let mut agent = Agent::start(Subreaper, command(&argv));
    let child = agent.command_pid("sleep");
    agent.wait_idle();
    let state = |p: i32| stat(p).unwrap().state;
    for n in JOB_STOPS {
        assert!(
            matches!(state(agent.raw()), 'S' | 'R'),
            "signal {n}: agent-init runs"
        );
        agent.signal(n);
        assert!(
            wait_stopped_or_continued(agent.pid),
            "signal {n}: agent-init stops"
        );
        until(&format!("signal {n}: the child to stop"), || {
            state(child) == 'T'
        });
        assert_eq!(state(agent.raw()), 'T', "signal {n}");

        agent.signal(Signal::SIGCONT as i32);
        assert!(
            !wait_stopped_or_continued(agent.pid),
            "signal {n}: agent-init continues"
        );
        // The child continues once agent-init has forwarded SIGCONT.
        until(&format!("signal {n}: the child to continue"), || {
            matches!(state(child), 'S' | 'R')
        });
        agent.wait_idle();
    }
    agent.signal(Signal::SIGTERM as i32);
    assert_eq!(agent.wait().code(), Some(143));
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn job_control_signals_and_sigcont_are_forwarded_once_and_pid1_keeps_running() {
    // dumb-init's test_prints_signals: a child that handles the signals gets
    // each once, and the SIGCONT that resumes agent-init once. As PID 1 the
    // kernel drops the stop agent-init sends itself, so it keeps running.
    for mode in MODES {
        let rec = Recorder::new("job-control");
        let argv = agent_argv(mode, &["--supervise"], &strs(&rec.argv()));
        let mut agent = Agent::start(mode, command(&argv));
        rec.wait_ready();
        agent.wait_idle();
        let cont = Signal::SIGCONT as i32;
        for (k, n) in JOB_STOPS.into_iter().enumerate() {
            agent.signal(n);
            rec.wait_count(n, 1);
            if mode == Subreaper {
                assert!(wait_stopped_or_continued(agent.pid), "signal {n}: stopped");
            } else {
                agent.wait_idle();
                assert_ne!(
                    stat(agent.raw()).unwrap().state,
                    'T',
                    "signal {n}: PID 1 runs"
                );
            }
            agent.signal(cont);
            rec.wait_count(cont, k + 1);
            if mode == Subreaper {
                assert!(
                    !wait_stopped_or_continued(agent.pid),
                    "signal {n}: continued"
                );
            }
        }
        let counts = rec.counts();
        for n in JOB_STOPS {
            assert_eq!(
                counts.get(&n),
                Some(&1),
                "{mode:?}: signal {n} arrives once"
            );
        }
        assert_eq!(
            counts.get(&cont),
            Some(&3),
            "{mode:?}: each SIGCONT arrives once"
        );
        rec.stop();
        assert_eq!(agent.wait().code(), Some(0), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn fault_signals_are_never_forwarded_dropped_by_pid1_and_deadly_otherwise() {
    // tini's behaviour: the faults are left unblocked at their default
    // action, so a real fault kills agent-init. Sent with kill, the kernel
    // drops them for a namespace's PID 1 (it has no handler), and they kill
    // agent-init when it is not PID 1.
    let rec = Recorder::new("faults-pid1");
    let argv = agent_argv(Pid1, &["--supervise"], &strs(&rec.argv()));
    let mut agent = Agent::start(Pid1, command(&argv));
    rec.wait_ready();
    agent.wait_idle();
    for n in FAULTS {
        agent.signal(n);
    }
    agent.signal(Signal::SIGUSR1 as i32); // barrier
    rec.wait_count(Signal::SIGUSR1 as i32, 1);
    for n in FAULTS {
        assert_eq!(rec.count(n), 0, "PID 1 forwarded fault signal {n}");
    }
    assert!(
        agent.running(),
        "PID 1 survives fault signals sent with kill"
    );
    rec.stop();
    assert_eq!(agent.wait().code(), Some(0));

    for n in FAULTS {
        let rec = Recorder::new("faults-subreaper");
        let argv = agent_argv(Subreaper, &["--supervise"], &strs(&rec.argv()));
        let mut agent = Agent::start(Subreaper, command(&argv));
        rec.wait_ready();
        agent.wait_idle();
        agent.signal(n);
        let st = agent.wait();
        assert_eq!(st.signal(), Some(n), "agent-init dies of fault signal {n}");
        assert!(
            !st.core_dumped(),
            "agent-init (non-dumpable) leaves no core"
        );
        assert_eq!(rec.count(n), 0, "fault signal {n} was forwarded");
        rec.stop(); // the orphaned recorder exits on its own
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn sigterm_leaves_no_process_of_a_pipeline_behind_in_group_mode() {
    for mode in MODES {
        let (survivors, code) = pipeline(mode, &["--supervise"]);
        let names: Vec<String> = survivors.iter().map(|&(p, _)| comm(p)).collect();
        for (p, _) in &survivors {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        assert_eq!(code, Some(143), "{mode:?}: sh ends by SIGTERM");
        assert!(survivors.is_empty(), "{mode:?}: {names:?} survived");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn with_signal_child_only_the_child_gets_sigterm_and_the_pipeline_survives() {
    // The negative control of the test above: what group mode is for.
    let (survivors, code) = pipeline(Subreaper, &["--supervise", "--signal-child"]);
    let names: Vec<String> = survivors.iter().map(|&(p, _)| comm(p)).collect();
    for (p, _) in &survivors {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    assert_eq!(code, Some(143));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["tail", "tail", "yes", "yes"], "{names:?}");
}

/// Runs dumb-init's pipeline, `sh -c 'yes | tail & yes | tail >&2'`, under
/// agent-init, SIGTERMs agent-init once all five processes run; returns the
/// ones still alive after agent-init exited (after waiting for the deaths
/// in group mode) and agent-init's status. (In the variant
/// `yes >&2 | tail`, the last tail reads an empty pipe and ends at once.)
fn pipeline(mode: Mode, flags: &[&str]) -> (Vec<(i32, u64)>, Option<i32>) {
    let argv = agent_argv(mode, flags, &["sh", "-c", "yes | tail & yes | tail >&2"]);
    let mut cmd = command(&argv);
    cmd.stderr(Stdio::null());
    let mut agent = Agent::start(mode, cmd);
    let procs = wait_for("the pipeline's five processes", || {
        let d = descendants(agent.raw());
        let n = |c: &str| d.iter().filter(|&&p| comm(p) == c).count();
        (n("yes") == 2 && n("tail") == 2 && n("sh") >= 1).then_some(d)
    });
    let procs: Vec<(i32, u64)> = procs
        .into_iter()
        .filter_map(|p| stat(p).map(|s| (p, s.starttime)))
        .collect();
    agent.wait_idle();
    agent.signal(Signal::SIGTERM as i32);
    let code = agent.wait().code();
    if !flags.contains(&"--signal-child") {
        // Signalled, they die soon; the caller kills what a failure leaves.
        let deadline = Instant::now() + PATIENCE;
        while procs.iter().any(|&(p, t)| alive(p, t)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let survivors = procs.into_iter().filter(|&(p, t)| alive(p, t)).collect();
    (survivors, code)
}

// ---------------------------------------------------------------------------
// Reaping.

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_hundred_orphaned_grandchildren_are_all_reaped() {
    for mode in MODES {
        let dir = support::scratch("orphans");
        let ready = dir.join("ready");
        let script = format!(
            "( for i in $(seq 100); do sleep 600 & done ); : > {}; exec sleep 600",
            ready.display()
        );
        let mut agent = Agent::start(
            mode,
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", &script])),
        );
        until("the orphans", || ready.exists());
        let main = agent.command_pid("sleep");
        // The subshell has exited, so its 100 children are orphans: the
        // kernel gave them to agent-init (PID 1, or the nearest subreaper).
        let orphans: Vec<i32> = wait_for("100 orphans adopted by agent-init", || {
            let c: Vec<i32> = children(agent.raw())
                .into_iter()
                .filter(|&p| p != main)
                .collect();
            (c.len() >= 100).then_some(c)
        });
        assert_eq!(orphans.len(), 100, "{mode:?}");
        // Their deaths raise SIGCHLDs that coalesce.
        for &p in &orphans {
            kill(Pid::from_raw(p), Signal::SIGTERM).unwrap();
        }
        until("agent-init to reap every orphan", || {
            children(agent.raw()) == [main]
        });
        for &p in &orphans {
            assert!(stat(p).is_none(), "{mode:?}: orphan {p} left behind");
        }
        assert!(agent.running());
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn hundreds_of_short_lived_children_never_hang_agent_init() {
    for mode in MODES {
        // 500 children, each leaving an orphan that dies at about the same
        // time as the next child: SIGCHLDs coalesce all the way.
        let script =
            "i=0; while [ $i -lt 500 ]; do sh -c 'sleep 0.001 & exit 0'; i=$((i+1)); done; exit 42";
        let st = run(
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", script])),
            "500 short-lived children",
        );
        assert_eq!(st.code(), Some(42), "{mode:?}");
        // catatonit #4: the main child and an orphan end together, one SIGCHLD.
        for _ in 0..100 {
            let script = "sh -c 'sleep 0.01 & kill -9 $$'; sleep 0.0087; exit 3";
            let mut cmd = command(&agent_argv(mode, &["--supervise"], &["sh", "-c", script]));
            cmd.stderr(Stdio::null()); // sh reports the killed child
            let st = run(cmd, "a main child ending with an orphan");
            assert_eq!(st.code(), Some(3), "{mode:?}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn an_inherited_sigchld_ignore_neither_hangs_supervise_mode_nor_hides_the_status() {
    // With SIGCHLD ignored the kernel reaps children itself and their status
    // is lost: agent-init must reset it for itself (and only for itself).
    let py = python().to_string_lossy().into_owned();
    for mode in MODES {
        let report = support::scratch("sigchld-ignored").join("inherited");
        let argv = agent_argv_via(
            mode,
            &[
                &py,
                &helper("with_signal_state.py"),
                "17",
                "",
                "-",
                report.to_str().unwrap(),
            ],
            &["--supervise"],
            // Not sh: dash resets SIGCHLD for itself.
            &[
                &py,
                "-c",
                "import sys; print(open('/proc/self/status').read()); sys.exit(7)",
            ],
        );
        let mut cmd = command(&argv);
        cmd.stdout(Stdio::piped());
        let out = {
            let mut child = cmd.spawn().unwrap();
            let st = wait_guarded(&mut child, "SIGCHLD ignored by the parent");
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            (st, s)
        };
        assert_eq!(out.0.code(), Some(7), "{mode:?}");
        let inherited = sigmask(&fs::read_to_string(&report).unwrap(), "SigIgn");
        assert_ne!(
            inherited & bits(&[17]),
            0,
            "{mode:?}: SIGCHLD arrived ignored"
        );
        assert_ne!(
            sigmask(&out.1, "SigIgn") & bits(&[17]),
            0,
            "{mode:?}: the child still inherits SIGCHLD ignored"
        );
    }
}

// ---------------------------------------------------------------------------
// Terminal.

/// A pseudo-terminal whose output a thread collects.
struct Pty {
    master: fs::File,
    slave: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
    closed: std::sync::mpsc::Receiver<()>,
}

impl Pty {
    fn open() -> Pty {
        use nix::fcntl::OFlag;
        let m = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .expect("posix_openpt");
        nix::pty::grantpt(&m).unwrap();
        nix::pty::unlockpt(&m).unwrap();
        let slave = PathBuf::from(nix::pty::ptsname_r(&m).unwrap());
        let master = fs::File::from(std::os::fd::OwnedFd::from(m));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut r, out) = (master.try_clone().unwrap(), output.clone());
        let (tx, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process holds the slave.
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(());
        });
        Pty {
            master,
            slave,
            output,
            closed,
        }
    }

    /// `argv` as the session leader of this terminal, its controlling
    /// terminal on stdin, stdout and stderr, as `docker run -it` does.
    fn command(&self, argv: Vec<OsString>) -> Command {
        need("setsid");
        let mut c = command(&wrapped(&["setsid", "--ctty"], argv));
        let open = || {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(&self.slave)
                .unwrap()
        };
        c.stdin(open()).stdout(open()).stderr(open());
        c
    }

    fn write(&self, bytes: &[u8]) {
        (&self.master).write_all(bytes).unwrap();
    }

    /// Everything written so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Everything written, once every process has closed the terminal.
    fn all_text(&self) -> String {
        self.closed
            .recv_timeout(PATIENCE)
            .expect("the terminal closes once its processes are gone");
        self.text()
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn ctrl_c_on_a_terminal_reaches_the_agent_exactly_once() {
    for mode in MODES {
        for flags in [&["--supervise"][..], &["--supervise", "--signal-child"]] {
            let pty = Pty::open();
            let rec = Recorder::new("ctrl-c");
            let mut agent = Agent::start(
                mode,
                pty.command(agent_argv(mode, flags, &strs(&rec.argv()))),
            );
            rec.wait_ready();
            agent.wait_idle();
            let child = agent.command_pid(&python_comm());
            let c = stat(child).unwrap();
            let a = stat(agent.raw()).unwrap();
            assert_eq!(
                c.tpgid, c.pgrp,
                "{mode:?} {flags:?}: the child's group holds the terminal's foreground"
            );
            assert_ne!(
                a.pgrp, c.pgrp,
                "{mode:?} {flags:?}: agent-init is outside the foreground group, so the terminal does not signal it too"
            );

            pty.write(b"\x03");
            let int = Signal::SIGINT as i32;
            rec.wait_count(int, 1);
            agent.signal(Signal::SIGUSR1 as i32); // barrier
            rec.wait_count(Signal::SIGUSR1 as i32, 1);
            assert_eq!(
                rec.count(int),
                1,
                "{mode:?} {flags:?}: one SIGINT per Ctrl-C"
            );
            rec.stop();
            assert_eq!(agent.wait().code(), Some(0), "{mode:?} {flags:?}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn bash_under_agent_init_on_a_terminal_has_job_control() {
    need("bash");
    for mode in MODES {
        // Non-interactive, as in `CMD ["bash", "-mc", ...]`.
        let pty = Pty::open();
        let script = "set -o | grep -w monitor; sleep 0.1 & jobs; wait; exit 5";
        let mut agent = Agent::start(
            mode,
            pty.command(agent_argv(
                mode,
                &["--supervise"],
                &["bash", "--norc", "--noprofile", "-mc", script],
            )),
        );
        assert_eq!(agent.wait().code(), Some(5), "{mode:?}: {}", pty.text());
        let out = pty.all_text();
        let monitor = out.lines().find(|l| l.starts_with("monitor")).unwrap_or("");
        assert!(monitor.trim_end().ends_with("on"), "{mode:?}: {out}");
        assert!(out.contains("[1]+"), "{mode:?}: jobs lists the job: {out}");
        assert!(!out.contains("job control"), "{mode:?}: {out}");
        assert!(!out.contains("terminal process group"), "{mode:?}: {out}");

        // Interactive, as in `docker run -it IMAGE bash`.
        let pty = Pty::open();
        let mut agent = Agent::start(
            mode,
            pty.command(agent_argv(
                mode,
                &["--supervise"],
                &["bash", "--norc", "--noprofile", "-i"],
            )),
        );
        pty.write(b"echo \"flags:$-:end\"; exit 6\n");
        assert_eq!(agent.wait().code(), Some(6), "{mode:?}: {}", pty.text());
        let out = pty.all_text();
        let flags = out
            .lines()
            .filter_map(|l| l.split("flags:").nth(1))
            .find(|f| !f.starts_with('$'))
            .unwrap_or_else(|| panic!("{mode:?}: no flags line: {out}"));
        assert!(
            flags.split(":end").next().unwrap().contains('m'),
            "{mode:?}: {out}"
        );
        assert!(!out.contains("job control"), "{mode:?}: {out}");
        assert!(!out.contains("terminal process group"), "{mode:?}: {out}");
    }
}

// ---------------------------------------------------------------------------
// Process state: cwd, fds, signal mask and dispositions, core limit.

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn agent_init_moves_to_root_and_closes_inherited_fds_while_the_child_keeps_both() {
    for mode in MODES {
        let dir = fs::canonicalize(support::scratch("cwd-fds")).unwrap();
        let extra = dir.join("held-open");
        fs::write(&extra, b"x").unwrap();
        let opener = format!("exec \"$@\" 5<{}", extra.display());
        let argv = agent_argv_via(
            mode,
            &["sh", "-c", &opener, "sh"],
            &["--supervise"],
            &["sleep", "600"],
        );
        let mut cmd = command(&argv);
        cmd.current_dir(&dir);
        let mut agent = Agent::start(mode, cmd);
        let child = agent.command_pid("sleep");
        agent.wait_idle();
        let fds = |p: i32| -> Vec<i32> {
            let mut v: Vec<i32> = fs::read_dir(format!("/proc/{p}/fd"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
                .collect();
            v.sort();
            v
        };
        let cwd = |p: i32| fs::read_link(format!("/proc/{p}/cwd")).unwrap();
        assert_eq!(
            cwd(agent.raw()),
            Path::new("/"),
            "{mode:?}: agent-init pins no directory"
        );
        assert_eq!(
            fds(agent.raw()),
            [0, 1, 2],
            "{mode:?}: agent-init holds no inherited fd"
        );
        assert_eq!(
            cwd(child),
            dir,
            "{mode:?}: the child keeps the working directory"
        );
        assert!(fds(child).contains(&5), "{mode:?}: the child keeps fd 5");
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143));
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_command_never_finds_agent_init_in_the_start_directory() {
    // dumb-init's test_working_directories: the command looks at once. A
    // large environment makes agent-init's wiping after the spawn long, so
    // that a move to / after the spawn loses the race in most runs.
    need("readlink");
    let dir = fs::canonicalize(support::scratch("cwd-race")).unwrap();
    let bin = support::bin().into_os_string().into_string().unwrap();
    let script = format!("exec '{bin}' --supervise -- readlink /proc/$$/cwd");
    let filler = "x".repeat(100_000);
    const RUNS: usize = 50;
    let mut seen = BTreeMap::new();
    for _ in 0..RUNS {
        let mut cmd = command(&os(&["sh", "-c", &script]));
        cmd.current_dir(&dir).stdout(Stdio::piped());
        for k in 0..5 {
            cmd.env(format!("FILLER_{k}"), &filler);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        *seen
            .entry(String::from_utf8_lossy(&out.stdout).trim().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("/".to_string(), RUNS)]),
        "where the command found agent-init, in {RUNS} runs"
    );
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_command_starts_in_the_directory_agent_init_was_started_in_even_by_a_relative_path() {
    for mode in MODES {
        let dir = fs::canonicalize(support::scratch("cwd-relative")).unwrap();
        let out = dir.join("out");
        fs::write(dir.join("where.sh"), "#!/bin/sh\npwd > \"$1\"\n").unwrap();
        fs::set_permissions(
            dir.join("where.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let argv = agent_argv(
            mode,
            &["--supervise"],
            &["./where.sh", &out.to_string_lossy()],
        );
        let mut cmd = command(&argv);
        cmd.current_dir(&dir);
        assert!(run(cmd, "where.sh").success(), "{mode:?}");
        assert_eq!(
            fs::read_to_string(&out).unwrap().trim(),
            dir.to_string_lossy(),
            "{mode:?}"
        );
    }
}

#[test]
fn at_the_default_log_level_supervise_mode_prints_one_starting_line() {
    let mut cmd = command(&agent_argv(Subreaper, &["--supervise"], &["true"]));
    cmd.env_remove("AGENT_INIT_LOG")
        .env("LIVEKIT_URL", "wss://lk.example")
        .env("LIVEKIT_API_KEY", "key")
        .env("LIVEKIT_API_SECRET", "secret")
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "agent-init: starting true (supervised)\n"
    );
}

#[test]
fn a_failed_pipe_in_supervise_mode_is_a_local_failure_70_and_starts_nothing() {
    // With only descriptors 0 to 2 allowed, agent-init cannot open the pipe
    // that reports the child's execve; with two more, not the descriptor of
    // its working directory. Its own failures, not the command's.
    need("prlimit");
    for (nofile, step) in [(3, "create a pipe"), (5, "open the working directory")] {
        let dir = support::scratch("nofile");
        let marker = dir.join("started");
        let script = format!("touch '{}'", marker.display());
        let mut argv = os(&["prlimit", &format!("--nofile={nofile}:{nofile}")]);
        argv.extend(agent_argv(
            Subreaper,
            &["--supervise"],
            &["sh", "-c", &script],
        ));
        let mut cmd = command(&argv);
        cmd.stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{nofile}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "agent-init: error: cannot start the command: {step} failed: Too many open files\n"
            ),
            "{nofile}"
        );
        assert!(!marker.exists(), "{nofile}: the command never started");
    }
}

/// Starts agent-init (in `mode`, with `flags`) with the given ignored and
/// blocked signals and soft core limit, and has it run
/// `cat /proc/self/status /proc/self/limits`. Returns the SigIgn and SigBlk
/// agent-init started with, and what cat showed.
fn child_signal_state(
    mode: Mode,
    flags: &[&str],
    ignored: &[i32],
    blocked: &[i32],
    core: Option<u64>,
) -> (String, String) {
    let list = |v: &[i32]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let core = core.map_or("-".to_string(), |c| c.to_string());
    let py = python().to_string_lossy().into_owned();
    let report = support::scratch("signal-state").join("inherited");
    let argv = agent_argv_via(
        mode,
        &[
            &py,
            &helper("with_signal_state.py"),
            &list(ignored),
            &list(blocked),
            &core,
            report.to_str().unwrap(),
        ],
        flags,
        &["cat", "/proc/self/status", "/proc/self/limits"],
    );
    let mut cmd = command(&argv);
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let st = wait_guarded(&mut child, "cat /proc/self/status");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(st.code(), Some(0), "{mode:?} {flags:?}: {out}");
    (fs::read_to_string(&report).unwrap(), out)
}

fn core_soft_limit(status: &str) -> String {
    let line = status
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().to_string()
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_child_inherits_agent_inits_signal_mask_dispositions_and_core_limit() {
    // tini's sigconf test, plus SIGPIPE (std would set it ignored), SIGCHLD
    // (agent-init resets it for itself) and the four signals with early
    // handlers (SIGINT ignored here), in exec and supervise mode.
    // Signals 32 and 33 are glibc's own: a parent that starts agent-init
    // with posix_spawn may leave them ignored, and they pass through.
    let standard = bits(&(1..=31).collect::<Vec<_>>());
    let ignored = [2, 11, 10, 13, 17, 22]; // INT SEGV USR1 PIPE CHLD TTOU
    let blocked = [4, 12, 15, 21]; // ILL USR2 TERM TTIN
    for mode in MODES {
        for flags in [
            &[][..],
            &["--supervise"],
            &["--supervise", "--signal-child"],
        ] {
            let (had, st) = child_signal_state(mode, flags, &ignored, &blocked, Some(4096));
            assert_eq!(sigmask(&had, "SigIgn") & standard, bits(&ignored));
            assert_eq!(sigmask(&had, "SigBlk"), bits(&blocked));
            assert_eq!(
                sigmask(&st, "SigIgn"),
                sigmask(&had, "SigIgn"),
                "{mode:?} {flags:?}: SigIgn"
            );
            assert_eq!(
                sigmask(&st, "SigBlk"),
                bits(&blocked),
                "{mode:?} {flags:?}: SigBlk"
            );
            assert_eq!(
                core_soft_limit(&st),
                "4096",
                "{mode:?} {flags:?}: core limit"
            );

            let (had, st) = child_signal_state(mode, flags, &[], &[], Some(0));
            assert_eq!(sigmask(&had, "SigIgn") & standard, 0);
            assert_eq!(
                sigmask(&st, "SigIgn"),
                sigmask(&had, "SigIgn"),
                "{mode:?} {flags:?}: nothing ignored, SIGPIPE included"
            );
            assert_eq!(sigmask(&st, "SigBlk"), 0, "{mode:?} {flags:?}: empty mask");
            assert_eq!(core_soft_limit(&st), "0", "{mode:?} {flags:?}: core limit");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn agent_init_stays_non_dumpable_while_supervising() {
    // Without CAP_SYS_PTRACE, root may open /proc/PID/mem of a dumpable
    // process with no more capabilities than itself, and not of a
    // non-dumpable one. Both sides drop CAP_SYS_PTRACE; the child (dumpable,
    // like any freshly exec'd program) is the control.
    need("setpriv");
    let no_ptrace = ["setpriv", "--bounding-set", "-sys_ptrace"];
    for mode in MODES {
        let argv = agent_argv_via(mode, &no_ptrace, &["--supervise"], &["sleep", "600"]);
        let mut agent = Agent::start(mode, command(&argv));
        let child = agent.command_pid("sleep");
        agent.wait_idle();
        let can_open_mem = |pid: i32| {
            let script = format!("exec 3</proc/{pid}/mem");
            let mut probe: Vec<&str> = no_ptrace.to_vec();
            probe.extend(["sh", "-c", &script]);
            let mut c = command(&os(&probe));
            c.stderr(Stdio::null());
            run(c, "open /proc/PID/mem").success()
        };
        assert!(
            can_open_mem(child),
            "{mode:?}: control: the dumpable child's memory opens"
        );
        assert!(
            !can_open_mem(agent.raw()),
            "{mode:?}: agent-init is non-dumpable"
        );
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143));
    }
}

// ---------------------------------------------------------------------------
// Memory.

/// Every readable region of `pid`'s memory, as (name, start, bytes).
fn read_memory(pid: i32) -> Vec<(String, u64, Vec<u8>)> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = fs::File::open(format!("/proc/{pid}/mem"))
        .expect("root (CAP_SYS_PTRACE) opens any process's memory, non-dumpable or not");
    let mut out = Vec::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f.get(5).copied().unwrap_or("[anon]").to_string();
        if !f[1].starts_with('r') {
            continue;
        }
        let (start, end) = f[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        match mem.read_exact_at(&mut buf, start) {
            Ok(()) => out.push((name, start, buf)),
            // The kernel's own pages have nothing of ours and do not read.
            Err(_) if name.starts_with("[vvar") || name == "[vsyscall]" => {}
            Err(e) => panic!("cannot read {line} of pid {pid}: {e}"),
        }
    }
    out
}

/// Where each of `needles` occurs in `memory`: (label, region, address).
/// One pass over the memory, whatever the number of needles: a table of
/// the needles' first two bytes filters the positions worth comparing.
fn find(memory: &[(String, u64, Vec<u8>)], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut first = vec![Vec::new(); 1 << 16];
    for (k, (label, n)) in needles.iter().enumerate() {
        assert!(n.len() >= 8, "{label}: needle too short to be distinctive");
        first[usize::from(u16::from_le_bytes([n[0], n[1]]))].push(k);
    }
    // The loop over every byte indexes plain slices only, which even an
    // unoptimized test build compiles to a load and a compare.
    let any: Vec<bool> = first.iter().map(|c| !c.is_empty()).collect();
    let any: &[bool] = &any;
    let mut hits = Vec::new();
    for (name, start, bytes) in memory {
        let bytes: &[u8] = bytes;
        let mut i = 0;
        while i + 1 < bytes.len() {
            let pair = bytes[i] as usize | (bytes[i + 1] as usize) << 8;
            if any[pair] {
                for &k in &first[pair] {
                    let (label, n) = &needles[k];
                    if bytes[i..].starts_with(n) {
                        hits.push(format!("{label} in {name} at {:#x}", start + i as u64));
                    }
                }
            }
            i += 1;
        }
    }
    hits
}

/// A random string that appears nowhere until a test puts it somewhere.
fn marker() -> String {
    Token::generate().unwrap().id_b64().replace(['-', '_'], "x")
}

fn needle(label: &str, bytes: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (label.to_string(), bytes.as_ref().to_vec())
}

/// Scans agent-init, idle in its loop, for `secret` needles; checks the scan
/// can see: the `argv_marker` in agent-init, and every `in_child` needle in
/// the child, whose environment holds them.
fn assert_memory_clean(
    agent: &Agent,
    secret: &[(String, Vec<u8>)],
    in_child: &[(String, Vec<u8>)],
    argv_marker: &str,
) {
    let mode = agent.mode;
    let child = agent.command_pid("sleep");
    agent.wait_idle();
    let memory = read_memory(agent.raw());
    assert!(
        memory.iter().any(|(n, _, _)| n == "[stack]"),
        "{mode:?}: stack read"
    );
    // With --watch agent-init also keeps the command line (not a secret),
    // to start later generations: a second copy, on the heap.
    assert!(
        !find(&memory, &[needle("argv marker", argv_marker)]).is_empty(),
        "{mode:?}: control: the scan sees agent-init's argument block"
    );
    let hits = find(&memory, secret);
    // The stack pointer tells live frames (above it) from dead stack (below).
    let syscall = fs::read_to_string(format!("/proc/{}/syscall", agent.raw())).unwrap_or_default();
    let sp = syscall.split_whitespace().rev().nth(1).unwrap_or("?");
    assert!(
        hits.is_empty(),
        "{mode:?}: agent-init (stack pointer {sp}) still holds:\n{}",
        hits.join("\n")
    );

    // The child's environment block is on its stack.
    let child_memory: Vec<_> = read_memory(child)
        .into_iter()
        .filter(|(n, _, _)| n == "[stack]")
        .collect();
    for n in in_child {
        assert!(
            !find(&child_memory, std::slice::from_ref(n)).is_empty(),
            "{mode:?}: control: the scan finds {} in the child's environment",
            n.0
        );
    }

    // What `ps e` or `cat /proc/1/environ` and `/proc/1/cmdline` show.
    let environ = match mode {
        Pid1 => {
            need("nsenter");
            let pid = agent.raw().to_string();
            let out = Command::new("nsenter")
                .args(["-t", &pid, "-p", "-m", "cat", "/proc/1/environ"])
                .output()
                .unwrap();
            assert!(out.status.success(), "nsenter cat /proc/1/environ");
            out.stdout
        }
        Subreaper => fs::read(format!("/proc/{}/environ", agent.raw())).unwrap(),
    };
    let cmdline = fs::read(format!("/proc/{}/cmdline", agent.raw())).unwrap();
    for (what, bytes) in [("environ", &environ), ("cmdline", &cmdline)] {
        let hits = find(&[(what.to_string(), 0, bytes.clone())], secret);
        assert!(
            hits.is_empty(),
            "{mode:?}: /proc/PID/{what} shows:\n{}",
            hits.join("\n")
        );
    }
    assert!(
        environ.windows(5).any(|w| w == b"PATH="),
        "{mode:?}: control: the environ read is agent-init's ({})",
        String::from_utf8_lossy(&environ)
    );
}

/// Serves `body` as a 200 to every request on a loopback port, for the
/// life of the test process; returns the port.
fn serve_forever(body: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
    });
    port
}

/// FIPS-197 AES-256 key expansion: the 240 bytes of the 15 round keys, as
/// ring's AES-NI and software implementations both lay them out in memory.
fn aes256_key_schedule(key: &[u8; 32]) -> [u8; 240] {
    // The S-box from GF(2^8) inverses and the affine map.
    let mul = |mut a: u8, mut b: u8| {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            a = (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 };
            b >>= 1;
        }
        p
    };
    let sbox = |x: u8| {
        let inv = (1..=255u8).find(|&y| mul(x, y) == 1).unwrap_or(0);
        inv ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63
    };
    let mut w = [0u8; 240];
    w[..32].copy_from_slice(key);
    let mut rcon = 1u8;
    for i in 8..60 {
        let mut t = [w[4 * i - 4], w[4 * i - 3], w[4 * i - 2], w[4 * i - 1]];
        if i % 8 == 0 {
            t = [sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])];
            rcon = mul(rcon, 2);
        } else if i % 8 == 4 {
            t = t.map(sbox);
        }
        for j in 0..4 {
            w[4 * i + j] = w[4 * (i - 8) + j] ^ t[j];
        }
    }
    w
}

#[test]
fn the_aes256_key_schedule_of_the_scan_matches_fips_197() {
    // FIPS-197 Appendix A.3: the last round key of its AES-256 example.
    let key: [u8; 32] = std::array::from_fn(|i| {
        [
            0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d,
            0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3,
            0x09, 0x14, 0xdf, 0xf4,
        ][i]
    });
    let w = aes256_key_schedule(&key);
    assert_eq!(
        w[224..],
        [
            0xfe, 0x48, 0x90, 0xd1, 0xe6, 0x18, 0x8d, 0x0b, 0x04, 0x6d, 0xf3, 0x44, 0x70, 0x6c,
            0x63, 0x1e
        ]
    );
}

/// The TLS secrets of the test server's sessions (its `SSLKEYLOGFILE`).
#[derive(Debug, Default)]
struct KeyLog(Mutex<Vec<(String, Vec<u8>)>>);

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((label.to_string(), secret.to_vec()));
    }
}

/// TLS 1.3's `HKDF-Expand-Label(secret, "key", "", 32)` with SHA-384: the
/// AES-256-GCM key of a traffic secret of TLS13_AES_256_GCM_SHA384.
fn tls13_aes256_key(secret: &[u8]) -> [u8; 32] {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let label = b"tls13 key";
    let info: [&[u8]; 4] = [&32u16.to_be_bytes(), &[label.len() as u8], label, &[0]];
    let mut key = [0u8; 32];
    ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA384, secret)
        .expand(&info, Len)
        .unwrap()
        .fill(&mut key)
        .unwrap();
    key
}

/// Needles for one AES-256 key: the key, and every round key past it.
fn aes256_needles(what: &str, key: &[u8; 32]) -> Vec<(String, Vec<u8>)> {
    let schedule = aes256_key_schedule(key);
    let mut out = vec![needle(&format!("{what} (raw)"), key)];
    for (k, round) in schedule.chunks(16).enumerate().skip(2) {
        out.push(needle(&format!("{what}'s AES round key {k}"), round));
    }
    out
}

/// Where the sealed bundle comes from in a memory scan.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A mounted file (`file://`).
    File,
    /// Plain HTTP on loopback, where ureq builds the Authorization header in
    /// buffers of its own.
    Http,
    /// HTTPS with a real TLS handshake (rustls and ring on the stack).
    Https,
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn after_the_spawn_agent_init_memory_holds_no_secret_token_or_key() {
    // The key schedule stayed behind in most runs, not all: each case runs
    // twice.
    let cases = [Source::File, Source::Http, Source::Https]
        .into_iter()
        .flat_map(|s| MODES.map(|m| (m, s)))
        .flat_map(|c| [c; 2]);
    let ca = support::tls::Ca::new("memscan CA");
    let cert = ca.localhost();
    let key_log = Arc::new(KeyLog::default());
    let tls = cert.server_config_logging_keys(key_log.clone());
    for (mode, source) in cases {
        let dir = support::scratch("memscan");
        let m = marker();
        let token = Token::generate().unwrap();
        let text = token.encode().expose().to_string();
        let key_b64 = text.rsplit('.').next().unwrap().to_string();
        let key_raw = agent_init::token::b64u_decode(&key_b64).unwrap();
        let (auth, seal) = (token.auth_key(), token.seal_key());

        let mut secrets = vec![
            ("SCAN_PLAIN".to_string(), format!("sk-plain-{m}")),
            // Escapes send serde_json through its scratch buffer; a long
            // value makes that buffer grow, leaving copies in freed blocks.
            ("SCAN_ESCAPED".into(), format!("esc\t\"{m}\"\u{e9}\\end")),
            (
                "SCAN_ESCAPED_LONG".into(),
                format!("long-{m}-{}", "\"q\"\t".repeat(3000)),
            ),
            ("SCAN_BIG".into(), format!("big-{m}-{}", "x".repeat(16_000))),
        ];
        secrets.extend((0..40).map(|i| (format!("SCAN_{i}"), format!("many-{i}-{m}"))));
        // The bundle lacks LIVEKIT_API_SECRET: the platform passes it in
        // agent-init's own environment (PROTOCOL.md §7), with another secret.
        let livekit = [
            ("LIVEKIT_URL", format!("wss://lk-{m}.example")),
            ("LIVEKIT_API_KEY", format!("APIkey{m}")),
        ];
        let from_env = [
            ("LIVEKIT_API_SECRET", format!("apisecret-{m}")),
            ("PLATFORM_SECRET", format!("platform-{m}")),
        ];
        // File secrets (PROTOCOL.md §6.1): a service-account JSON and a
        // binary key, whose content must not stay in agent-init either.
        let files = [
            (
                "google-credentials.json",
                format!("{{\"type\": \"service_account\", \"private_key\": \"file-pk-{m}\"}}")
                    .into_bytes(),
            ),
            (
                "raw.bin",
                [
                    &[0u8, 0xff, 0x10][..],
                    format!("bin-{m}").as_bytes(),
                    &[0xfe; 32],
                ]
                .concat(),
            ),
        ];
        let files_dir = PathBuf::from(format!("/dev/shm/agent-init-memscan-{}", marker()));
        let mut list: Vec<serde_json::Value> = secrets
            .iter()
            .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
            .collect();
        list.extend(files.iter().map(|(n, c)| {
            serde_json::json!({"name": n, "kind": "file", "value": b64u(c), "env": format!("PATH_{}", n.len())})
        }));
        let plaintext = serde_json::json!({
            "secrets": list,
            "livekit": {"url": livekit[0].1, "api_key": livekit[1].1},
        })
        .to_string();
        let sealed = agent_init::bundle::seal(&token, plaintext.as_bytes()).unwrap();
        let bundle = dir.join("bundle.json");
        fs::write(&bundle, &sealed).unwrap();
        let mut server = None;
        let url = match source {
            Source::File => format!("file://{}", bundle.display()),
            Source::Http => format!("http://127.0.0.1:{}/v1/secrets", serve_forever(sealed)),
            Source::Https => {
                key_log.0.lock().unwrap().clear();
                let s = support::server::Server::start_with_config(
                    tls.clone(),
                    vec![support::server::Reply::ok(sealed)],
                );
                let url = s.url();
                server = Some(s);
                url
            }
        };

        let mut values: Vec<(String, Vec<u8>)> = secrets
            .iter()
            .map(|(n, v)| needle(n, v))
            .chain(livekit.iter().chain(&from_env).map(|(n, v)| needle(n, v)))
            .collect();
        values.push(needle("a secret's random part", &m));
        let mut secret = values.clone();
        secret.extend([
            needle("the token", &text),
            needle("KEY (base64url)", &key_b64),
            needle("KEY (raw)", &key_raw),
            needle("auth_key (raw)", &auth[..]),
            needle("auth_key (base64url)", b64u(&auth[..])),
            needle("seal_key (base64url)", b64u(&seal[..])),
        ]);
        // Any stretch of the key schedules past the keys themselves.
        secret.extend(aes256_needles("seal_key", &seal));
        for (n, c) in &files {
            secret.push(needle(&format!("file {n}"), c));
            secret.push(needle(&format!("file {n} (base64url)"), b64u(c)));
        }

        let argv_marker = format!("argv-marker-{}", marker());
        let argv = agent_argv(
            mode,
            &["--supervise"],
            &["sh", "-c", "exec sleep 600", &argv_marker],
        );
        let mut cmd = command(&argv);
        cmd.env("LIVEKIT_BOOTSTRAP_TOKEN", &text)
            .env("LIVEKIT_SECRETS_URL", &url)
            .env("AGENT_INIT_SECRETS_DIR", &files_dir)
            .envs(from_env.iter().map(|(n, v)| (n, v)));
        if server.is_some() {
            cmd.env("AGENT_INIT_CA_FILE", ca.write_pem(&dir));
        }
        let mut agent = Agent::start(mode, cmd);
        agent.wait_idle();
        for (n, c) in &files {
            assert_eq!(
                &fs::read(files_dir.join(n)).unwrap(),
                c,
                "{mode:?}: control: the file secret {n} is in place while the command runs"
            );
        }
        // The TLS session's secrets, and the AES keys and key schedules
        // derived from its traffic secrets.
        for (label, tls_secret) in key_log.0.lock().unwrap().iter() {
            secret.push(needle(&format!("TLS {label}"), tls_secret));
            if label.ends_with("TRAFFIC_SECRET") || label.ends_with("TRAFFIC_SECRET_0") {
                let key = tls13_aes256_key(tls_secret);
                secret.extend(aes256_needles(&format!("TLS {label} key"), &key));
            }
        }
        if server.is_some() {
            let labels = key_log.0.lock().unwrap().len();
            assert!(
                labels >= 4,
                "{mode:?}: control: the TLS secrets were logged ({labels})"
            );
        }
        assert_memory_clean(&agent, &secret, &values, &argv_marker);
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143), "{mode:?} {source:?} {url}");
        assert!(
            !files_dir.exists(),
            "{mode:?}: the file secrets are removed once the command has exited"
        );
        if let Some(s) = server {
            assert_eq!(s.requests().len(), 1, "{mode:?}: one fetch over HTTPS");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn after_the_spawn_agent_init_holds_no_local_secret_from_flags_or_files() {
    for mode in MODES {
        let dir = support::scratch("memscan-local");
        let m = marker();
        let env_file = dir.join("agent.env");
        fs::write(
            &env_file,
            format!("LOCAL_FILE=file-{m}\nLOCAL_QUOTED=\"quoted-{m}\"\n"),
        )
        .unwrap();
        let flag = format!("LOCAL_FLAG=flag-{m}");
        let values = vec![
            needle("LOCAL_FILE", format!("file-{m}")),
            needle("LOCAL_QUOTED", format!("quoted-{m}")),
            needle("LOCAL_FLAG", format!("flag-{m}")),
            needle("LOCAL_INHERITED", format!("inherited-{m}")),
        ];
        let mut secret = values.clone();
        secret.push(needle("a secret's random part", &m));
        let argv_marker = format!("argv-marker-{}", marker());
        let env_path = env_file.to_string_lossy().into_owned();
        let argv = agent_argv(
            mode,
            &[
                "--supervise",
                "--secrets",
                &flag,
                "--secrets-file",
                &env_path,
            ],
            &["sh", "-c", "exec sleep 600", &argv_marker],
        );
        let mut cmd = command(&argv);
        cmd.env("LOCAL_INHERITED", format!("inherited-{m}"));
        let mut agent = Agent::start(mode, cmd);
        assert_memory_clean(&agent, &secret, &values, &argv_marker);
        let cmdline = fs::read(format!("/proc/{}/cmdline", agent.raw())).unwrap();
        assert!(
            cmdline.windows(11).any(|w| w == b"LOCAL_FLAG="),
            "{mode:?}: the flag's name stays visible"
        );
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn without_proc_secrets_flag_values_are_still_wiped_from_the_argument_block() {
    // agent-init finds its argument block through the argv main received,
    // not through /proc/self/stat: here it runs with no /proc of its own,
    // and the host's /proc is what a local user (or `ps`) reads.
    need("unshare");
    let m = marker();
    let value = format!("flag-{m}");
    let flag = format!("NOPROC_FLAG={value}");
    let argv_marker = format!("argv-marker-{}", marker());
    let mut argv = os(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "umount -l /proc && exec \"$@\"",
        "sh",
    ]);
    argv.extend(agent_argv(
        Subreaper,
        &["--supervise", "--secrets", &flag],
        &["sh", "-c", "exec sleep 600", &argv_marker],
    ));
    let mut agent = Agent::start(Subreaper, command(&argv));
    let secret = vec![needle("the --secrets value", &value)];
    assert_memory_clean(&agent, &secret, &secret, &argv_marker);
    let cmdline = fs::read(format!("/proc/{}/cmdline", agent.raw())).unwrap();
    assert!(
        cmdline.windows(12).any(|w| w == b"NOPROC_FLAG="),
        "the flag's name stays visible"
    );
    agent.signal(Signal::SIGTERM as i32);
    assert_eq!(agent.wait().code(), Some(143));
}

// ---------------------------------------------------------------------------
// Stopping through a launcher (`pnpm start`, `sh -c`).

/// A program that logs `ready`, and on SIGTERM logs `draining`, takes a
/// moment, logs `drained` and exits 0: an agent that drains its jobs.
const DRAINER: &str = "
import signal, sys, time
log = sys.argv[1]
def note(s):
    with open(log, 'a') as f:
        f.write(s + '\\n')
def stop(n, f):
    note('draining')
    time.sleep(0.3)
    note('drained')
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note('ready')
while True:
    time.sleep(1)
";

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_launcher_killed_by_sigterm_does_not_cut_its_agents_drain_short() {
    // `sh` dies of SIGTERM inside `wait` at once, as pnpm does; the agent in
    // its group drains. agent-init exits with sh's status, only once the
    // group is empty: the drain is complete when it exits.
    let py = python().to_string_lossy().into_owned();
    for mode in MODES {
        let log = support::scratch("launcher").join("log");
        let script = format!("'{py}' -c \"$1\" '{}' & wait", log.display());
        let argv = agent_argv(
            mode,
            &["--supervise"],
            &["sh", "-c", &script, "sh", DRAINER],
        );
        let mut agent = Agent::start(mode, command(&argv));
        until("the agent to start", || {
            fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
        });
        agent.wait_idle();
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143), "{mode:?}: sh's own status");
        let l = fs::read_to_string(&log).unwrap();
        assert!(
            l.contains("drained"),
            "{mode:?}: the agent finished draining: {l}"
        );
    }
    // The control: with --signal-child only sh is signalled, and agent-init
    // exits with it at once (as PID 1, taking the agent with it).
    let log = support::scratch("launcher-child").join("log");
    let script = format!("'{py}' -c \"$1\" '{}' & wait", log.display());
    let argv = agent_argv(
        Pid1,
        &["--supervise", "--signal-child"],
        &["sh", "-c", &script, "sh", DRAINER],
    );
    let mut agent = Agent::start(Pid1, command(&argv));
    until("the agent to start", || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
    });
    agent.wait_idle();
    agent.signal(Signal::SIGTERM as i32);
    assert_eq!(agent.wait().code(), Some(143));
    let l = fs::read_to_string(&log).unwrap();
    assert!(!l.contains("draining"), "the agent was not signalled: {l}");
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_command_exiting_on_its_own_ends_agent_init_at_once_as_tini_does() {
    // A process left in the command's group does not hold agent-init up when
    // no stop is under way (a crashed agent must restart, not linger).
    for mode in MODES {
        let dir = support::scratch("exit-at-once");
        let pidfile = dir.join("pid");
        let script = format!("sleep 600 & echo $! > {}; exit 4", pidfile.display());
        let st = run(
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", &script])),
            "a command that leaves a process behind",
        );
        if let Ok(p) = fs::read_to_string(&pidfile) {
            if mode == Subreaper {
                let _ = kill(Pid::from_raw(p.trim().parse().unwrap()), Signal::SIGKILL);
            }
        }
        assert_eq!(st.code(), Some(4), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn pnpm_start_under_supervise_lets_the_agent_drain_and_exec_does_not() {
    need("node");
    need("pnpm");
    let agent_js = "
const fs = require('fs');
const note = (s) => fs.appendFileSync(process.env.DRAIN_LOG, s + '\\n');
process.on('SIGTERM', () => {
  note('draining');
  setTimeout(() => { note('drained'); process.exit(0); }, 300);
});
note('ready');
setInterval(() => {}, 1000);
";
    // (mode, flags, whether the drain completes)
    let cases: [(Mode, &[&str], bool); 3] = [
        (Pid1, &["--supervise"], true),
        (Subreaper, &["--supervise"], true),
        // In exec mode pnpm is PID 1 and exits at once on SIGTERM: the
        // kernel ends the agent mid-drain. This is why supervise exists.
        (Pid1, &[], false),
    ];
    for (mode, flags, drains) in cases {
        let dir = support::scratch("pnpm");
        fs::write(
            dir.join("package.json"),
            r#"{"name": "drain", "version": "1.0.0", "private": true, "scripts": {"start": "node agent.js"}}"#,
        )
        .unwrap();
        fs::write(dir.join("agent.js"), agent_js).unwrap();
        let log = dir.join("log");
        let mut cmd = command(&agent_argv(mode, flags, &["pnpm", "start"]));
        cmd.current_dir(&dir)
            .env("HOME", &dir)
            .env("DRAIN_LOG", &log)
            .env("npm_config_update_notifier", "false");
        let mut agent = Agent::start(mode, cmd);
        until("the node agent to start", || {
            fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
        });
        agent.signal(Signal::SIGTERM as i32);
        let st = agent.wait();
        let l = fs::read_to_string(&log).unwrap();
        assert!(
            l.contains("draining"),
            "{mode:?} {flags:?}: SIGTERM reached node: {l}"
        );
        assert_eq!(
            l.contains("drained"),
            drains,
            "{mode:?} {flags:?}: {st}: {l}"
        );
        if drains {
            assert_eq!(st.code(), Some(143), "{mode:?}: pnpm's own status");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn while_watching_and_after_a_roll_agent_init_memory_holds_no_secret_token_or_key() {
    // --watch reads the token file again at each check and keeps its own
    // environment (here with the platform's LIVEKIT_API_SECRET) sealed: after
    // a roll to a new bundle, neither bundle's values, nor the inherited
    // secrets, nor any form of the token are in agent-init's memory.
    for mode in MODES {
        let dir = support::scratch("memscan-watch");
        let m = marker();
        let token = Token::generate().unwrap();
        let text = token.encode().expose().to_string();
        let token_file = dir.join("token");
        fs::write(&token_file, &text).unwrap();
        let key_b64 = text.rsplit('.').next().unwrap().to_string();
        let (auth, seal) = (token.auth_key(), token.seal_key());
        let bundle = dir.join("bundle.json");
        let seal_gen = |g: &str| {
            let plaintext = serde_json::json!({
                "secrets": [
                    {"name": "SCAN_PLAIN", "value": format!("sk-{g}-{m}")},
                    {"name": "SCAN_BIG", "value": format!("big-{g}-{m}-{}", "x".repeat(16_000))},
                    {"name": "scan.pem", "kind": "file", "env": "SCAN_FILE", "value": b64u(format!("pem-{g}-{m}").as_bytes())},
                ],
                "livekit": {"url": format!("wss://lk-{g}-{m}.example"), "api_key": format!("APIkey{g}{m}")},
            })
            .to_string();
            let sealed = agent_init::bundle::seal(&token, plaintext.as_bytes()).unwrap();
            let tmp = dir.join("bundle.tmp");
            fs::write(&tmp, sealed).unwrap();
            fs::rename(&tmp, &bundle).unwrap();
        };
        seal_gen("one");
        let from_env = [
            ("LIVEKIT_API_SECRET", format!("apisecret-{m}")),
            ("PLATFORM_SECRET", format!("platform-{m}")),
        ];
        let argv_marker = format!("argv-marker-{}", marker());
        // Its own random part: agent-init keeps the directory (no secret).
        let files_dir = format!("/dev/shm/agent-init-memscan-{}", marker());
        let argv = agent_argv(
            mode,
            &["--supervise", "--watch", "5"],
            &["sh", "-c", "exec sleep 600", &argv_marker],
        );
        let mut cmd = command(&argv);
        cmd.env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", &token_file)
            .env(
                "LIVEKIT_SECRETS_URL",
                format!("file://{}", bundle.display()),
            )
            .env("AGENT_INIT_SECRETS_DIR", &files_dir)
            .envs(from_env.iter().map(|(n, v)| (n, v)));
        let mut agent = Agent::start(mode, cmd);
        let first = agent.command_pid("sleep");
        seal_gen("two");
        // The roll: the first generation gets SIGTERM (sleep dies of it),
        // the second starts with the new bundle.
        let second = wait_for("the second generation", || {
            children(agent.raw())
                .into_iter()
                .find(|&c| c != first && comm(c) == "sleep")
        });
        assert_ne!(first, second);
        let mut secret: Vec<(String, Vec<u8>)> = Vec::new();
        let mut in_child = Vec::new();
        for g in ["one", "two"] {
            let now = [
                needle(&format!("SCAN_PLAIN {g}"), format!("sk-{g}-{m}")),
                needle(
                    &format!("LIVEKIT_URL {g}"),
                    format!("wss://lk-{g}-{m}.example"),
                ),
                needle(&format!("LIVEKIT_API_KEY {g}"), format!("APIkey{g}{m}")),
            ];
            if g == "two" {
                in_child.extend(now.iter().cloned());
            }
            secret.extend(now);
            // The file secret's content: in the file (tmpfs), never in agent-init.
            secret.push(needle(
                &format!("file scan.pem {g}"),
                format!("pem-{g}-{m}"),
            ));
        }
        let inherited: Vec<_> = from_env.iter().map(|(n, v)| needle(n, v)).collect();
        in_child.extend(inherited.iter().cloned());
        secret.extend(inherited);
        secret.extend([
            needle("a secret's random part", &m),
            needle("the token", &text),
            needle("KEY (base64url)", &key_b64),
            needle("auth_key (raw)", &auth[..]),
            needle("seal_key (raw)", &seal[..]),
            needle("seal_key (base64url)", b64u(&seal[..])),
        ]);
        assert_eq!(
            fs::read(format!("{files_dir}/scan.pem")).unwrap(),
            format!("pem-two-{m}").as_bytes(),
            "{mode:?}: the second generation's file"
        );
        assert_memory_clean(&agent, &secret, &in_child, &argv_marker);
        agent.signal(Signal::SIGTERM as i32);
        assert_eq!(agent.wait().code(), Some(143), "{mode:?}");
        assert!(
            !std::path::Path::new(&files_dir).exists(),
            "{mode:?}: the files go when agent-init exits"
        );
    }
}
