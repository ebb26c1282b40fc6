//! Signals and the process state agent-init inherited: hardening at start,
//! the early handlers, dispositions and masks, waiting for and sending
//! signals.
//!
//! Guarantees: after [`harden`] agent-init is non-dumpable with a soft core
//! limit of 0, and [`Inherited`] holds the mask, the dispositions it touches
//! and the core limit it found, which the command gets back (exec and spawn
//! restore them); until the command starts, SIGTERM, SIGINT, SIGHUP and
//! SIGQUIT end agent-init with 128+N and a message naming the signal, unless
//! they arrived ignored; [`wait_signal`] never spins on an error other than
//! `EINTR`.

use super::Errno;
use nix::libc;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// The signals that end agent-init before the command starts.
pub const EARLY_SIGNALS: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Signals agent-init changes the disposition of, at one time or another:
/// the early handlers, TTIN/TTOU ignored while supervising (as tini), and
/// CHLD set to its default while supervising.
const TOUCHED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCHLD,
];

/// The process state agent-init found at start, restored for the command.
pub struct Inherited {
    pub(super) mask: SigSet,
    pub(super) actions: Vec<(Signal, libc::sigaction)>,
    pub(super) core: Option<(libc::rlim_t, libc::rlim_t)>,
}

/// Makes agent-init non-dumpable with no core file, and records the signal
/// mask and dispositions it inherited. Call first thing.
pub fn harden() -> Inherited {
    let _ = nix::sys::prctl::set_dumpable(false);
    let core = getrlimit(Resource::RLIMIT_CORE).ok();
    if let Some((_, hard)) = core {
        // Only the soft limit: lowering the hard limit could not be undone for the command.
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
    }
    let mask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
    let mut actions = Vec::with_capacity(TOUCHED.len());
    for sig in TOUCHED {
        let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a NULL new action only reads the current one into `old`.
        if unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), old.as_mut_ptr()) } == 0 {
            // SAFETY: sigaction succeeded and filled `old`.
            actions.push((sig, unsafe { old.assume_init() }));
        }
    }
    Inherited {
        mask,
        actions,
        core,
    }
}

impl Inherited {
    /// Whether `sig` arrived ignored (SIG_IGN), which agent-init honours.
    pub fn ignored(&self, sig: Signal) -> bool {
        self.actions
            .iter()
            .any(|(s, a)| *s == sig && a.sa_sigaction == libc::SIG_IGN)
    }
}

/// The message the early handler writes, one per signal, built without allocation.
fn early_message(sig: libc::c_int) -> &'static [u8] {
    match sig {
        libc::SIGTERM => {
            b"agent-init: error: SIGTERM received before the command started; it was not started\n"
        }
        libc::SIGINT => {
            b"agent-init: error: SIGINT received before the command started; it was not started\n"
        }
        libc::SIGHUP => {
            b"agent-init: error: SIGHUP received before the command started; it was not started\n"
        }
        _ => {
            b"agent-init: error: SIGQUIT received before the command started; it was not started\n"
        }
    }
}

/// How every line of `early_message` starts on stderr.
const ERROR_PREFIX: &[u8] = b"agent-init: error: ";

extern "C" fn early_exit(sig: libc::c_int) {
    let msg = early_message(sig);
    // SAFETY: write, open, close and _exit are async-signal-safe; `msg` is static.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        let fd = libc::open(
            c"/dev/termination-log".as_ptr(),
            libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            // The termination log gets the reason without the stderr prefix.
            let body = msg.strip_prefix(ERROR_PREFIX).unwrap_or(msg);
            libc::write(fd, body.as_ptr().cast(), body.len());
            libc::close(fd);
        }
        libc::_exit(128 + sig);
    }
}

