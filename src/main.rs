//! The `agent-init` binary: harden, run, map the error to its exit code.
//!
//! `no_main`: Rust's own start-up sets SIGPIPE to ignored, and that would be
//! inherited by the agent through `execve`. With our own C `main`, the agent
//! gets exactly the SIGPIPE disposition agent-init was started with.
#![no_main]

use agent_init::{error, sys, write_termination_log};
use std::os::unix::ffi::OsStringExt;

#[global_allocator]
static ALLOC: sys::WipingAlloc = sys::WipingAlloc;

// `#[no_mangle]` is unsafe-class code (the `unsafe_code` lint): this is the
// one symbol agent-init exports, the C `main` that `no_main` asks for.
#[allow(unsafe_code)]
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // Where the argument block is, for wiping `--secrets` values from it
    // later without needing /proc.
    sys::remember_args(argc, argv);
    let inherited = sys::harden();
    sys::install_early_handlers(&inherited);
    // Each argument goes into a zeroizing buffer as it is copied out of the
    // argument block: `--secrets KEY=VALUE` values are secrets.
    let args: Vec<agent_init::base::sensitive::SecretBytes> = std::env::args_os()
        .skip(1)
        .map(|a| agent_init::base::sensitive::SecretBytes::new(a.into_vec()))
        .collect();
    let code = match agent_init::run(args, &inherited) {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            write_termination_log(&e);
            e.exit_code()
        }
    };
    sys::scrub_stack();
    code
}
