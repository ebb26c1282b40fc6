//! `agent-init seal`: turn dotenv files, flags and files into a sealed
//! bundle (PROTOCOL.md §5, §6, §6.1), or update one, for a mounted-file
//! production path without a secrets service.
//!
//! Guarantees: the inputs are read by [`crate::local::inputs::gather`] and merged by
//! [`crate::protocol::update::merge`], the same code the agent-secrets CLI runs, so
//! dates follow §6.2 (resealing the same inputs changes no date); the
//! plaintext obeys §6 and §6.1 (it is checked by the same
//! [`crate::protocol::secrets::parse`] that opening uses); an existing bundle is
//! updated only with a token that opens it (else 65), and replaced without
//! one only with `--overwrite` (else 64), so a bundle sealed for a token in
//! use is never lost by accident; the bundle file is written atomically with
//! mode 0600, after the token reached stdout; stdout carries the token and
//! nothing else, or with `--list` the listing and no token; no listing or
//! message shows a value.

use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::base::sensitive::SecretString;
use crate::protocol::bundle;
use crate::protocol::token::Token;
use crate::protocol::update::{Merged, Row};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `agent-init seal` was asked to do: its own flags and the inputs.
#[derive(Debug)]
pub struct SealArgs {
    /// `--out`: the bundle file to write (or update).
    pub out: PathBuf,
    /// `--token` / `--token-file`: seal for an existing token instead of
    /// making one.
    pub token: Option<SecretString>,
    pub options: SealOptions,
    /// What to seal: `--secrets-file`, `--secrets` and `--secret-mount`.
    pub inputs: crate::local::inputs::Inputs,
}

/// How `seal` treats an existing bundle, and whether it only lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SealOptions {
    /// `--overwrite`: replace every secret with the given ones.
    pub overwrite: bool,
    /// `--remove NAME`, in order.
    pub remove: Vec<String>,
    /// `--list`: print the result, write nothing.
    pub list: bool,
    /// `--json`: with `--list`, as JSON.
    pub json: bool,
}

/// Runs the `seal` subcommand.
///
/// Nothing on disk changes until the token is delivered: the bundle is
/// sealed in memory, `--out` is checked, the token is written to stdout, and
/// only then is the bundle written. A bundle sealed for a token nobody
/// received would make the next start fail with 65.
pub fn run(args: SealArgs) -> Result<i32> {
    let SealArgs {
        out,
        token,
        options: opts,
        inputs,
    } = args;
    let given_token = token.is_some();
    let token = match token {
        Some(t) => Token::parse(t.expose())?,
        None => Token::generate()?,
    };
    check_out(&out)?;
    let old = match (std::fs::symlink_metadata(&out).is_ok(), given_token) {
        (true, true) => Some(open_existing(&out, &token)?),
        (true, false) if !opts.overwrite && !opts.list => {
            return Err(Error::Usage(format!(
                "--out {} exists: without a token seal makes a new one, and the secrets sealed for the old token would be lost; give that token (--token-file, LIVEKIT_BOOTSTRAP_TOKEN_FILE) to update the bundle, or --overwrite to replace it (see agent-init --help)",
                out.display()
            )));
        }
        _ => None,
    };
    let no_input_flag = inputs.is_empty();
    let crate::local::inputs::Inputs {
        files: secrets_files,
        flags: secrets_flags,
        mounts: secret_mounts,
    } = inputs;
    // `seal --list` on an existing bundle with no input: the bundle as it is.
    let as_is = opts.list && no_input_flag && old.is_some();
    let files: Vec<PathBuf> = if !no_input_flag {
        secrets_files
    } else if as_is {
        Vec::new()
    } else {
        crate::local::inputs::existing_files(&crate::local::inputs::SEAL_FILES)
    };
    if no_input_flag && files.is_empty() && opts.remove.is_empty() && !as_is {
        return Err(Error::Usage(format!(
            "nothing to seal: no --secrets-file, --secrets or --secret-mount, and none of {} in the working directory (see agent-init --help)",
            crate::local::inputs::SEAL_FILES.join(", ")
        )));
    }
    for f in &files {
        crate::info!("reading {}", f.display());
    }
    // Nothing of the inherited environment is sealed (`SealArgs` has none),
    // so `${VAR}` does not see it either: what is sealed agrees with itself
    // wherever it is opened.
    let inputs = crate::local::inputs::gather(&files, secrets_flags, &secret_mounts)?;
    let updating = old.is_some();
    let merged = crate::protocol::update::merge(
        old,
        inputs,
        &opts.remove,
        opts.overwrite,
        &crate::base::time::rfc3339_now(),
    )?;
    if opts.list {
        let text = if opts.json {
            list_json(&merged)
        } else {
            list_text(&merged.rows)
        };
        return std::io::stdout()
            .write_all(text.as_bytes())
            .map(|_| 0)
            .map_err(|e| Error::Internal(format!("cannot write the listing to stdout: {e}")));
    }
    if merged.rows.is_empty() && !updating {
        return Err(Error::Usage(
            "nothing to seal: the inputs hold no secret; seal refuses to write an empty bundle"
                .into(),
        ));
    }
    let plaintext = crate::protocol::secrets::to_plaintext(&merged.secrets);
    // The same checks the opener applies: a bundle seal writes, open accepts.
    crate::protocol::secrets::parse_noting(plaintext.expose(), crate::env::warn_dropped)?;
    let sealed = bundle::seal(&token, plaintext.expose())?;
    drop(plaintext);
    // The AES key schedule and seal_key of the sealing lie in dead frames
    // below this one; no key schedule outlives its use, here as in a run.
    crate::sys::scrub_stack();

    let mut line = token.encode().expose().as_bytes().to_vec();
    line.push(b'\n');
    let line = SecretBytes::new(line);
    deliver(line.expose()).map_err(|e| {
        Error::Internal(format!(
            "cannot write the token to stdout: {}; {} was not written",
            e.desc(),
            out.display()
        ))
    })?;
    drop(line);
    write_atomically(&out, sealed.as_bytes())?;
    crate::info!(
        "{} {} for token {}: {}",
        if updating { "updated" } else { "sealed" },
        out.display(),
        token.id_b64(),
        summary(&merged)
    );
    Ok(0)
}

