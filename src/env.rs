//! The environment the command receives (PROTOCOL.md §7): merge, check, build.
//!
//! After [`Environment::check`] succeeds, every required name is present and
//! non-empty, no `KEY=VALUE` string exceeds the kernel's `MAX_ARG_STRLEN`,
//! and argv plus envp fit the kernel's `ARG_MAX` budget, so `execve` cannot
//! fail late with `E2BIG`. The bootstrap variables (`LIVEKIT_BOOTSTRAP_TOKEN`,
//! `LIVEKIT_BOOTSTRAP_TOKEN_FILE`, `LIVEKIT_SECRETS_URL`, `AGENT_INIT_*`) are
//! never in it. Values live in zeroizing buffers; a listing shows names and
//! origins, never values.

use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::protocol::rules::{is_stripped, LIVEKIT_NAMES};
use crate::protocol::secrets::{Plaintext, Warning};
use std::collections::HashMap;
use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The kernel's limit on one argv or envp string, NUL included (32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The bundle's `livekit` member (production only; locally a dotenv
    /// file's `LIVEKIT_*` is `File`, like any other line).
    Platform,
    /// A bundle secret, with its `updated_at` when the bundle has one.
    Bundle { updated_at: Option<String> },
    /// agent-init's own environment.
    Inherited,
    /// A dotenv file.
    File(PathBuf),
    /// A `--secrets KEY=VALUE` flag.
    Flag,
    /// The path of the file secret of this name (§6.1 `env`), from the
    /// bundle or a `--secret-mount`.
    SecretFile(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Platform => f.write_str("bundle (livekit)"),
            Origin::Bundle { .. } => f.write_str("bundle"),
            Origin::Inherited => f.write_str("inherited"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Flag => f.write_str("flag --secrets"),
            Origin::SecretFile(name) => write!(f, "path of file secret {name}"),
        }
    }
}

/// Logs a warning of [`crate::protocol::secrets::parse_noting`]: a bundle
/// secret the command will not get as written (a `LIVEKIT_*` name, a name §7
/// never passes on). Whoever opens a bundle passes it; the protocol module
/// does no I/O.
pub fn warn_dropped(w: Warning<'_>) {
    crate::warn!("{w}");
}

/// The variables of each loaded dotenv file, in file order.
pub type FileVars = Vec<(PathBuf, Vec<(String, SecretBytes)>)>;

/// One variable.
#[derive(Debug, Clone)]
pub struct Var {
    pub name: OsString,
    pub value: SecretBytes,
    pub origin: Origin,
}

/// An ordered set of variables, one per name.
#[derive(Debug, Default)]
pub struct Environment {
    vars: Vec<Var>,
    index: HashMap<OsString, usize>,
}

