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

pub mod api;
pub mod args;
pub mod cli;
pub mod serve;

pub use agent_init::error::{Error, Result};
