//! Starting the command: exec (agent-init is replaced), or fork and exec
//! into a process group of its own (supervise mode), and reaping.
//!
//! Guarantees: the command starts with the signal mask, dispositions and
//! core limit agent-init inherited ([`super::Inherited`]), never with
//! agent-init's own; the fork child allocates nothing and calls only
//! async-signal-safe functions; [`spawn`] returns only once the child has
//! exec'd, or says why it could not.

use super::{Errno, Inherited};
use nix::libc;
use std::ffi::CStr;

/// Replaces agent-init with the command. Returns only on failure.
pub fn exec(path: &CStr, argv: &[&CStr], envp: &[&CStr], inherited: &Inherited) -> Errno {
    super::signals::restore_for_command(inherited);
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

/// Whether any process is left in process group `pgid`.
/// Raw libc, not nix: signal 0 is no `Signal`, and the answer needs `EPERM`.
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks; it has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, 0) == 0 || Errno::last() == Errno::EPERM }
}

/// How a child ended, `WIFEXITED` and `WIFSIGNALED` kept apart (as tini
/// keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    /// It exited with this code.
    Exited(i32),
    /// Signal N killed it.
    Killed(i32),
}

impl ChildStatus {
    /// The status as a shell shows it, and as agent-init exits with it: the
    /// code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            ChildStatus::Exited(code) => code,
            ChildStatus::Killed(sig) => 128 + sig,
        }
    }

    /// The signal the status reports as a shell reads it: the one that
    /// killed the child, or N for an exit code of 128+N (what a shell or
    /// launcher between agent-init and the agent exits with when a signal
    /// killed the agent).
    pub fn signal(self) -> Option<i32> {
        let code = self.code();
        (code > 128).then_some(code - 128)
    }
}

/// What one non-blocking `waitpid(-1)` found.
pub enum Reaped {
    /// A child ended.
    Child { pid: i32, status: ChildStatus },
    /// Children exist, none has ended.
    NoneReady,
    /// No child is left at all.
    NoChildren,
}

/// Reaps one ended child without blocking.
/// Raw libc, not nix: a child killed by a real-time signal is wanted too,
/// which nix's `WaitStatus` cannot name.
pub fn reap_one() -> Reaped {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            // Without WUNTRACED/WCONTINUED only ended children are reported.
            let status = if libc::WIFSIGNALED(status) {
                ChildStatus::Killed(libc::WTERMSIG(status))
            } else {
                ChildStatus::Exited(libc::WEXITSTATUS(status))
            };
            return Reaped::Child { pid, status };
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

#[cfg(test)]
mod tests {
    use super::ChildStatus;

    #[test]
    fn a_child_status_reads_as_a_shell_shows_it() {
        assert_eq!(ChildStatus::Exited(3).code(), 3);
        assert_eq!(ChildStatus::Killed(15).code(), 143);
        assert_eq!(ChildStatus::Killed(15).signal(), Some(15));
        // A launcher that reports its child's death by SIGINT as 130.
        assert_eq!(ChildStatus::Exited(130).signal(), Some(2));
        assert_eq!(ChildStatus::Exited(128).signal(), None);
        assert_eq!(ChildStatus::Exited(0).signal(), None);
    }
}
