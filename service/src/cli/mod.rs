//! The CLI verbs (owned by the `service-cli` work): create, update-secrets,
//! secrets, list, revoke. They speak §10 through the types in [`crate::api`].

use crate::{Error, Result};

/// The verbs `main` dispatches here.
pub const VERBS: &[&str] = &["create", "update-secrets", "secrets", "list", "revoke"];

/// Runs one verb with its arguments (after the verb).
pub fn main(verb: &str, _args: &[String]) -> Result<i32> {
    Err(Error::Usage(format!("{verb}: not implemented yet")))
}
