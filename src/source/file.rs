//! A sealed bundle read from disk (`file:///path`), with the same size cap
//! as the network path.

use crate::error::{Error, Result};
use crate::sensitive::SecretBytes;
use std::io::Read;
use std::path::Path;

/// Reads at most `cap` bytes; a longer file is refused (65) without reading past `cap + 1`.
pub fn read(path: &Path, cap: u64) -> Result<SecretBytes> {
    let f = std::fs::File::open(path).map_err(|e| {
        Error::Config(format!(
            "LIVEKIT_SECRETS_URL: cannot open {}: {}",
            path.display(),
            crate::sys::io_reason(&e)
        ))
    })?;
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0).min(cap) as usize;
    let mut buf = SecretBytes::with_capacity(hint + 1);
    f.take(cap.saturating_add(1))
        .read_to_end(buf.expose_mut())
        .map_err(|e| {
            Error::Config(format!(
                "LIVEKIT_SECRETS_URL: cannot read {}: {}",
                path.display(),
                crate::sys::io_reason(&e)
            ))
        })?;
    if buf.len() as u64 > cap {
        return Err(Error::Refused(format!(
            "bundle file {} is larger than the cap of {cap} bytes (AGENT_INIT_MAX_BUNDLE)",
            path.display()
        )));
    }
    Ok(buf)
}