/// Reads and opens an existing bundle with the token that must open it.
fn open_existing(out: &Path, token: &Token) -> Result<crate::protocol::secrets::Plaintext> {
    let shown = out.display();
    let unreadable =
        |e: std::io::Error| Error::Config(format!("--out {shown}: {}", crate::sys::io_reason(&e)));
    let len = std::fs::metadata(out).map_err(unreadable)?.len();
    if len > crate::protocol::bundle::DEFAULT_MAX_BUNDLE {
        return Err(Error::Refused(format!(
            "--out {shown} is {len} bytes, over the {} a bundle may have",
            crate::protocol::bundle::DEFAULT_MAX_BUNDLE
        )));
    }
    let body = std::fs::read(out).map_err(unreadable)?;
    let plain = bundle::open(token, &body).map_err(|e| {
        Error::Refused(format!(
            "--out {shown} cannot be updated with this token: {e}"
        ))
    })?;
    crate::protocol::secrets::parse_noting(plain.expose(), crate::env::warn_dropped)
}

/// What changed, by count, with the removed names.
fn summary(m: &Merged) -> String {
    use crate::protocol::update::Status;
    let n = |s: Status| m.rows.iter().filter(|r| r.status == s).count();
    let files = m
        .rows
        .iter()
        .filter(|r| r.kind == crate::protocol::secrets::Kind::File)
        .count();
    let mut t = format!(
        "{} secrets ({files} files): {} added, {} updated, {} unchanged, {} kept",
        m.rows.len(),
        n(Status::Added),
        n(Status::Updated),
        n(Status::Unchanged),
        n(Status::Kept)
    );
    if !m.removed.is_empty() {
        t.push_str(&format!(", removed {}", m.removed.join(", ")));
    }
    t
}

/// A listing field on one line: control characters (from a path) become `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `NAME<TAB>KIND<TAB>ORIGIN<TAB>CREATED_AT<TAB>UPDATED_AT`, `-` for a date
/// the secret does not have; never a value.
fn list_text(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let date = |d: &Option<String>| d.as_deref().map_or("-".to_string(), printable);
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            printable(&r.name),
            r.kind.as_str(),
            printable(&r.origin),
            date(&r.created_at),
            date(&r.updated_at)
        ));
    }
    out
}

