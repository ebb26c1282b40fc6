//! Which dotenv files local mode reads, and reading them in order.
//!
//! Guarantees: [`local_files`] is the `--secrets-file` list when there is
//! one, else `.env` then `.env.local` when they exist (none when
//! `PYTHON_DOTENV_DISABLED` is set); [`load_files`] reads them as
//! python-dotenv's `load_dotenv` would, one after another, each `${VAR}`
//! resolved in the order the values themselves take effect, and every value
//! obeys PROTOCOL.md §6 ([`crate::protocol::rules`]).

use super::dotenv;
use crate::base::error::Result;
use crate::base::sensitive::{self, SecretBytes};
use crate::env;
use std::ffi::OsString;
use std::path::PathBuf;

/// The dotenv files of local mode: the flags' list, or `.env` then
/// `.env.local` when present. `PYTHON_DOTENV_DISABLED` turns the agent's own
/// `load_dotenv` off, so it turns off these defaults too; files named with
/// `--secrets-file` are an explicit request and are read regardless.
pub fn local_files(secrets_files: &[PathBuf], dotenv_disabled: bool) -> Vec<PathBuf> {
    if !secrets_files.is_empty() {
        return secrets_files.to_vec();
    }
    if dotenv_disabled {
        crate::debug!("PYTHON_DOTENV_DISABLED is set: .env and .env.local are not read");
        return Vec::new();
    }
    super::inputs::existing_files(&[".env", ".env.local"])
}

/// Loads dotenv files in order. `${VAR}` in a file sees `over` first (the
/// inherited environment, as `load_dotenv` without override does; for
/// `seal`, its `--secrets`), then earlier keys of the same file, then earlier
/// files, later over earlier: the same order in which the values themselves
/// take effect. With `sealing`, a `${VAR}` none of these resolve refuses the
/// file (see [`super::dotenv::load_sealing`]). Also returns the names of lines that
/// look like the end of a wrapped value, which are never shown.
pub fn load_files(
    files: &[PathBuf],
    over: &[(OsString, SecretBytes)],
    sealing: bool,
) -> Result<(env::FileVars, Vec<String>)> {
    let inherited = over;
    let text = |v: &SecretBytes| {
        sensitive::SecretString::new(String::from_utf8_lossy(v.expose()).into_owned())
    };
    let over = |name: &str| {
        inherited
            .iter()
            .find(|(n, _)| n.as_encoded_bytes() == name.as_bytes())
            .map(|(_, v)| text(v))
    };
    let mut out: env::FileVars = Vec::with_capacity(files.len());
    let mut unlisted = Vec::new();
    for path in files {
        let under = |name: &str| {
            out.iter()
                .rev()
                .find_map(|(_, vars)| vars.iter().find(|(n, _)| n == name))
                .map(|(_, v)| text(v))
        };
        let entries = if sealing {
            dotenv::load_sealing(path, &over, &under)?
        } else {
            dotenv::load_layered(path, &over, &under)?
        };
        crate::debug!("{}: {} variables", path.display(), entries.len());
        unlisted.extend(entries.iter().filter(|e| e.wrapped).map(|e| e.name.clone()));
        let vars = entries
            .into_iter()
            .map(|e| {
                (
                    e.name,
                    SecretBytes::new(e.value.expose().as_bytes().to_vec()),
                )
            })
            .collect();
        out.push((path.clone(), vars));
    }
    Ok((out, unlisted))
}
