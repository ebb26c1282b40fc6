//! The inputs of a seal or an update: dotenv files (`--secrets-file`),
//! `--secrets KEY=VALUE` flags and `--secret-mount [VAR=]PATH` files, read
//! into the [`Input`] list that [`crate::protocol::update::merge`] takes.
//!
//! Guarantees: after [`gather`] returns, each env input obeys §6 (through
//! [`crate::local::dotenv`] and the flag parser) and appears once, flags over files
//! and a later file over an earlier one, as in local mode; each file input
//! has a §6.1 file name (the mounted file's base name, as `lk agent
//! --secret-mount` names it), at most 1 MiB of content in a zeroizing buffer,
//! and an `env` obeying §6.1. A mount that cannot be read is 78 naming its
//! path, one over 1 MiB or with a name §6.1 refuses is 65. Origins name files
//! and flags, never a value. The inherited environment is seen by `${VAR}` in
//! dotenv files and is not itself an input.

use crate::base::error::{Error, Result};
use crate::base::sensitive::{SecretBytes, SecretString};
use crate::protocol::rules::{check_file_content, check_file_env, check_file_name, MAX_FILE};
use crate::protocol::update::{Input, Value};
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The dotenv files `seal` reads when given no input flag, later over
/// earlier: the files `lk agent create` looks for.
pub const SEAL_FILES: [&str; 3] = [".env", ".env.local", ".env.production"];

/// The local inputs named on the command line, each list in its order:
/// what local mode runs with and what `seal` seals.
#[derive(Debug, Default)]
pub struct Inputs {
    /// `--secrets-file`.
    pub files: Vec<PathBuf>,
    /// `--secrets KEY=VALUE`, checked (§6).
    pub flags: Vec<(String, SecretBytes)>,
    /// `--secret-mount [VAR=]PATH`.
    pub mounts: Vec<Mount>,
}

impl Inputs {
    /// No input flag was given.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.flags.is_empty() && self.mounts.is_empty()
    }
}

/// A `--secret-mount [VAR=]PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The variable that receives the file's path.
    pub env: Option<String>,
    pub path: PathBuf,
}

/// Parses `[VAR=]PATH`. The text before the first `=` is a `VAR` when it is
/// a valid variable name; otherwise the whole argument is the path (write
/// `./a=b` for a file whose name has an `=` after a name-like start).
pub fn parse_mount(arg: &OsStr) -> Result<Mount> {
    let b = arg.as_bytes();
    let (env, path) = match b.iter().position(|&c| c == b'=') {
        Some(eq)
            if std::str::from_utf8(&b[..eq])
                .is_ok_and(|n| crate::protocol::rules::check_name(n).is_ok()) =>
        {
            (
                Some(String::from_utf8_lossy(&b[..eq]).into_owned()),
                OsStr::from_bytes(&b[eq + 1..]),
            )
        }
        _ => (None, arg),
    };
    if path.is_empty() {
        return Err(Error::Usage(
            "--secret-mount takes [VAR=]PATH and the path is empty (see agent-init --help)".into(),
        ));
    }
    Ok(Mount {
        env,
        path: PathBuf::from(path),
    })
}

