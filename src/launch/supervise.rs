//! Supervise mode: agent-init stays as PID 1 (or as a child subreaper) and
//! does what an init must, as tini does, plus dumb-init's process groups.
//!
//! Guarantees, once the child runs:
//! - every catchable signal agent-init receives is forwarded once, to the
//!   child's process group (or the child alone with `--signal-child`); never
//!   SIGCHLD. Fault signals stay deadly to agent-init itself;
//! - every zombie is reaped; the main child's exit is noticed inside the reap
//!   loop, so coalesced SIGCHLDs cannot hide it;
//! - agent-init exits with the child's code, or 128+N when signal N killed it;
//! - agent-init holds no secret: the environment block it built is wiped, its
//!   own initial environment block is overwritten, its working directory is
//!   `/`, and it holds no file descriptor above 2.

use super::{exec_error, Command};
use crate::env::EnvBlock;
use crate::error::Result;
use crate::sys::{self, Inherited, Prepared, SpawnOptions};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// Knobs of supervise mode.
pub struct SuperviseOptions {
    /// Forward signals to the child alone instead of its process group.
    pub signal_child_only: bool,
}

/// The synchronous faults an init must not swallow (tini's list).
const FAULTS: [Signal; 7] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Runs the command as a child and supervises it until it exits; returns the exit status.
pub fn supervise(
    cmd: Command,
    env: EnvBlock,
    inherited: &Inherited,
    opts: &SuperviseOptions,
) -> Result<i32> {
    // From here on, signals queue instead of running handlers: one that lands
    // before the child exists is forwarded to it right after the spawn.
    let mut waited = SigSet::all();
    for f in FAULTS {
        waited.remove(f);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&waited), None);
    sys::ignore(Signal::SIGTTIN);
    sys::ignore(Signal::SIGTTOU);

    let pid1 = nix::unistd::getpid().as_raw() == 1;
    if !pid1 {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            crate::warn!("cannot become a child subreaper ({e}); orphans will not be reaped here");
        }
    }
    let new_group = !opts.signal_child_only;
    let take_tty = new_group
        && nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
        && nix::unistd::tcgetpgrp(std::io::stdin()).ok() == Some(nix::unistd::getpgrp());

    let child = {
        let argv: Vec<&std::ffi::CStr> = cmd.argv.iter().map(|c| c.as_c_str()).collect();
        let envp = env.c_strs();
        let prepared = Prepared::new(&cmd.path, &argv, &envp);
        sys::spawn(
            &prepared,
            inherited,
            &SpawnOptions {
                new_group,
                take_tty,
            },
        )
    };
    // The child has its own copy now; agent-init keeps none.
    drop(env);
    sys::scrub_environ(|_| true);
    sys::scrub_stack();
    let child = child.map_err(|errno| exec_error(&cmd.name, errno))?;
    crate::debug!(
        "supervising {} (pid {child}){}{}",
        cmd.name,
        if new_group {
            ", signals go to its process group"
        } else {
            ", signals go to it alone"
        },
        if take_tty {
            ", it has the terminal"
        } else {
            ""
        }
    );
    drop(cmd);
    let _ = nix::unistd::chdir("/");
    sys::close_fds_above_stderr();

    let target = if new_group {
        -child.as_raw()
    } else {
        child.as_raw()
    };
    loop {
        let sig = sys::wait_signal(&waited);
        if sig == Signal::SIGCHLD as i32 {
            if let Some(code) = reap(child) {
                return Ok(code);
            }
            continue;
        }
        crate::debug!(
            "forwarding {} to {}",
            sys::signal_name(sig),
            if new_group {
                "the child's group"
            } else {
                "the child"
            }
        );
        if !sys::send_signal(target, sig) && new_group {
            // The group may be gone (the child moved itself elsewhere); reach the child itself.
            sys::send_signal(child.as_raw(), sig);
        }
    }
}

/// Reaps every zombie; returns the main child's status once it has exited.
fn reap(child: Pid) -> Option<i32> {
    let mut status = None;
    while let Some((pid, code)) = sys::reap_one() {
        if pid == child.as_raw() {
            status = code;
        }
    }
    status
}
