//! agent-init's own environment and argument blocks, as the kernel laid
//! them out at `execve`.
//!
//! Guarantees: [`scrub_environ`] and [`scrub_args`] overwrite bytes in
//! place, inside the strings, so `/proc/<pid>/environ` and
//! `/proc/<pid>/cmdline` stop showing them; nothing is moved, reallocated or
//! assigned, so the blocks stay valid for libc and for the kernel.

use crate::base::sensitive::SecretBytes;
use nix::libc;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Copies agent-init's own environment out of libc's `environ`, each value
/// into a zeroizing buffer at once: the bootstrap token and every inherited
/// secret are in a secret type from their first copy.
pub fn read_environ() -> Vec<(OsString, SecretBytes)> {
    std::env::vars_os()
        .map(|(n, v)| (n, SecretBytes::new(v.into_vec())))
        .collect()
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
/// `tails` gets the arguments (`argv[0]` first) and returns, for each one to
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
