//! Every call into the OS that needs `unsafe`, and the small safe wrappers
//! around them: the wiping allocator, signal dispositions, the initial
//! environment block, fork and exec.
//!
//! Each `unsafe` block carries a `SAFETY:` comment. Nothing outside this
//! module uses `unsafe`. Both are compiler-checked: `Cargo.toml` denies
//! `unsafe_code` and `clippy::undocumented_unsafe_blocks`, and this module is
//! the one place that allows the first.
#![allow(unsafe_code)]

mod alloc;
mod environ;
mod process;
mod signals;

pub use alloc::{scrub_stack, WipingAlloc};
pub use environ::{read_environ, remember_args, scrub_args, scrub_environ};
pub use process::{
    close_fds_above_stderr, exec, group_exists, reap_one, spawn, ChildStatus, Prepared, Reaped,
    SpawnError, SpawnOptions,
};
pub use signals::{
    block_early_signals, default_action, harden, ignore, install_early_handlers,
    pending_early_signal, send_signal, wait_signal, wait_signal_for, Inherited, EARLY_SIGNALS,
};

use nix::libc;
use nix::sys::resource::{getrlimit, Resource};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Why `execve` failed, as an errno.
pub type Errno = nix::errno::Errno;

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

/// Converts an `OsString` to a `CString` for exec, refusing interior NULs.
pub fn to_cstring(s: OsString) -> Option<std::ffi::CString> {
    std::ffi::CString::new(s.into_vec()).ok()
}
