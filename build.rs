//! Link settings for the release `agent-init` binary, to keep the static
//! executable inside its size budget (docs/BENCHMARKS.md, "Cuts"). Neither
//! changes what the program does; tests, benches and debug builds keep the
//! linker's defaults.
//!
//! - `-z pack-relative-relocs`: the static-pie binary's ~4,000 relative
//!   relocations are stored as a RELR bitmap instead of 24-byte RELA
//!   entries, about 95 KB less, still position-independent. glibc 2.36
//!   (Debian bookworm, the build image) applies them at start-up; an older
//!   static glibc would not, and the binary would crash at once.
//! - `--no-eh-frame-hdr`: the unwinder's lookup table, about 37 KB. The
//!   release binary aborts on panic and never unwinds; only a
//!   `RUST_BACKTRACE` dump would come out empty.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo::rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    }
}
