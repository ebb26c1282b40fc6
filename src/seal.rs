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
use crate::env::{Environment, Origin};
use crate::error::{Error, Result};
use crate::secrets::LIVEKIT_NAMES;
use crate::sensitive::SecretBytes;
use crate::token::Token;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Runs the `seal` subcommand.
pub fn run(mut cfg: Config) -> Result<i32> {
    let Action::Seal { out, token } = std::mem::replace(&mut cfg.action, Action::Help) else {
        return Err(Error::Internal(
            "seal::run called for another action".into(),
        ));
    };
    let token = match token {
        Some(t) => Token::parse(&t)?,
        None => Token::generate()?,
    };
    let files = crate::local_files(&cfg)?;
    let inherited = std::mem::take(&mut cfg.inherited);
    let loaded = crate::load_files(&files, &inherited)?;
    drop(inherited);
    // Only the inputs are sealed: files, then flags over them; not the inherited environment.
    let env = Environment::local(Vec::new(), loaded, std::mem::take(&mut cfg.secrets_flags));
    let now = rfc3339_now();
    let mut secrets = Vec::new();
    let mut livekit = serde_json::Map::new();
    for v in env.vars() {
        let name = v.name.to_string_lossy().into_owned();
        let value = String::from_utf8(v.value.expose().to_vec())
            .map_err(|_| Error::Refused(format!("{name}: value is not UTF-8")))?;
        if let Some(i) = LIVEKIT_NAMES.iter().position(|n| *n == name) {
            let key = ["url", "api_key", "api_secret"][i];
            livekit.insert(key.into(), value.into());
            continue;
        }
        debug_assert!(matches!(v.origin, Origin::File(_) | Origin::Flag));
        secrets.push(serde_json::json!({
            "name": name, "value": value, "created_at": now, "updated_at": now,
        }));
    }
    let mut doc = serde_json::json!({ "secrets": secrets });
    if !livekit.is_empty() {
        doc["livekit"] = livekit.into();
    }
    let plaintext = SecretBytes::new(serde_json::to_vec(&doc).expect("JSON of strings"));
    drop(doc);
    // The same checks the opener applies: a bundle seal writes, open accepts.
    crate::secrets::parse(plaintext.expose())?;
    let sealed = bundle::seal(&token, plaintext.expose())?;
    write_atomically(&out, sealed.as_bytes())?;
    crate::info!(
        "sealed {} secrets{} into {} for token {}",
        secrets_count(&env),
        if env.get("LIVEKIT_URL").is_some() {
            " and the livekit member"
        } else {
            ""
        },
        out.display(),
        token.id_b64()
    );
    let mut line = token.encode().expose().as_bytes().to_vec();
    line.push(b'\n');
    let line = SecretBytes::new(line);
    std::io::stdout()
        .write_all(line.expose())
        .map_err(|e| Error::Internal(format!("cannot write the token to stdout: {e}")))?;
    Ok(0)
}

fn secrets_count(env: &Environment) -> usize {
    env.vars()
        .iter()
        .filter(|v| !LIVEKIT_NAMES.iter().any(|n| v.name == *n))
        .count()
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same
/// directory, then renames it over `path`: readers see the old file or the
/// whole new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Usage(format!("--out {} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let fail = |e: std::io::Error| {
        Error::Config(format!(
            "cannot write {}: {}",
            path.display(),
            crate::sys::io_reason(&e)
        ))
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let res = f.write_all(bytes).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = res.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    fn timestamps_are_rfc3339_utc() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
