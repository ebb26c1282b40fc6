//! The rules of PROTOCOL.md §6 and §7 that every source of secrets obeys: the
//! bundle's plaintext, dotenv files, `--secrets` flags, `--secret-mount`s and
//! the update merge.
//!
//! Guarantees: a name that passes [`check_name`] is 1 to [`MAX_NAME`] ASCII
//! letters, digits and `_`; a value that passes [`check_value`] is at most
//! [`MAX_VALUE`] bytes without NUL; a file name that passes
//! [`check_file_name`] is 1 to [`MAX_NAME`] of those plus `.` and `-`, not
//! starting with `.`; [`is_stripped`] is the one list of names agent-init never
//! passes on (§7). A refusal's reason never quotes the value, and quotes a name
//! only once it obeys the name rules. Nothing here does I/O or depends on
//! another module of the crate.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Longest secret name, in characters.
pub const MAX_NAME: usize = 70;
/// Largest secret value, in bytes of UTF-8.
pub const MAX_VALUE: usize = 16 * 1024;
/// Largest content of a file secret, in bytes (§6.1).
pub const MAX_FILE: usize = 1 << 20;

/// One of the three variables the platform provides (§6 `livekit`, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKitName {
    /// `LIVEKIT_URL`, the `livekit.url` member.
    Url,
    /// `LIVEKIT_API_KEY`, the `livekit.api_key` member.
    ApiKey,
    /// `LIVEKIT_API_SECRET`, the `livekit.api_secret` member.
    ApiSecret,
}

impl LiveKitName {
    /// All three, in the order listings show them.
    pub const ALL: [LiveKitName; 3] = [
        LiveKitName::Url,
        LiveKitName::ApiKey,
        LiveKitName::ApiSecret,
    ];

    /// The variable's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LiveKitName::Url => "LIVEKIT_URL",
            LiveKitName::ApiKey => "LIVEKIT_API_KEY",
            LiveKitName::ApiSecret => "LIVEKIT_API_SECRET",
        }
    }

    /// The platform variable called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<LiveKitName> {
        LiveKitName::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

/// The three platform variables' names, for `contains` and required lists.
pub const LIVEKIT_NAMES: [&str; 3] = [
    LiveKitName::Url.as_str(),
    LiveKitName::ApiKey.as_str(),
    LiveKitName::ApiSecret.as_str(),
];

/// Why a name breaks §6, or `Ok` if it obeys. Never quotes the name.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    check_chars(name, |c| c.is_ascii_alphanumeric() || c == '_', "_")
}

/// Why a file secret's name breaks §6.1, or `Ok` if it obeys. Never quotes the name.
pub fn check_file_name(name: &str) -> std::result::Result<(), String> {
    check_chars(
        name,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "., _ and -",
    )?;
    if name.starts_with('.') {
        return Err("file name starts with a dot".into());
    }
    Ok(())
}

fn check_chars(
    name: &str,
    allowed: impl Fn(char) -> bool,
    extra: &str,
) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if let Some((pos, _)) = name.char_indices().find(|(_, c)| !allowed(*c)) {
        return Err(format!(
            "name has a character other than ASCII letters, digits and {extra} at byte {}",
            pos + 1
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "name is {} characters, over the limit of {MAX_NAME}",
            name.len()
        ));
    }
    Ok(())
}

/// Why a value breaks §6, or `Ok` if it obeys.
pub fn check_value(value: &str) -> std::result::Result<(), String> {
    if value.len() > MAX_VALUE {
        return Err(format!(
            "value is {} bytes, over the limit of {MAX_VALUE}",
            value.len()
        ));
    }
    if value.as_bytes().contains(&0) {
        return Err("value contains a NUL byte, which an environment cannot carry".into());
    }
    Ok(())
}

/// Why a file's content breaks §6.1 (its size), or `Ok`.
pub fn check_file_content(len: usize) -> std::result::Result<(), String> {
    if len > MAX_FILE {
        return Err(format!(
            "content is {len} bytes, over the limit of {MAX_FILE} (1 MiB)"
        ));
    }
    Ok(())
}

/// Why a file secret's `env` breaks §6.1, or `Ok`. Quotes the variable's
/// name only once it obeys the name rules.
pub fn check_file_env(env: &str) -> std::result::Result<(), String> {
    check_name(env).map_err(|why| format!("env {why}"))?;
    if LIVEKIT_NAMES.contains(&env) {
        return Err(format!(
            "env {env} is a platform variable, which a file cannot replace"
        ));
    }
    if is_stripped(OsStr::new(env)) {
        return Err(format!("env {env} is a name agent-init never passes on"));
    }
    Ok(())
}

/// Whether agent-init keeps `name` from the command (§7 "never passed on").
pub fn is_stripped(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n == b"LIVEKIT_BOOTSTRAP_TOKEN"
        || n == b"LIVEKIT_BOOTSTRAP_TOKEN_FILE"
        || n == b"LIVEKIT_SECRETS_URL"
        || n.starts_with(b"AGENT_INIT_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_ascii_word_characters_up_to_70() {
        assert!(check_name("A").is_ok());
        assert!(check_name("_1abc_DEF").is_ok());
        assert!(check_name(&"N".repeat(70)).is_ok());
        assert!(check_name(&"N".repeat(71)).is_err());
        for bad in ["", "A-B", "A.B", "A B", "é", "A=B", "A\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_allow_dots_dashes_and_underscores_but_no_leading_dot() {
        for ok in [
            "a",
            "google-credentials.json",
            "key_1.pem",
            "A.b-c_d",
            &"f".repeat(70),
        ] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".env",
            "..",
            "a/b",
            "a b",
            "é.json",
            "a\0",
            &"f".repeat(71),
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn livekit_names_map_to_their_variables_and_back() {
        for n in LiveKitName::ALL {
            assert_eq!(LiveKitName::from_name(n.as_str()), Some(n));
        }
        assert_eq!(
            LIVEKIT_NAMES,
            ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]
        );
        assert_eq!(LiveKitName::from_name("LIVEKIT_URL_X"), None);
    }

    #[test]
    fn the_bootstrap_names_and_agent_init_knobs_are_never_passed_on() {
        for n in [
            "LIVEKIT_BOOTSTRAP_TOKEN",
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
            "LIVEKIT_SECRETS_URL",
            "AGENT_INIT_LOG",
        ] {
            assert!(is_stripped(OsStr::new(n)), "{n}");
        }
        for n in ["LIVEKIT_URL", "LIVEKIT_BOOTSTRAP", "AGENT_INIT", "PATH"] {
            assert!(!is_stripped(OsStr::new(n)), "{n}");
        }
    }
}
