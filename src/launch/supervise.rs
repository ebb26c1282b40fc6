//! Supervise mode: agent-init stays as PID 1 (or as a child subreaper) and
//! does what an init must, as tini does, plus dumb-init's process groups.
//!
//! Guarantees, once the child runs:
//! - the child runs in a process group of its own, with the signal mask, the
//!   dispositions and the core limit agent-init inherited; with a terminal
//!   whose foreground agent-init held, its group holds the foreground, so
//!   Ctrl-C reaches it once and a shell gets job control;
//! - every catchable signal agent-init receives is forwarded once, to the
//!   child's process group (or the child alone with `--signal-child`); never
//!   SIGCHLD. Fault signals stay deadly to agent-init itself; after
//!   forwarding SIGTSTP, SIGTTIN or SIGTTOU it stops itself, and SIGCONT
//!   resumes it and is forwarded (job control, as dumb-init);
//! - every zombie is reaped, as PID 1 or, when not PID 1, as a child
//!   subreaper; the main child's exit is noticed inside the reap loop, so
//!   coalesced SIGCHLDs cannot hide it;
//! - agent-init exits with the child's code, or 128+N when signal N killed
//!   it: as soon as the child exits (tini), or, when a stop signal (TERM,
//!   INT, HUP, QUIT) reached the child's whole group, once that group is
//!   empty, so that an agent under `pnpm start` finishes draining;
//! - agent-init holds no secret: the environment block it built is wiped, its
//!   own initial environment block and any `--secrets` value on its command
//!   line are overwritten, dead stack is wiped (and freed heap, by the wiping
//!   allocator); its working directory is `/`, and it holds no file
//!   descriptor above 2.

use super::{exec_error, Command};
use crate::base::error::{Error, Result};
use crate::env::EnvBlock;
use crate::sys::{self, ChildStatus, Inherited, Prepared, Reaped, SpawnError, SpawnOptions};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Knobs of supervise mode.
pub struct SuperviseOptions {
    /// Forward signals to the child alone instead of its process group.
    pub signal_child_only: bool,
    /// `--watch`: roll the command when its bundle changes.
    pub watch: Option<super::watch::Watcher>,
}

/// One run of the command: with `--watch` there may be several, one after
/// another or (`overlap`) two at once.
pub(super) struct Generation {
    pub pid: Pid,
    /// Its status once reaped.
    pub status: Option<ChildStatus>,
    /// 0 for the first, counting up.
    pub n: u32,
    /// The bundle it runs.
    pub version: String,
    /// When a drain that the roll asked for ends in SIGKILL.
    pub kill_at: Option<std::time::Instant>,
    /// Its file secrets: removed when it is dropped, once it is gone.
    pub files: Option<crate::files::Written>,
}

/// Starts a later generation (the first starts in [`supervise`]); agent-init
/// keeps no copy of its environment.
#[inline(never)]
pub(super) fn start(
    cmd: &Command,
    env: EnvBlock,
    inherited: &Inherited,
    spawn: &SpawnOptions,
    n: u32,
    version: String,
) -> Result<Generation> {
    let pid = {
        let argv: Vec<&std::ffi::CStr> = cmd.argv.iter().map(|c| c.as_c_str()).collect();
        let envp = env.c_strs();
        sys::spawn(&Prepared::new(&cmd.path, &argv, &envp), inherited, spawn)
    };
    drop(env);
    sys::scrub_stack();
    Ok(Generation {
        pid: pid.map_err(|e| spawn_error(&cmd.name, e))?,
        status: None,
        n,
        version,
        kill_at: None,
        files: None,
    })
}

/// The synchronous faults an init must not swallow (tini's list): left
/// unblocked at their default action, a real fault in agent-init kills it
/// instead of being "forwarded". Sent with `kill`, they kill agent-init when
/// it is not PID 1, and the kernel drops them when it is (pid_namespaces(7):
/// an init receives only the signals it has a handler for).
const FAULTS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The signals that ask a program to stop: when one reaches the child's whole
/// group, agent-init lets that group finish before it exits.
const STOPS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// The job-control stops: forwarded, then agent-init stops itself.
const JOB_STOPS: [Signal; 3] = [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU];