/// The file secret's name for `path`: its base name, checked against §6.1.
pub fn mount_name(path: &Path) -> Result<String> {
    let refused = |why: &str| Error::Refused(format!("--secret-mount {}: {why}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| refused("the path has no file name"))?
        .to_str()
        .ok_or_else(|| refused("the file name is not UTF-8"))?;
    check_file_name(name).map_err(|why| refused(&format!("as a secret's file {why}")))?;
    Ok(name.to_string())
}

/// Reads one mount: its name, its content (at most 1 MiB) and its `VAR`.
pub fn read_mount(m: &Mount) -> Result<Input> {
    let shown = m.path.display();
    let name = mount_name(&m.path)?;
    if let Some(env) = &m.env {
        check_file_env(env)
            .map_err(|why| Error::Refused(format!("--secret-mount {shown}: {why}")))?;
    }
    let unreadable = |e: std::io::Error| {
        Error::Config(format!(
            "--secret-mount {shown}: {}",
            crate::sys::io_reason(&e)
        ))
    };
    let f = std::fs::File::open(&m.path).map_err(unreadable)?;
    let meta = f.metadata().map_err(unreadable)?;
    if meta.is_dir() {
        return Err(Error::Config(format!(
            "--secret-mount {shown}: is a directory, not a file"
        )));
    }
    let too_big = || {
        Error::Refused(format!(
            "--secret-mount {shown}: {}",
            check_file_content(MAX_FILE + 1).unwrap_err()
        ))
    };
    if meta.len() > MAX_FILE as u64 {
        return Err(too_big());
    }
    // Room for one byte more than the cap, so a file that grew since the
    // metadata is caught, and the buffer never reallocates (no stray copy).
    let mut content = SecretBytes::with_capacity(meta.len() as usize + 1);
    f.take(MAX_FILE as u64 + 1)
        .read_to_end(content.expose_mut())
        .map_err(unreadable)?;
    if content.len() > MAX_FILE {
        return Err(too_big());
    }
    Ok(Input {
        name,
        value: Value::File {
            content,
            env: m.env.clone(),
        },
        origin: format!("--secret-mount {shown}"),
    })
}

/// Those of `names` that exist in the working directory as a regular file or
/// a FIFO (a secret manager's named pipe, as python-dotenv accepts), in order.
pub fn existing_files(names: &[&str]) -> Vec<PathBuf> {
    let readable = |p: &PathBuf| {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() || m.file_type().is_fifo())
    };
    names.iter().map(PathBuf::from).filter(readable).collect()
}

/// Reads every input: dotenv `files` in order, `flags` over them, then each
/// of `mounts`. `${VAR}` in a file sees the flags first, then earlier keys and
/// files; never the environment of the process that seals, which is not
/// sealed: what is sealed agrees with itself wherever it is opened.
pub fn gather(
    files: &[PathBuf],
    flags: Vec<(String, SecretBytes)>,
    mounts: &[Mount],
) -> Result<Vec<Input>> {
    let over: Vec<(OsString, SecretBytes)> = flags
        .iter()
        .map(|(n, v)| (OsString::from(n), v.clone()))
        .collect();
    let (loaded, _) = crate::local::load::load_files(files, &over, true)?;
    drop(over);
    let env = crate::env::Environment::local(Vec::new(), loaded, flags);
    let mut inputs = Vec::with_capacity(env.len() + mounts.len());
    for v in env.vars() {
        let name = v.name.to_string_lossy().into_owned();
        let value = std::str::from_utf8(v.value.expose())
            .map_err(|_| Error::Refused(format!("{name}: value is not UTF-8")))?;
        inputs.push(Input {
            value: Value::Env(SecretString::new(value.to_string())),
            origin: v.origin.to_string(),
            name,
        });
    }
    for m in mounts {
        inputs.push(read_mount(m)?);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("agent-init-inputs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn mount_syntax_takes_an_optional_variable_before_the_path() {
        let m = parse_mount(OsStr::new("GOOGLE_APPLICATION_CREDENTIALS=/run/g.json")).unwrap();
        assert_eq!(m.env.as_deref(), Some("GOOGLE_APPLICATION_CREDENTIALS"));
        assert_eq!(m.path, Path::new("/run/g.json"));
        let m = parse_mount(OsStr::new("./creds/key.pem")).unwrap();
        assert_eq!(m.env, None);
        assert_eq!(m.path, Path::new("./creds/key.pem"));
        // Not a variable name before the `=`: all of it is the path.
        let m = parse_mount(OsStr::new("./a=b")).unwrap();
        assert_eq!((m.env, m.path), (None, PathBuf::from("./a=b")));
        for bad in ["", "VAR="] {
            assert_eq!(parse_mount(OsStr::new(bad)).unwrap_err().exit_code(), 64);
        }
    }

    #[test]
    fn a_mount_is_named_by_its_base_name_and_read_whole() {
        let d = tmp("read");
        let p = d.join("google-credentials.json");
        let bytes: Vec<u8> = (0..=255u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let m = Mount {
            env: Some("GOOGLE_APPLICATION_CREDENTIALS".into()),
            path: p.clone(),
        };
        let i = read_mount(&m).unwrap();
        assert_eq!(i.name, "google-credentials.json");
        let Value::File { content, env } = i.value else {
            panic!("not a file input")
        };
        assert_eq!(content.expose(), &bytes[..]);
        assert_eq!(env.as_deref(), Some("GOOGLE_APPLICATION_CREDENTIALS"));
        assert_eq!(i.origin, format!("--secret-mount {}", p.display()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_or_unreadable_mount_is_78_and_an_oversized_or_badly_named_one_65() {
        let d = tmp("bad");
        let mount = |p: &Path| Mount {
            env: None,
            path: p.to_path_buf(),
        };
        let missing = d.join("missing.json");
        let e = read_mount(&mount(&missing)).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.to_string().contains("missing.json"), "{e}");
        assert_eq!(read_mount(&mount(&d)).unwrap_err().exit_code(), 78);
        let exact = d.join("exact.bin");
        std::fs::write(&exact, vec![7u8; MAX_FILE]).unwrap();
        assert!(read_mount(&mount(&exact)).is_ok());
        let big = d.join("big.bin");
        std::fs::write(&big, vec![7u8; MAX_FILE + 1]).unwrap();
        let e = read_mount(&mount(&big)).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("big.bin"), "{e}");
        let hidden = d.join(".hidden");
        std::fs::write(&hidden, b"x").unwrap();
        assert_eq!(read_mount(&mount(&hidden)).unwrap_err().exit_code(), 65);
        let bad_var = Mount {
            env: Some("LIVEKIT_API_KEY".into()),
            path: exact.clone(),
        };
        assert_eq!(read_mount(&bad_var).unwrap_err().exit_code(), 65);
        if !nix::unistd::geteuid().is_root() {
            let locked = d.join("locked.json");
            std::fs::write(&locked, b"x").unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
            assert_eq!(read_mount(&mount(&locked)).unwrap_err().exit_code(), 78);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn gather_applies_local_precedence_and_appends_mounts() {
        let d = tmp("gather");
        let a = d.join("a.env");
        let b = d.join("b.env");
        std::fs::write(&a, "X=from-a\nY=from-a\nZ=${HOME_ISH}\n").unwrap();
        std::fs::write(&b, "Y=from-b\n").unwrap();
        let m = d.join("k.pem");
        std::fs::write(&m, b"PEM").unwrap();
        let inputs = gather(
            &[a.clone(), b.clone()],
            vec![
                ("X".into(), SecretBytes::new(b"from-flag".to_vec())),
                ("HOME_ISH".into(), SecretBytes::new(b"/home/x".to_vec())),
            ],
            &[Mount {
                env: Some("K".into()),
                path: m,
            }],
        )
        .unwrap();
        let got: Vec<(String, String, String)> = inputs
            .iter()
            .map(|i| {
                let v = match &i.value {
                    Value::Env(v) => v.expose().to_string(),
                    Value::File { content, .. } => String::from_utf8_lossy(content.expose()).into(),
                };
                (i.name.clone(), v, i.origin.clone())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("X".into(), "from-flag".into(), "flag --secrets".into()),
                ("HOME_ISH".into(), "/home/x".into(), "flag --secrets".into()),
                ("Y".into(), "from-b".into(), format!("file {}", b.display())),
                (
                    "Z".into(),
                    "/home/x".into(),
                    format!("file {}", a.display())
                ),
                (
                    "k.pem".into(),
                    "PEM".into(),
                    format!("--secret-mount {}", d.join("k.pem").display())
                ),
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