/// Until the command starts, SIGTERM, SIGINT, SIGHUP and SIGQUIT end
/// agent-init at once with 128+N. A handler (not the default action) is what
/// makes this hold as PID 1, where the kernel drops signals that have none.
/// A signal that arrived ignored stays ignored.
pub fn install_early_handlers(inherited: &Inherited) {
    let act = SigAction::new(
        SigHandler::Handler(early_exit),
        SaFlags::SA_RESTART,
        SigSet::all(),
    );
    for sig in EARLY_SIGNALS {
        if !inherited.ignored(sig) {
            // SAFETY: `early_exit` only calls async-signal-safe functions.
            let _ = unsafe { signal::sigaction(sig, &act) };
        }
    }
}

/// Restores what the command should inherit: dispositions, core limit, mask.
/// Blocks everything first so no signal lands between the steps; the final
/// mask restore is the last step.
pub(super) fn restore_for_command(inherited: &Inherited) {
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None);
    for (sig, act) in &inherited.actions {
        // SAFETY: re-installing the exact action the process started with.
        unsafe { libc::sigaction(*sig as libc::c_int, act, std::ptr::null_mut()) };
    }
    if let Some((soft, hard)) = inherited.core {
        let _ = setrlimit(Resource::RLIMIT_CORE, soft, hard);
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&inherited.mask), None);
}

/// Waits for any signal in `set`, including real-time ones `nix::Signal` cannot name.
/// Retries after `EINTR`; any other error is returned rather than retried,
/// so a failing `sigwaitinfo` cannot turn into a busy loop.
pub fn wait_signal(set: &SigSet) -> Result<i32, Errno> {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::uninit();
    loop {
        // SAFETY: `set` is a valid sigset; `info` is written by the kernel on success.
        let r = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        if r > 0 {
            return Ok(r);
        }
        let errno = Errno::last();
        if errno != Errno::EINTR {
            return Err(errno);
        }
    }
}

/// Waits up to `timeout` for any signal in `set`; `None` when none came.
pub fn wait_signal_for(set: &SigSet, timeout: std::time::Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::uninit();
    loop {
        // SAFETY: `set` and `ts` are valid; `info` is written by the kernel on success.
        let r = unsafe { libc::sigtimedwait(set.as_ref(), info.as_mut_ptr(), &ts) };
        if r > 0 {
            return Some(r);
        }
        if Errno::last() != Errno::EINTR {
            return None;
        }
    }
}

/// Sends raw signal `sig` to `pid` (negative for a process group).
/// Raw libc, not nix: nix's `Signal` cannot name the real-time signals
/// that supervise mode forwards.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Sets `sig` to SIG_IGN for agent-init (TTIN and TTOU while supervising).
pub fn ignore(sig: Signal) {
    // SAFETY: SIG_IGN runs no code of ours.
    let _ = unsafe {
        signal::sigaction(
            sig,
            &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
        )
    };
}

/// Sets `sig` to SIG_DFL, without SA_NOCLDWAIT (SIGCHLD while supervising:
/// an inherited SIG_IGN would make the kernel reap children on its own, and
/// the command's exit status would be lost).
pub fn default_action(sig: Signal) {
    // SAFETY: SIG_DFL runs no code of ours.
    let _ = unsafe {
        signal::sigaction(
            sig,
            &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
        )
    };
}

// ---------------------------------------------------------------------------
// Holding stop signals while file secrets exist and the command has not started.

/// Blocks the signals the early handlers catch (SIGTERM, SIGINT, SIGHUP,
/// SIGQUIT): one that arrives now waits instead of ending agent-init with
/// file secrets written. Supervise mode forwards it once the child runs;
/// exec mode takes it up with [`pending_early_signal`] just before the exec.
pub fn block_early_signals() {
    let mut set = SigSet::empty();
    for sig in EARLY_SIGNALS {
        set.add(sig);
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// Takes one pending early signal, if any, without waiting.
pub fn pending_early_signal() -> Option<i32> {
    let mut set = SigSet::empty();
    for sig in EARLY_SIGNALS {
        set.add(sig);
    }
    wait_signal_for(&set, std::time::Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_early_message_starts_with_the_prefix_the_termination_log_drops() {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            let msg = early_message(sig);
            let body = msg.strip_prefix(ERROR_PREFIX).expect("prefixed");
            assert!(
                body.starts_with(b"SIG"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
