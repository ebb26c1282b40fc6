//! Dotenv files for local development, read the way python-dotenv reads them.
//!
//! (Being written: see issue 3.) The API is fixed: [`load`] reads a file and
//! returns its variables in order, last duplicate winning.

use crate::error::{Error, Result};
use crate::sensitive::SecretString;
use std::path::Path;

/// One variable from a dotenv file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: SecretString,
    /// The line the assignment starts on, 1-based.
    pub line: usize,
}

/// Looks up `${NAME}` during interpolation.
pub type Lookup<'a> = dyn Fn(&str) -> Option<SecretString> + 'a;

/// Reads and parses `path`.
pub fn load(path: &Path, lookup: &Lookup<'_>) -> Result<Vec<Entry>> {
    let bytes = crate::sensitive::SecretBytes::new(std::fs::read(path).map_err(|e| {
        Error::Config(format!("{}: {}", path.display(), crate::sys::io_reason(&e)))
    })?);
    let text = std::str::from_utf8(bytes.expose())
        .map_err(|_| Error::Refused(format!("{}: not UTF-8", path.display())))?;
    parse(text, &path.display().to_string(), lookup)
}

/// Parses dotenv text; `file` names it in errors.
pub fn parse(text: &str, file: &str, lookup: &Lookup<'_>) -> Result<Vec<Entry>> {
    let _ = (text, lookup);
    Err(Error::Internal(format!(
        "{file}: dotenv parsing is not built yet"
    )))
}