impl Environment {
    /// Sets `name`, replacing any earlier value in place.
    pub fn set(&mut self, name: OsString, value: SecretBytes, origin: Origin) {
        if is_stripped(&name) {
            return;
        }
        match self.index.get(&name) {
            Some(&i) => {
                self.vars[i].value = value;
                self.vars[i].origin = origin;
            }
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push(Var {
                    name,
                    value,
                    origin,
                });
            }
        }
    }

    /// Sets `name` only if it is not set yet.
    pub fn set_default(&mut self, name: OsString, value: SecretBytes, origin: Origin) {
        if !self.index.contains_key(&name) {
            self.set(name, value, origin);
        }
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.index.get(OsStr::new(name)).map(|&i| &self.vars[i])
    }

    /// Every variable, in order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Production (§7): bundle `livekit` > agent-init's LIVEKIT_* > bundle secrets > inherited.
    pub fn production(inherited: Vec<(OsString, SecretBytes)>, secrets: Plaintext) -> Environment {
        let mut env = Environment::default();
        // A name twice in the environment: the first entry, as glibc's
        // getenv (and agent-init's own reads) take it.
        for (n, v) in inherited {
            env.set_default(n, v, Origin::Inherited);
        }
        for s in secrets.secrets {
            // LIVEKIT_* were dropped from secrets by `secrets::parse`; the guard keeps
            // the platform's value standing even if a caller skipped that step.
            if LIVEKIT_NAMES.contains(&s.name.as_str()) {
                continue;
            }
            let value = SecretBytes::new(s.value.expose().as_bytes().to_vec());
            env.set(
                s.name.into(),
                value,
                Origin::Bundle {
                    updated_at: s.updated_at,
                },
            );
        }
        for (name, v) in secrets.livekit.vars() {
            env.set(
                name.into(),
                SecretBytes::new(v.expose().as_bytes().to_vec()),
                Origin::Platform,
            );
        }
        env
    }

    /// Local mode: `--secrets` flags > inherited > files, a later assignment over an earlier one.
    pub fn local(
        inherited: Vec<(OsString, SecretBytes)>,
        files: FileVars,
        flags: Vec<(String, SecretBytes)>,
    ) -> Environment {
        let mut env = Environment::default();
        // A name twice in the environment: the first entry, as glibc's
        // getenv (and agent-init's own reads) take it.
        for (n, v) in inherited {
            env.set_default(n, v, Origin::Inherited);
        }
        for (name, value) in flags {
            env.set(name.into(), value, Origin::Flag);
        }
        // Files: a later assignment beats an earlier one, in a later file or
        // in the same file (python-dotenv's rule), whatever the caller deduplicated.
        let mut from_files = Environment::default();
        for (path, vars) in files {
            for (name, value) in vars {
                from_files.set(name.into(), value, Origin::File(path.clone()));
            }
        }
        for v in from_files.vars {
            env.set_default(v.name, v.value, v.origin);
        }
        env
    }

    /// Names among `required` that are missing or empty.
    pub fn missing<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        required
            .into_iter()
            .filter(|n| self.get(n).is_none_or(|v| v.value.is_empty()))
            .collect()
    }

    /// Checks required names and the kernel's size limits for `argv` plus this environment.
    pub fn check(&self, required: &[String], argv: &[OsString], arg_max: usize) -> Result<()> {
        let missing = self.missing(required.iter().map(String::as_str));
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "required variable(s) missing or empty: {}",
                missing.join(", ")
            )));
        }
        let size = |v: &Var| v.name.len() + 1 + v.value.len() + 1;
        if let Some(v) = self.vars.iter().find(|v| size(v) > MAX_ARG_STRLEN) {
            return Err(Error::Refused(format!(
                "{} is {} bytes as NAME=VALUE, over the kernel's per-variable limit of {MAX_ARG_STRLEN} (MAX_ARG_STRLEN)",
                v.name.to_string_lossy(),
                size(v)
            )));
        }
        if let Some(a) = argv.iter().find(|a| a.len() + 1 > MAX_ARG_STRLEN) {
            return Err(Error::Refused(format!(
                "a command argument is {} bytes, over the kernel's per-string limit of {MAX_ARG_STRLEN}",
                a.len() + 1
            )));
        }
        let ptrs = (argv.len().max(1) + self.vars.len() + 2) * std::mem::size_of::<usize>();
        let strings: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>()
            + self.vars.iter().map(size).sum::<usize>()
            // The kernel also copies the program's path name.
            + argv.first().map_or(1, |a| a.len() + 1);
        let total = strings + ptrs;
        if total > arg_max {
            let mut largest: Vec<&Var> = self.vars.iter().collect();
            largest.sort_by_key(|v| std::cmp::Reverse(size(v)));
            let top: Vec<String> = largest
                .iter()
                .take(5)
                .map(|v| format!("{} ({} bytes)", v.name.to_string_lossy(), size(v)))
                .collect();
            return Err(Error::Refused(format!(
                "the command's arguments and environment need {total} bytes, over the kernel's limit of {arg_max} (ARG_MAX); largest: {}",
                top.join(", ")
            )));
        }
        Ok(())
    }

    /// Builds the `NAME=VALUE` strings for `execve`, consuming the values.
    pub fn into_block(self) -> EnvBlock {
        let mut strings = Vec::with_capacity(self.vars.len());
        for v in self.vars {
            let mut s = Zeroizing::new(Vec::with_capacity(v.name.len() + v.value.len() + 2));
            s.extend_from_slice(v.name.as_bytes());
            s.push(b'=');
            s.extend_from_slice(v.value.expose());
            s.push(0);
            strings.push(s);
        }
        EnvBlock { strings }
    }
}

