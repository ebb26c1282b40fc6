//! Every call into the OS that needs `unsafe`, and the small safe wrappers
//! around them: the wiping allocator, signal dispositions, the initial
//! environment block, fork and exec.
//!
//! Each `unsafe` block carries a `SAFETY:` comment. Nothing outside this
//! module uses `unsafe`. Both are compiler-checked: `Cargo.toml` denies
//! `unsafe_code` and `clippy::undocumented_unsafe_blocks`, and this module is
//! the one place that allows the first.
#![allow(unsafe_code)]

use nix::libc;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

// ---------------------------------------------------------------------------
// The wiping allocator.

/// A global allocator that overwrites every block with zeros before it is
/// returned to the system allocator.
///
/// Secrets are copied by code agent-init does not own (serde_json's scratch
/// buffer for escaped strings, rustls's record buffers, `Vec` growth in
/// ureq); wiping on free catches those copies where a zeroizing type cannot.
/// `realloc` falls back to allocate, copy, wipe, free, so a growing buffer
/// never leaves its old copy behind.
pub struct WipingAlloc;

// SAFETY: every method forwards to `System` with the caller's layout, and
// `dealloc` only writes inside the block it is about to free, which the caller
// owns per `GlobalAlloc`'s contract.
unsafe impl GlobalAlloc for WipingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes that the caller
        // owns. explicit_bzero is glibc's memset that the compiler may not
        // remove as a dead store; it wipes at memset's speed, where a loop of
        // volatile byte writes cost large bundles a sixth of their time.
        unsafe {
            libc::explicit_bzero(ptr.cast(), layout.size());
            System.dealloc(ptr, layout)
        }
    }
    // `realloc` keeps GlobalAlloc's default: alloc, copy, dealloc (which wipes).
}

/// Overwrites 128 KiB of this thread's stack below the caller, so key
/// schedules and copies left in dead stack frames do not outlive their use.
/// The deepest path measured, an HTTPS fetch in the release build, reaches
/// about 49 KiB below the frame that called it.
#[inline(never)]
pub fn scrub_stack() {
    const SIZE: usize = 128 * 1024;
    let mut buf = std::mem::MaybeUninit::<[u8; SIZE]>::uninit();
    // SAFETY: explicit_bzero writes exactly the SIZE bytes of `buf`, which
    // this frame owns; it is glibc's memset that is never removed as a dead
    // store.
    unsafe { libc::explicit_bzero(buf.as_mut_ptr().cast(), SIZE) };
    std::hint::black_box(&buf);
}

// ---------------------------------------------------------------------------
// Small safe helpers.

/// An I/O error's reason without Rust's " (os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The kernel's budget for argv + envp: a quarter of the stack limit, at
/// least 32 pages, at most 3/4 of the 8 MiB `_STK_LIM` (fs/exec.c).
pub fn arg_max() -> usize {
    let stack = getrlimit(Resource::RLIMIT_STACK)
        .map(|(soft, _)| soft)
        .unwrap_or(8 << 20);
    let quarter = if stack == libc::RLIM_INFINITY {
        usize::MAX
    } else {
        (stack / 4) as usize
    };
    quarter.clamp(32 * 4096, (8 << 20) / 4 * 3)
}

// ---------------------------------------------------------------------------
// What agent-init inherited, and hardening for its own life.

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
    mask: SigSet,
    actions: Vec<(Signal, libc::sigaction)>,
    core: Option<(libc::rlim_t, libc::rlim_t)>,
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
fn restore_for_command(inherited: &Inherited) {
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

// ---------------------------------------------------------------------------
// The initial environment block.

/// Copies agent-init's own environment out of libc's `environ`.
pub fn read_environ() -> Vec<(OsString, OsString)> {
    std::env::vars_os().collect()
}

/// Overwrites, in the process's initial environment block, the values of the
/// variables for which `pick` is true, so `/proc/<pid>/environ` stops showing
/// them. `NAME=` stays; the value's bytes become NUL.
pub fn scrub_environ(pick: impl Fn(&[u8]) -> bool) {
    // SAFETY: `environ` is the NULL-terminated array libc keeps; agent-init
    // never calls setenv/putenv, so each entry still points into the block the
    // kernel built, writable and NUL-terminated. We only overwrite bytes before
    // each entry's terminating NUL, and run before any other thread exists
    // that could read the environment (ureq's resolver threads never do).
    unsafe {
        let mut p = environ_ptr();
        while !p.is_null() && !(*p).is_null() {
            let entry = *p as *mut u8;
            let len = libc::strlen(*p);
            let bytes = std::slice::from_raw_parts(entry, len);
            if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
                if pick(&bytes[..eq]) {
                    for i in eq + 1..len {
                        std::ptr::write_volatile(entry.add(i), 0);
                    }
                }
            }
            p = p.add(1);
        }
    }
}

