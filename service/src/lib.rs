//! agent-secrets: the secrets service agent-init fetches from, and the CLI
//! that manages it (PROTOCOL.md §4 and §10).
//!
//! The service keeps each token's sealed bundle, the SHA-256 of its
//! auth_key, a manifest of names and dates, a version and the dates; it never
//! sees a secret value or a KEY. The CLI seals before it uploads and opens
//! what it downloads to merge an update, with the same protocol code as
//! agent-init (the `agent_init` library: token, keys, bundle, plaintext
//! rules), so the two programs cannot drift apart.
//!
//! ```text
//! main → serve (args → store (SQLite | PostgreSQL) → http (queue → handlers))
//!      → cli   (create | update-secrets | secrets | list | revoke)
//! api: the §10 JSON both halves speak
//! ```
//!
//! Dependencies, each for its job: tokio (runtime), hyper 1 with
//! hyper-util (HTTP/1.1 server, with header deadlines and size caps),
//! rustls with ring through tokio-rustls (TLS, the same crypto provider as
//! agent-init), sqlx with only its `sqlite`, `postgres` and `runtime-tokio`
//! features (one async crate speaking both databases with the same SQL; see
//! [`serve::store`] for why not rusqlite), serde/serde_json, ring (SHA-256,
//! random), subtle (constant-time comparison: ring's is deprecated for
//! outside use), zeroize.
//!
//! The release form of the service is `cargo build --profile service -p
//! agent-secrets` (the root Cargo.toml: optimized for speed, unwinding, so
//! a panic ends one connection's task, not the service). It builds for the
//! same explicit target with `crt-static` as agent-init
//! (.cargo/config.toml), so it too is one static executable.

pub mod api;
pub mod args;
pub mod cli;
pub mod serve;

pub use agent_init::base::error::{Error, Result};