/// How often agent-init looks whether a stopping group is empty yet.
const GROUP_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the command as a child and supervises it until it exits; returns the exit status.
pub fn supervise(
    cmd: Command,
    env: EnvBlock,
    inherited: &Inherited,
    mut opts: SuperviseOptions,
) -> Result<i32> {
    // From here on, signals queue instead of running handlers: one that lands
    // before the child exists is forwarded to it right after the spawn.
    // Blocked, a signal is never dropped, not even by PID 1 with no handler.
    let mut waited = SigSet::all();
    for f in FAULTS {
        waited.remove(f);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&waited), None);
    // Once the child owns the terminal, agent-init is a background process
    // that must never be stopped for touching it (tini).
    sys::ignore(Signal::SIGTTIN);
    sys::ignore(Signal::SIGTTOU);
    sys::default_action(Signal::SIGCHLD);

    if nix::unistd::getpid().as_raw() != 1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            crate::warn!("cannot become a child subreaper ({e}); orphans will not be reaped here");
        }
    }
    // The child always gets a process group of its own (tini): with a
    // terminal, Ctrl-C then reaches the child's group once, and never
    // agent-init, which would forward a second SIGINT.
    // `--signal-child` only changes where forwarded signals go.
    let take_tty = owns_terminal();

    // Later generations start where the first did (agent-init itself
    // moves to `/` in the spawn).
    let cwd = opts.watch.as_ref().and_then(|_| {
        nix::unistd::getcwd()
            .ok()
            .and_then(|d| sys::to_cstring(d.into_os_string()))
    });
    let child = {
        let argv: Vec<&std::ffi::CStr> = cmd.argv.iter().map(|c| c.as_c_str()).collect();
        let envp = env.c_strs();
        let prepared = Prepared::new(&cmd.path, &argv, &envp);
        sys::spawn(
            &prepared,
            inherited,
            &SpawnOptions {
                take_tty,
                cwd: None,
            },
        )
    };
    // The child has its own copy now; agent-init keeps none.
    drop(env);
    sys::scrub_environ(|_| true);
    sys::scrub_stack();
    let child = child.map_err(|e| spawn_error(&cmd.name, e))?;
    crate::debug!(
        "supervising {} (pid {child}), signals go to {}{}",
        cmd.name,
        if opts.signal_child_only {
            "it alone"
        } else {
            "its process group"
        },
        if take_tty {
            "; it has the terminal"
        } else {
            ""
        }
    );
    drop(cmd);
    sys::close_fds_above_stderr();
    if let Some(mut w) = opts.watch.take() {
        let first = Generation {
            pid: child,
            status: None,
            n: 0,
            version: w.version().to_string(),
            kill_at: None,
            files: w.take_first_files(),
        };
        let spawn = SpawnOptions { take_tty, cwd };
        return super::watch::run(first, &waited, inherited, &spawn, opts.signal_child_only, w);
    }

    // tini's rule: when the main child exits, agent-init exits, and the
    // kernel ends what is left. One exception, for launchers: when a stop
    // signal reached the child's whole group (forwarded by agent-init, or
    // from a terminal), `pnpm start` dies of it at once while the agent it
    // started still drains; agent-init then waits for the rest of that
    // group, and exits with the main child's status once it is empty.
    let mut stopping = false;
    let mut status = None;
    loop {
        let sig = match status {
            None => Some(sys::wait_signal(&waited).map_err(|errno| {
                Error::Internal(format!("cannot wait for signals: {}", errno.desc()))
            })?),
            // The group's last process may not be agent-init's child, so
            // its exit may raise no SIGCHLD here: look again each second.
            Some(_) => sys::wait_signal_for(&waited, GROUP_POLL),
        };
        match sig {
            None => {}
            Some(sig) if sig == Signal::SIGCHLD as i32 => {
                let was_running = status.is_none();
                reap(child, &mut status)?;
                if let (true, Some(st)) = (was_running, status) {
                    // Killed by a stop its group got too (Ctrl-C on a terminal).
                    stopping |= !opts.signal_child_only && st.signal().is_some_and(is_stop);
                    crate::debug!(
                        "the command exited with status {}{}",
                        st.code(),
                        if stopping {
                            "; its process group is stopping, agent-init waits for it"
                        } else {
                            ""
                        }
                    );
                }
            }
            Some(sig) => {
                let reached_group = forward(child, sig, opts.signal_child_only, status.is_some());
                stopping |= reached_group && is_stop(sig);
                job_stop(sig);
            }
        }
        if let Some(st) = status {
            if !stopping || !sys::group_exists(child.as_raw()) {
                return Ok(st.code());
            }
        }
    }
}