/// agent-init's own `argv`, as the kernel laid it out at `execve`: the
/// pointers `main` received, kept so the argument block can be found
/// without `/proc`.
static ARGV: std::sync::atomic::AtomicPtr<*const libc::c_char> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
static ARGC: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Records the `argc` and `argv` that `main` received, for [`scrub_args`].
/// Call once, first thing, with exactly those values.
pub fn remember_args(argc: libc::c_int, argv: *const *const libc::c_char) {
    use std::sync::atomic::Ordering::Relaxed;
    ARGC.store(usize::try_from(argc).unwrap_or(0), Relaxed);
    ARGV.store(argv.cast_mut(), Relaxed);
}

/// Overwrites parts of agent-init's own argument block, so that
/// `/proc/<pid>/cmdline` and agent-init's memory stop holding them.
/// `tails` gets the arguments (argv[0] first) and returns, for each one to
/// wipe, its index and the offset from which its bytes become NUL. The
/// block is found through the `argv` that `main` received (see
/// [`remember_args`]), so this works without `/proc`; it does nothing if
/// that was never recorded.
pub fn scrub_args(tails: impl FnOnce(&[&[u8]]) -> Vec<(usize, usize)>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (argc, argv) = (ARGC.load(Relaxed), ARGV.load(Relaxed));
    if argv.is_null() {
        return;
    }
    // SAFETY: `argv` and `argc` are what the C runtime passed to `main`
    // (remember_args' contract): `argc` pointers to NUL-terminated strings
    // in the argument block the kernel copied to the top of this process's
    // stack at execve, which stays mapped, readable and writable for the
    // life of the process. Nothing reassigns argv[i]. The shared slices are
    // dropped before the writes, which stay inside each string. std read
    // the arguments once, at start, into its own copies.
    unsafe {
        let ptrs: Vec<*mut u8> = (0..argc)
            .map(|i| (*argv.add(i)).cast_mut().cast())
            .collect();
        let lens: Vec<usize> = ptrs
            .iter()
            .map(|&p| {
                if p.is_null() {
                    0
                } else {
                    libc::strlen(p.cast())
                }
            })
            .collect();
        let wipe = {
            let args: Vec<&[u8]> = ptrs
                .iter()
                .zip(&lens)
                .map(|(&p, &n)| {
                    if p.is_null() {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p.cast_const(), n)
                    }
                })
                .collect();
            tails(&args)
        };
        for (i, from) in wipe {
            let (Some(&p), Some(&len)) = (ptrs.get(i), lens.get(i)) else {
                continue;
            };
            for j in from.min(len)..len {
                std::ptr::write_volatile(p.add(j), 0);
            }
        }
    }
}

fn environ_ptr() -> *mut *mut libc::c_char {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: reading the pointer value of libc's global; agent-init never
    // assigns it.
    unsafe { environ }
}

// ---------------------------------------------------------------------------
// exec and spawn.

/// Why `execve` failed, as an errno.
pub type Errno = nix::errno::Errno;

/// Replaces agent-init with the command. Returns only on failure.
pub fn exec(path: &CStr, argv: &[&CStr], envp: &[&CStr], inherited: &Inherited) -> Errno {
    restore_for_command(inherited);
    match nix::unistd::execve(path, argv, envp) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// How the supervised child starts.
pub struct SpawnOptions {
    /// Hand the terminal on stdin to the child's process group.
    pub take_tty: bool,
    /// Where the child starts, when not in agent-init's own directory.
    pub cwd: Option<std::ffi::CString>,
}

/// NULL-terminated pointer arrays, built before `fork` so the child allocates nothing.
pub struct Prepared<'a> {
    path: &'a CStr,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl<'a> Prepared<'a> {
    pub fn new(path: &'a CStr, argv: &[&'a CStr], envp: &[&'a CStr]) -> Self {
        let mut a: Vec<_> = argv.iter().map(|s| s.as_ptr()).collect();
        a.push(std::ptr::null());
        let mut e: Vec<_> = envp.iter().map(|s| s.as_ptr()).collect();
        e.push(std::ptr::null());
        Prepared {
            path,
            argv: a,
            envp: e,
        }
    }
}

