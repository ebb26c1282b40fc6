//! The CLI verbs of agent-secrets: `create`, `update-secrets`, `secrets`,
//! `list` and `revoke`, against the management API of PROTOCOL.md §10.
//!
//! The service never sees a plaintext or a KEY: `create` makes the token and
//! seals (§5, §6) before it uploads; `update-secrets` downloads the bundle,
//! opens it with the token, merges with the same code `agent-init seal` uses
//! (so the input rules, the error messages and the dates of §6.2 are the
//! same), reseals with a fresh nonce and uploads with `If-Match`, retrying on
//! the new version when another update won the race.
//!
//! Guarantees: stdout carries only what a verb exists to print (the token of
//! `create`, the listings); no value, KEY, token or admin key appears in
//! anything printed; a failure is one line on stderr and the exit code of
//! PROTOCOL.md §8 for its class (64 usage, 65 inputs or bundle refused, 69
//! service unavailable or unexpected, 77 admin key or token refused or
//! unknown, 78 configuration).

mod client;
mod upload;
mod verbs;

use crate::{Error, Result};
use std::io::Write;

pub use client::ServiceUrl;
pub use verbs::{DEFAULT_ADMIN_KEY_FILE, DEFAULT_SERVICE};

/// The verbs `main` dispatches here.
pub const VERBS: &[&str] = &["create", "update-secrets", "secrets", "list", "revoke"];

/// Runs one verb with its arguments (after the verb).
pub fn main(verb: &str, args: &[String]) -> Result<i32> {
    verbs::run(verb, args, &|name| std::env::var(name).ok())
}

/// One line of progress on stderr (names, IDs, versions, counts: never a value).
pub fn note(msg: &str) {
    let line = format!("agent-secrets: {msg}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Writes `text` to stdout, all of it or a failure.
fn print(text: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)
        .and_then(|_| out.flush())
        .map_err(|e| Error::Internal(format!("cannot write to stdout: {e}")))
}
