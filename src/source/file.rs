//! Reading files that agent-init does not control: the `file://` bundle, the
//! token file (read as a token by [`read_token_file`]) and the CA file. Each read has a size cap and a deadline.
//!
//! The read runs on a helper thread, so that a file that cannot be read to
//! its end (a FIFO with no writer, a hung network mount, `/dev/zero` slowly)
//! costs at most the deadline: the helper is abandoned blocked, and the
//! process exits with the error soon after. Nothing past `cap + 1` bytes is
//! ever read.

use crate::base::error::{Error, Result};
use crate::base::sensitive::{SecretBytes, SecretString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a capped read gave no contents.
#[derive(Debug)]
pub enum ReadFailure {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file holds more than the cap.
    TooBig,
    /// The read did not finish within the deadline.
    TimedOut,
}

impl ReadFailure {
    /// The reason, for a message that names the file (never its contents).
    pub fn reason(&self, cap: u64, timeout: Duration) -> String {
        match self {
            ReadFailure::Io(e) => crate::sys::io_reason(e),
            ReadFailure::TooBig => format!("larger than the cap of {cap} bytes"),
            ReadFailure::TimedOut => format!(
                "could not be read within {:.1}s (a FIFO or a hung mount?)",
                timeout.as_secs_f64()
            ),
        }
    }
}

/// What a read gave: the contents and the file's permission bits.
type Contents = (SecretBytes, u32);

/// The whole of `path`, at most `cap` bytes, within `timeout`, with its mode.
pub fn read_capped(
    path: &Path,
    cap: u64,
    timeout: Duration,
) -> std::result::Result<Contents, ReadFailure> {
    type Slot = Mutex<Option<std::result::Result<Contents, ReadFailure>>>;
    let deadline = Instant::now() + timeout;
    let slot: Arc<Slot> = Arc::new(Mutex::new(None));
    let (theirs, main, path) = (slot.clone(), std::thread::current(), path.to_path_buf());
    std::thread::Builder::new()
        .name("agent-init-read".into())
        .spawn(move || {
            let r = read_blocking(&path, cap);
            *theirs.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            main.unpark();
        })
        .map_err(ReadFailure::Io)?;
    loop {
        if let Some(r) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return r;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFailure::TimedOut);
        }
        std::thread::park_timeout(left);
    }
}

fn read_blocking(path: &PathBuf, cap: u64) -> std::result::Result<Contents, ReadFailure> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::File::open(path).map_err(ReadFailure::Io)?;
    let meta = f.metadata().map_err(ReadFailure::Io)?;
    let hint = meta.len().min(cap) as usize;
    let mut buf = SecretBytes::with_capacity(hint + 1);
    f.take(cap.saturating_add(1))
        .read_to_end(buf.expose_mut())
        .map_err(ReadFailure::Io)?;
    if buf.len() as u64 > cap {
        return Err(ReadFailure::TooBig);
    }
    Ok((buf, meta.permissions().mode()))
}

/// The `file://` bundle: at most `cap` bytes (a longer file is 65), within
/// the fetch deadline (69 past it), unopenable or unreadable is 78.
pub fn read(path: &Path, cap: u64, timeout: Duration) -> Result<SecretBytes> {
    read_capped(path, cap, timeout)
        .map(|(b, _)| b)
        .map_err(|e| {
            let what = format!(
                "LIVEKIT_SECRETS_URL: bundle file {}: {}",
                path.display(),
                e.reason(cap, timeout)
            );
            match e {
                ReadFailure::Io(_) => Error::Config(what),
                ReadFailure::TooBig => Error::Refused(format!("{what} (AGENT_INIT_MAX_BUNDLE)")),
                ReadFailure::TimedOut => {
                    Error::Unavailable(format!("{what}; AGENT_INIT_TIMEOUT sets the deadline"))
                }
            }
        })
}

/// A configuration file (token, CA certificates) named by `var`, with its
/// mode: every failure, a cap or a deadline passed included, is 78 naming
/// `var` and the path.
pub fn read_config(var: &str, path: &Path, cap: u64, timeout: Duration) -> Result<Contents> {
    read_capped(path, cap, timeout).map_err(|e| {
        Error::Config(format!(
            "{var} {}: {}",
            path.display(),
            e.reason(cap, timeout)
        ))
    })
}

/// Reads a token file (`what` names the variable or flag that gave it): at
/// most [`crate::protocol::token::MAX_TOKEN_FILE`] bytes, within `timeout` (a FIFO
/// with no writer or a hung mount is 78 once it passes).
/// Like ssh for a private key, warns when other users may read or write it;
/// group access is fine (Kubernetes mounts secrets for an `fsGroup`).
pub fn read_token_file(what: &str, path: &Path, timeout: Duration) -> Result<SecretString> {
    let (bytes, mode) = read_config(what, path, crate::protocol::token::MAX_TOKEN_FILE, timeout)?;
    // Once per process: `--watch` re-reads the file at every check, and the
    // same line every few seconds would bury the log.
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if mode & 0o006 != 0 && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let how = match mode & 0o006 {
            0o004 => "readable",
            0o002 => "writable",
            _ => "readable and writable",
        };
        crate::warn!(
            "{what} {}: the token file is {how} by other users (mode {:04o})",
            path.display(),
            mode & 0o7777
        );
    }
    token_text(bytes.expose())
}

/// A token's text, which must be ASCII to be one.
pub fn token_text(bytes: &[u8]) -> Result<SecretString> {
    std::str::from_utf8(bytes)
        .map(|t| SecretString::new(t.to_string()))
        .map_err(|_| Error::Config("bootstrap token is malformed: it is not ASCII".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_capped_and_give_up_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("agent-init-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(read_capped(&p, 10, t).unwrap().0.expose(), b"0123456789");
        assert!(matches!(read_capped(&p, 9, t), Err(ReadFailure::TooBig)));
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), 4096, t),
            Err(ReadFailure::TooBig)
        ));
        // A FIFO with no writer blocks open(2) for ever.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let start = Instant::now();
        let r = read_capped(&fifo, 4096, Duration::from_millis(200));
        assert!(matches!(r, Err(ReadFailure::TimedOut)), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let e = read_config("AGENT_INIT_CA_FILE", &fifo, 4096, Duration::from_millis(50));
        assert_eq!(e.unwrap_err().exit_code(), 78);
        let e = read(&fifo, 4096, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.exit_code(), 69, "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