/// The listing as `{"secrets": [{"name", "kind", "env"?, "origin", "status",
/// "created_at"?, "updated_at"?}], "removed": [...]}`.
fn list_json(m: &Merged) -> String {
    let rows: Vec<serde_json::Value> = m
        .rows
        .iter()
        .map(|r| {
            let mut o = serde_json::json!({
                "name": r.name,
                "kind": r.kind.as_str(),
                "origin": r.origin,
                "status": r.status.as_str(),
            });
            if let Some(e) = &r.env {
                o["env"] = e.clone().into();
            }
            if let Some(t) = &r.created_at {
                o["created_at"] = t.clone().into();
            }
            if let Some(t) = &r.updated_at {
                o["updated_at"] = t.clone().into();
            }
            o
        })
        .collect();
    let mut s = serde_json::json!({"secrets": rows, "removed": m.removed}).to_string();
    s.push('\n');
    s
}

/// Writes all of `bytes` to file descriptor 1 itself. Rust's `Stdout`
/// reports success when descriptor 1 is closed, which would lose the token.
fn deliver(mut bytes: &[u8]) -> std::result::Result<(), nix::errno::Errno> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    while !bytes.is_empty() {
        match nix::unistd::write(stdout.as_fd(), bytes) {
            Ok(0) => return Err(nix::errno::Errno::EIO),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Refuses an `--out` that exists and is not a regular file: renaming over
/// `/dev/null` or `/dev/stdout` would turn them into bundle files for every
/// process that shares them, and a symbolic link is refused for the same
/// reason. Also checks that the directory can take the bundle, before the
/// token is printed.
fn check_out(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let t = m.file_type();
            if t.is_file() {
                None
            } else if t.is_dir() {
                Some("a directory")
            } else if t.is_symlink() {
                Some("a symbolic link")
            } else if t.is_char_device() || t.is_block_device() {
                Some("a device")
            } else if t.is_fifo() {
                Some("a named pipe")
            } else {
                Some("a socket")
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::Config(format!(
                "--out {}: {}",
                path.display(),
                crate::sys::io_reason(&e)
            )))
        }
    };
    if let Some(kind) = kind {
        return Err(Error::Config(format!(
            "--out {} is {kind}, not a regular file; seal replaces only a regular file",
            path.display()
        )));
    }
    let dir = parent(path);
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        Error::Config(format!(
            "cannot write {}: {}: {}",
            path.display(),
            dir.display(),
            e.desc()
        ))
    })
}

/// The directory `path` is in.
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same
/// directory, then renames it over `path`: readers see the old file or the
/// whole new one, never a part, and never a mode wider than 0600. An
/// existing `path` must be a regular file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::Usage(format!("--out {} is not a file path", path.display())))?;
    let fail = |e: std::io::Error| {
        Error::Config(format!(
            "cannot write {}: {}",
            path.display(),
            crate::sys::io_reason(&e)
        ))
    };
    // A stale temporary from a crashed run must not block this one.
    let (tmp, mut f) = (0..100)
        .map(|attempt| {
            let tmp = dir.join(format!(
                ".{}.tmp{}.{attempt}",
                name.to_string_lossy(),
                std::process::id()
            ));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map(|f| (tmp, f))
        })
        .find(|r| !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists))
        .unwrap_or_else(|| Err(std::io::ErrorKind::AlreadyExists.into()))
        .map_err(fail)?;
    // `mode` is filtered by the umask; set it exactly.
    let res = f
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| f.write_all(bytes))
        .and_then(|_| f.sync_all());
    drop(f);
    // Checked again just before the rename, which would replace anything.
    if let Err(e) = check_out(path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = res.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    // Make the rename itself durable; a failure here loses nothing already written.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_a_0600_file_and_no_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("agent-init-seal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn out_must_be_absent_or_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("agent-init-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(check_out(&dir.join("new.json")).is_ok());
        std::fs::write(dir.join("old.json"), "x").unwrap();
        assert!(check_out(&dir.join("old.json")).is_ok());
        std::os::unix::fs::symlink("old.json", dir.join("link")).unwrap();
        for (p, kind) in [("link", "a symbolic link"), (".", "a directory")] {
            let e = check_out(&dir.join(p)).unwrap_err();
            assert_eq!(e.exit_code(), 78);
            assert!(e.to_string().contains(kind), "{e}");
        }
        let e = check_out(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("is a device"), "{e}");
        let e = check_out(&dir.join("missing/b.json")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
