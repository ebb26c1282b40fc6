//! Starting the command: find it, then exec it (the default) or supervise it.
//!
//! Guarantees: the command is looked up with the PATH it will itself see, a
//! failure to run it is 127 (not found) or 126 (found, not executable) with
//! the shell's words, and the command inherits the signal mask, the
//! dispositions and the core-size limit agent-init inherited, never the ones
//! agent-init set for itself.

mod supervise;
mod watch;

use crate::base::error::{Error, Result};
use crate::env::EnvBlock;
use crate::sys::{self, Errno, Inherited};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use supervise::{supervise, SuperviseOptions};
pub use watch::{
    OnUpdate, Ready, WatchConfig, Watcher, DEFAULT_DRAIN, EXIT_UPDATED, MIN_WATCH, PORT_VAR,
};

/// The PATH used when the environment has none (Docker's default).
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command ready to run: its resolved path and its argv as C strings.
#[derive(Debug)]
pub struct Command {
    pub name: String,
    pub path: CString,
    pub argv: Vec<CString>,
}

fn is_executable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
        && std::fs::metadata(p).is_ok_and(|m| m.is_file())
}

/// Finds `argv[0]` as `execvp` would, on `path_var` (the command's own PATH).
pub fn resolve(argv: &[OsString], path_var: Option<&[u8]>) -> Result<Command> {
    let first = argv
        .first()
        .ok_or_else(|| Error::Usage("no command given".into()))?;
    // A shell-style `NAME=VALUE` prefix, or a token, misplaced as the
    // command: messages show only its name (or the token's ID).
    let name = crate::base::error::shown_arg(first.as_bytes());
    if first.is_empty() {
        return Err(Error::NotFound(": command not found".into()));
    }
    let found: PathBuf = if first.as_bytes().contains(&b'/') {
        let p = PathBuf::from(first);
        if !p.exists() {
            return Err(Error::NotFound(format!(
                "{name}: No such file or directory"
            )));
        }
        p
    } else {
        let mut denied = None;
        let mut hit = None;
        for dir in path_var.unwrap_or(DEFAULT_PATH).split(|&b| b == b':') {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            let cand = Path::new(OsStr::from_bytes(dir)).join(first);
            if is_executable(&cand) {
                hit = Some(cand);
                break;
            }
            if denied.is_none() && cand.is_file() {
                denied = Some(cand);
            }
        }
        match (hit, denied) {
            (Some(p), _) => p,
            (None, Some(p)) => p,
            (None, None) => return Err(Error::NotFound(format!("{name}: command not found"))),
        }
    };
    let to_c = |s: OsString| {
        sys::to_cstring(s)
            .ok_or_else(|| Error::Usage("a command argument contains a NUL byte".into()))
    };
    Ok(Command {
        name,
        path: to_c(found.into_os_string())?,
        argv: argv.iter().cloned().map(to_c).collect::<Result<_>>()?,
    })
}

/// Maps a failed `execve` to 126/127 with bash's words.
pub fn exec_error(name: &str, errno: Errno) -> Error {
    match errno {
        Errno::ENOENT => Error::NotExecutable(format!(
            "{name}: cannot execute: required file not found (a missing interpreter or loader)"
        )),
        Errno::EACCES | Errno::EPERM => Error::NotExecutable(format!("{name}: Permission denied")),
        Errno::ENOEXEC => Error::NotExecutable(format!(
            "{name}: cannot execute binary file: Exec format error"
        )),
        Errno::EISDIR => Error::NotExecutable(format!("{name}: Is a directory")),
        Errno::E2BIG => Error::Refused(format!(
            "{name}: Argument list too long (the environment is over the kernel's budget)"
        )),
        other => Error::NotExecutable(format!("{name}: {}", other.desc())),
    }
}

/// Replaces agent-init with the command. Returns only on failure.
pub fn exec(cmd: Command, env: EnvBlock, inherited: &Inherited) -> Error {
    let argv: Vec<&std::ffi::CStr> = cmd.argv.iter().map(|c| c.as_c_str()).collect();
    let envp = env.c_strs();
    crate::debug!("exec {} with {} variables", cmd.name, envp.len());
    let errno = sys::exec(&cmd.path, &argv, &envp, inherited);
    drop(envp);
    drop(env);
    exec_error(&cmd.name, errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_on_the_given_path() {
        let c = resolve(
            &["sh".into(), "-c".into()],
            Some(b"/nonexistent:/bin:/usr/bin"),
        )
        .unwrap();
        assert!(c.path.to_bytes().ends_with(b"/sh"));
        assert_eq!(c.argv.len(), 2);
    }

    #[test]
    fn missing_commands_are_127_and_unrunnable_files_126_later() {
        let e = resolve(&["no-such-cmd-xyz".into()], Some(b"/bin")).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert_eq!(e.to_string(), "no-such-cmd-xyz: command not found");
        let e = resolve(&["/no/such/file".into()], None).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert_eq!(exec_error("x", Errno::EACCES).exit_code(), 126);
        assert_eq!(exec_error("x", Errno::ENOEXEC).exit_code(), 126);
    }
}
