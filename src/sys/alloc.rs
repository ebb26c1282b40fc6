//! The wiping allocator, and the stack scrub: secret bytes do not outlive
//! their buffer, whoever allocated it.
//!
//! Guarantees: every block freed through [`WipingAlloc`] is zeroed first
//! (also the old block of a `realloc`); after [`scrub_stack`] the 128 KiB of
//! stack below its caller hold zeros.

use nix::libc;
use std::alloc::{GlobalAlloc, Layout, System};

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
