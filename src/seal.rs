//! `agent-init seal`: turn dotenv files and flags into a sealed bundle
//! (PROTOCOL.md §5 and §6), for a mounted-file production path without a
//! secrets service.
//!
//! Guarantees: the plaintext obeys §6 (it is checked by the same
//! [`crate::secrets::parse`] that opening uses); `LIVEKIT_*` inputs go into the
//! `livekit` member; the bundle file is written atomically with mode 0600;
//! stdout carries the token and nothing else.

use crate::bundle;
use crate::config::{Action, Config};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::secrets::LIVEKIT_NAMES;
use crate::sensitive::SecretBytes;
use crate::token::Token;
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The plaintext of §6, borrowing every value: it is serialized once, straight
/// into a zeroizing buffer of the exact size.
#[derive(Serialize)]
struct Plaintext<'a> {
    secrets: Vec<PlainSecret<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    livekit: Option<PlainLiveKit<'a>>,
}

#[derive(Serialize)]
struct PlainSecret<'a> {
    name: &'a str,
    value: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
}

#[derive(Serialize, Default)]
struct PlainLiveKit<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_secret: Option<&'a str>,
}

/// Counts bytes, to size the plaintext buffer before writing it.
struct Count(usize);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the `seal` subcommand.
///
/// Nothing on disk changes until the token is delivered: the bundle is
/// sealed in memory, `--out` is checked, the token is written to stdout, and
/// only then is the bundle written. A bundle sealed for a token nobody
/// received would make the next start fail with 65.
pub fn run(mut cfg: Config) -> Result<i32> {
    // `--token` and `--secrets` values leave /proc/PID/cmdline now.
    crate::sys::scrub_args(secret_arg_tails);
    let Action::Seal { out, token } = std::mem::replace(&mut cfg.action, Action::Help) else {
        return Err(Error::Internal(
            "seal::run called for another action".into(),
        ));
    };
    let token = match token {
        Some(t) => Token::parse(t.expose())?,
        None => Token::generate()?,
    };
    check_out(&out)?;
    let files = crate::local_files(&cfg)?;
    // Nothing of the inherited environment is sealed, so `${VAR}` does not
    // see it either: what is sealed agrees with itself wherever it is opened.
    drop(std::mem::take(&mut cfg.inherited));
    let flags: Vec<(std::ffi::OsString, SecretBytes)> = cfg
        .secrets_flags
        .iter()
        .map(|(n, v)| (n.into(), v.clone()))
        .collect();
    let (loaded, _) = crate::load_files(&files, &flags, true)?;
    drop(flags);
    let nflags = cfg.secrets_flags.len();
    let env = Environment::local(Vec::new(), loaded, std::mem::take(&mut cfg.secrets_flags));
    let plaintext = plaintext(&env, &crate::update::now())?;
    // The same checks the opener applies: a bundle seal writes, open accepts.
    let checked = crate::secrets::parse(plaintext.expose())?;
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

    let sources: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if env.is_empty() {
        crate::warn!("nothing to seal: no dotenv file and no --secrets; the bundle is empty");
    }
    crate::info!(
        "sealed {} secret{}{} from {}{} into {} for token {}",
        checked.secrets.len(),
        if checked.secrets.len() == 1 { "" } else { "s" },
        if checked.livekit.vars().next().is_some() {
            " and the livekit member"
        } else {
            ""
        },
        if sources.is_empty() {
            "no file".to_string()
        } else {
            sources.join(", ")
        },
        if nflags == 0 { "" } else { " and --secrets" },
        out.display(),
        token.id_b64()
    );
    Ok(0)
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

/// The values of `--token` and `--secrets` in seal's own arguments
/// (argv[0] first): for each, its index and the offset its value starts at.
fn secret_arg_tails(args: &[&[u8]]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 1;
    while let Some(&a) = args.get(i) {
        match a {
            b"--token" | b"--secrets" => {
                if args.get(i + 1).is_some() {
                    // `--secrets NAME=VALUE` keeps its name; a token goes whole.
                    let v = args[i + 1];
                    let from = match a {
                        b"--secrets" => v.iter().position(|&b| b == b'=').map_or(0, |eq| eq + 1),
                        _ => 0,
                    };
                    out.push((i + 1, from));
                }
                i += 1;
            }
            _ if a.starts_with(b"--token=") => out.push((i, "--token=".len())),
            _ if a.starts_with(b"--secrets=") => {
                let v = &a["--secrets=".len()..];
                let eq = v.iter().position(|&b| b == b'=').map_or(0, |eq| eq + 1);
                out.push((i, "--secrets=".len() + eq));
            }
            b"--secrets-file" | b"--out" | b"--token-file" => i += 1,
            _ => {}
        }
        i += 1;
    }
    out
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

/// Builds the §6 plaintext: `LIVEKIT_*` into the `livekit` member, every
/// other variable a secret stamped `now`.
fn plaintext(env: &Environment, now: &str) -> Result<SecretBytes> {
    let mut secrets = Vec::with_capacity(env.len());
    let mut livekit = PlainLiveKit::default();
    for v in env.vars() {
        let name = v
            .name
            .to_str()
            .ok_or_else(|| Error::Internal("a variable name is not UTF-8".into()))?;
        let value = std::str::from_utf8(v.value.expose())
            .map_err(|_| Error::Refused(format!("{name}: value is not UTF-8")))?;
        match LIVEKIT_NAMES.iter().position(|n| *n == name) {
            Some(0) => livekit.url = Some(value),
            Some(1) => livekit.api_key = Some(value),
            Some(_) => livekit.api_secret = Some(value),
            None => secrets.push(PlainSecret {
                name,
                value,
                created_at: now,
                updated_at: now,
            }),
        }
    }
    let has_livekit =
        livekit.url.is_some() || livekit.api_key.is_some() || livekit.api_secret.is_some();
    let doc = Plaintext {
        secrets,
        livekit: has_livekit.then_some(livekit),
    };
    let mut count = Count(0);
    serde_json::to_writer(&mut count, &doc).expect("JSON of strings");
    let mut buf = SecretBytes::with_capacity(count.0);
    serde_json::to_writer(buf.expose_mut(), &doc).expect("JSON of strings");
    Ok(buf)
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
    fn plaintext_puts_livekit_names_in_the_livekit_member_and_obeys_section_6() {
        let sb = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
        let mut env = Environment::default();
        env.set("A".into(), sb("a\"\n\u{2603}"), crate::env::Origin::Flag);
        env.set(
            "LIVEKIT_URL".into(),
            sb("wss://x"),
            crate::env::Origin::Flag,
        );
        env.set(
            "LIVEKIT_API_SECRET".into(),
            sb("s"),
            crate::env::Origin::Flag,
        );
        let mut p = plaintext(&env, "2026-01-02T03:04:05Z").unwrap();
        // Sized exactly: the buffer never grew (a regrowth would leave a copy behind).
        assert_eq!(p.len(), p.expose_mut().capacity());
        let v: serde_json::Value = serde_json::from_slice(p.expose()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "secrets": [{"name": "A", "value": "a\"\n\u{2603}",
                             "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z"}],
                "livekit": {"url": "wss://x", "api_secret": "s"}
            })
        );
        let checked = crate::secrets::parse(p.expose()).unwrap();
        assert_eq!(checked.secrets.len(), 1);
        let none = plaintext(&Environment::default(), "t").unwrap();
        assert_eq!(none.expose(), b"{\"secrets\":[]}");
    }

    #[test]
    fn token_and_secrets_values_are_found_in_seal_s_arguments() {
        let a: Vec<&[u8]> = [
            "agent-init",
            "seal",
            "--token",
            "T1",
            "--secrets",
            "A=v1",
            "--out",
            "--token",
            "--token=T2",
            "--secrets=B=v2",
            "--token-file",
            "--secrets",
            "--secrets",
        ]
        .iter()
        .map(|s| s.as_bytes())
        .collect();
        // `--out --token` is a file called --token; `--token-file --secrets` one called --secrets.
        assert_eq!(secret_arg_tails(&a), [(3, 0), (5, 2), (8, 8), (9, 12)],);
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

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = crate::update::now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