/// Why [`spawn`] started no command.
#[derive(Debug)]
pub enum SpawnError {
    /// agent-init itself could not prepare the start (`what` failed): a
    /// local failure, exit 70.
    Local(&'static str, Errno),
    /// The command's `execve` failed: 126 or 127.
    Exec(Errno),
}

/// Forks and execs the command in a process group of its own (as tini does,
/// so that a terminal's Ctrl-C reaches its group and not agent-init's).
/// Returns its pid once it has exec'd.
///
/// agent-init moves to `/` before the fork, so the child can never see it
/// in the start directory; the child goes back to that directory (through
/// a descriptor opened first) before its `execve`, so it keeps it, and a
/// relative command path still resolves from there.
pub fn spawn(
    cmd: &Prepared<'_>,
    inherited: &Inherited,
    opts: &SpawnOptions,
) -> Result<nix::unistd::Pid, SpawnError> {
    use nix::fcntl::OFlag;
    use nix::unistd::{fork, ForkResult};
    use std::os::fd::AsRawFd;
    let (rd, wr) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::Local("create a pipe", e))?;
    let start_dir = nix::fcntl::open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| SpawnError::Local("open the working directory", e))?;
    nix::unistd::chdir("/").map_err(|e| SpawnError::Local("move to /", e))?;
    // SAFETY: after fork the child calls only async-signal-safe functions
    // (fchdir, chdir, setpgid, tcsetpgrp, sigaction, setrlimit, sigprocmask,
    // execve, write, _exit) on memory prepared before the fork; it
    // allocates nothing.
    match unsafe { fork() }.map_err(|e| SpawnError::Local("fork", e))? {
        // SAFETY: the fork child, covered by the comment above: only
        // async-signal-safe libc calls on memory prepared before the fork.
        ForkResult::Child => unsafe {
            if libc::fchdir(start_dir.as_raw_fd()) != 0 {
                let err = *libc::__errno_location();
                let bytes = err.to_ne_bytes();
                libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
            libc::setpgid(0, 0);
            if let Some(dir) = &opts.cwd {
                if libc::chdir(dir.as_ptr()) != 0 {
                    let bytes = (*libc::__errno_location()).to_ne_bytes();
                    libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                    libc::_exit(127);
                }
            }
            if opts.take_tty {
                // A background group may take the terminal only because
                // SIGTTOU is still blocked and ignored here (agent-init's
                // state, inherited through fork); both are restored below.
                libc::tcsetpgrp(0, libc::getpid());
            }
            for (sig, act) in &inherited.actions {
                libc::sigaction(*sig as libc::c_int, act, std::ptr::null_mut());
            }
            if let Some((soft, hard)) = inherited.core {
                let lim = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &lim);
            }
            libc::sigprocmask(
                libc::SIG_SETMASK,
                inherited.mask.as_ref(),
                std::ptr::null_mut(),
            );
            libc::execve(cmd.path.as_ptr(), cmd.argv.as_ptr(), cmd.envp.as_ptr());
            let err = *libc::__errno_location();
            let bytes = err.to_ne_bytes();
            libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        },
        ForkResult::Parent { child } => {
            drop(wr);
            // Also set it here so the parent never signals a group that does not exist yet.
            let _ = nix::unistd::setpgid(child, child);
            let mut buf = [0u8; 4];
            let n = loop {
                match nix::unistd::read(&rd, &mut buf) {
                    Err(Errno::EINTR) => continue,
                    other => break other.unwrap_or(0),
                }
            };
            if n == 4 {
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(SpawnError::Exec(Errno::from_raw(i32::from_ne_bytes(buf))));
            }
            Ok(child)
        }
    }
}

/// Closes every file descriptor above 2 that agent-init holds.
pub fn close_fds_above_stderr() {
    // SAFETY: close_range only closes descriptors; agent-init owns no Rust
    // object backed by an fd above 2 at this point (the caller ensures it).
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if r != 0 {
        for fd in 3..1024 {
            // SAFETY: as above, for kernels without close_range.
            unsafe { libc::close(fd) };
        }
    }
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

/// Whether any process is left in process group `pgid`.
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks; it has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, 0) == 0 || Errno::last() == Errno::EPERM }
}

/// What one non-blocking `waitpid(-1)` found.
pub enum Reaped {
    /// A child ended: its pid and its status as a shell shows it (the code,
    /// or 128+N for signal N).
    Child(i32, i32),
    /// Children exist, none has ended.
    NoneReady,
    /// No child is left at all.
    NoChildren,
}

/// Reaps one ended child without blocking.
pub fn reap_one() -> Reaped {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            // Without WUNTRACED/WCONTINUED only ended children are reported.
            let code = if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            };
            return Reaped::Child(pid, code);
        }
        if pid == 0 {
            return Reaped::NoneReady;
        }
        match Errno::last() {
            Errno::EINTR => continue,
            _ => return Reaped::NoChildren,
        }
    }
}

/// Sends raw signal `sig` to `pid` (negative for a process group).
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

/// Converts an `OsString` to a `CString` for exec, refusing interior NULs.
pub fn to_cstring(s: OsString) -> Option<std::ffi::CString> {
    std::ffi::CString::new(s.into_vec()).ok()
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