/// NUL-terminated `NAME=VALUE` strings, wiped on drop.
pub struct EnvBlock {
    strings: Vec<Zeroizing<Vec<u8>>>,
}

impl EnvBlock {
    /// The strings as C strings, in order.
    pub fn c_strs(&self) -> Vec<&CStr> {
        self.strings
            .iter()
            // Names and values were checked to hold no NUL, and each ends in one.
            .map(|s| CStr::from_bytes_with_nul(s).expect("NUL-free NAME=VALUE"))
            .collect()
    }

    /// The value of `name`, if present: reads a built block back (the fuzz
    /// and property checks compare it with what went in).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let prefix = name.len();
        self.strings.iter().find_map(|s| {
            (s.len() > prefix && s.starts_with(name.as_bytes()) && s[prefix] == b'=')
                .then(|| &s[prefix + 1..s.len() - 1])
        })
    }
}

impl std::fmt::Debug for EnvBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvBlock([redacted {} variables])", self.strings.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::sensitive::SecretString;
    use crate::protocol::secrets::{LiveKit, Secret};

    fn sb(s: &str) -> SecretBytes {
        SecretBytes::new(s.as_bytes().to_vec())
    }
    fn inh(pairs: &[(&str, &str)]) -> Vec<(OsString, SecretBytes)> {
        pairs
            .iter()
            .map(|(n, v)| (OsString::from(n), sb(v)))
            .collect()
    }
    fn val(env: &Environment, n: &str) -> Option<String> {
        env.get(n)
            .map(|v| String::from_utf8(v.value.expose().to_vec()).unwrap())
    }

    #[test]
    fn production_precedence_follows_section_7() {
        let secrets = Plaintext {
            secrets: vec![
                Secret {
                    name: "SHARED".into(),
                    value: SecretString::new("from-bundle".into()),
                    created_at: None,
                    updated_at: None,
                },
                Secret {
                    name: "ONLY_BUNDLE".into(),
                    value: SecretString::new("b".into()),
                    created_at: None,
                    updated_at: None,
                },
            ],
            livekit: LiveKit {
                url: Some(SecretString::new("wss://bundle".into())),
                api_key: None,
                api_secret: None,
            },
            ..Plaintext::default()
        };
        let env = Environment::production(
            inh(&[
                ("SHARED", "from-env"),
                ("PATH", "/bin"),
                ("LIVEKIT_URL", "wss://env"),
                ("LIVEKIT_API_KEY", "env-key"),
                ("LIVEKIT_BOOTSTRAP_TOKEN", "tok"),
                ("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "/t"),
                ("LIVEKIT_SECRETS_URL", "https://x"),
                ("AGENT_INIT_LOG", "debug"),
            ]),
            secrets,
        );
        assert_eq!(val(&env, "SHARED").as_deref(), Some("from-bundle"));
        assert_eq!(val(&env, "ONLY_BUNDLE").as_deref(), Some("b"));
        assert_eq!(val(&env, "PATH").as_deref(), Some("/bin"));
        assert_eq!(val(&env, "LIVEKIT_URL").as_deref(), Some("wss://bundle"));
        assert_eq!(val(&env, "LIVEKIT_API_KEY").as_deref(), Some("env-key"));
        for gone in [
            "LIVEKIT_BOOTSTRAP_TOKEN",
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
            "LIVEKIT_SECRETS_URL",
            "AGENT_INIT_LOG",
        ] {
            assert!(env.get(gone).is_none(), "{gone}");
        }
        assert_eq!(env.len(), 5);
    }

    #[test]
    fn local_precedence_is_flags_then_inherited_then_later_files() {
        let files = vec![
            (
                PathBuf::from(".env"),
                vec![
                    ("A".into(), sb("env")),
                    ("B".into(), sb("env")),
                    ("C".into(), sb("env")),
                ],
            ),
            (
                PathBuf::from(".env.local"),
                vec![("B".into(), sb("local")), ("C".into(), sb("local"))],
            ),
        ];
        let env = Environment::local(
            inh(&[("C", "inherited"), ("D", "inherited")]),
            files,
            vec![("D".into(), sb("flag"))],
        );
        assert_eq!(val(&env, "A").as_deref(), Some("env"));
        assert_eq!(val(&env, "B").as_deref(), Some("local"));
        assert_eq!(val(&env, "C").as_deref(), Some("inherited"));
        assert_eq!(val(&env, "D").as_deref(), Some("flag"));
        assert_eq!(
            env.get("B").unwrap().origin,
            Origin::File(".env.local".into())
        );
        assert_eq!(env.get("D").unwrap().origin, Origin::Flag);
    }

    #[test]
    fn a_name_twice_in_the_environment_keeps_its_first_entry_as_getenv_does() {
        let dup = || inh(&[("DUP", "first"), ("PATH", "/bin"), ("DUP", "second")]);
        let local = Environment::local(dup(), Vec::new(), Vec::new());
        let prod = Environment::production(dup(), Plaintext::default());
        for env in [local, prod] {
            assert_eq!(val(&env, "DUP").as_deref(), Some("first"));
            assert_eq!(env.len(), 2);
        }
    }

    #[test]
    fn a_later_duplicate_in_one_file_wins_as_in_python_dotenv() {
        // Found by the `merge` fuzz target: with `set_default` per entry the
        // first of two assignments in one file won.
        let files = vec![(
            PathBuf::from(".env"),
            vec![("A".into(), sb("first")), ("A".into(), sb("second"))],
        )];
        let env = Environment::local(Vec::new(), files, Vec::new());
        assert_eq!(val(&env, "A").as_deref(), Some("second"));
        assert_eq!(env.len(), 1);
    }

    #[test]
    fn missing_and_empty_required_names_are_config_errors() {
        let env = Environment::production(inh(&[("A", ""), ("B", "x")]), Plaintext::default());
        let e = env
            .check(&["A".into(), "B".into(), "C".into()], &[], 1 << 20)
            .unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert_eq!(e.to_string(), "required variable(s) missing or empty: A, C");
    }

    #[test]
    fn over_budget_names_the_largest_variables_but_no_value() {
        let big = "Q".repeat(60_000);
        let env = Environment::production(
            inh(&[("SMALL", "s"), ("BIG1", &big), ("BIG2", &big)]),
            Plaintext::default(),
        );
        let e = env.check(&[], &["true".into()], 100_000).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        let m = e.to_string();
        assert!(
            m.contains("BIG1 (60006 bytes)") && m.contains("BIG2"),
            "{m}"
        );
        assert!(!m.contains("QQQ"));
        assert!(env.check(&[], &["true".into()], 200_000).is_ok());
    }

    #[test]
    fn one_variable_over_max_arg_strlen_is_refused() {
        let big = "Q".repeat(MAX_ARG_STRLEN);
        let env = Environment::production(inh(&[("HUGE", &big)]), Plaintext::default());
        let e = env.check(&[], &["true".into()], usize::MAX).unwrap_err();
        assert!(e.to_string().contains("HUGE"), "{e}");
    }

    #[test]
    fn block_holds_exact_name_value_strings() {
        let env = Environment::production(inh(&[("A", "x=y\nz"), ("B", "")]), Plaintext::default());
        let block = env.into_block();
        let strs: Vec<_> = block
            .c_strs()
            .iter()
            .map(|c| c.to_bytes().to_vec())
            .collect();
        assert_eq!(strs, [b"A=x=y\nz".to_vec(), b"B=".to_vec()]);
        assert_eq!(block.get("A"), Some(&b"x=y\nz"[..]));
        assert_eq!(block.get("C"), None);
    }
}