/// A failed spawn as the error of its class: 126/127 for the exec, 70 for
/// a step of agent-init's own.
fn spawn_error(name: &str, e: SpawnError) -> Error {
    match e {
        SpawnError::Exec(errno) => exec_error(name, errno),
        SpawnError::Local(what, errno) => Error::Internal(format!(
            "cannot start the command: {what} failed: {}",
            errno.desc()
        )),
    }
}

/// Job control (dumb-init): after a forwarded TSTP, TTIN or TTOU the shell
/// that sent it waits for agent-init to stop. SIGCONT then resumes it, and
/// reaches the signal loop to be forwarded like any other. As PID 1 the
/// kernel drops a stop sent to itself.
pub(super) fn job_stop(sig: i32) {
    if JOB_STOPS.iter().any(|s| *s as i32 == sig) {
        sys::send_signal(nix::unistd::getpid().as_raw(), Signal::SIGSTOP as i32);
    }
}

pub(super) fn is_stop(sig: i32) -> bool {
    STOPS.iter().any(|s| *s as i32 == sig)
}

/// Forwards `sig` to the child's group, or to the child `alone`; returns
/// whether it reached the group. Once the child has `exited` (and was
/// reaped), its pid may name another process: only its group is signalled.
pub(super) fn forward(child: Pid, sig: i32, alone: bool, exited: bool) -> bool {
    crate::debug!(
        "forwarding {} to {}",
        crate::base::log::signal_name(sig),
        if alone {
            "the child"
        } else {
            "the child's group"
        }
    );
    if !alone && sys::send_signal(-child.as_raw(), sig) {
        return true;
    }
    if !exited {
        // Alone by request, or the child moved itself to another group.
        sys::send_signal(child.as_raw(), sig);
    }
    false
}

/// Whether agent-init's stdin is a terminal whose foreground process group is
/// agent-init's own, so the child may take the foreground over from it.
fn owns_terminal() -> bool {
    let stdin = std::io::stdin();
    nix::unistd::isatty(&stdin).unwrap_or(false)
        && nix::unistd::tcgetpgrp(&stdin).ok() == Some(nix::unistd::getpgrp())
}

/// Reaps every zombie (several may have raised one SIGCHLD), and records the
/// main child's status in `status` when it is among them.
fn reap(child: Pid, status: &mut Option<ChildStatus>) -> Result<()> {
    loop {
        match sys::reap_one() {
            Reaped::Child { pid, status: st } => {
                if pid == child.as_raw() {
                    *status = Some(st);
                }
            }
            Reaped::NoneReady => return Ok(()),
            Reaped::NoChildren if status.is_some() => return Ok(()),
            // Cannot happen with SIGCHLD at its default action; never wait forever.
            Reaped::NoChildren => {
                return Err(Error::Internal(
                    "the command's exit status was lost (it was reaped by someone else)".into(),
                ))
            }
        }
    }
}
