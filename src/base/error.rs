//! The one error type of agent-init.
//!
//! Every failure maps to one exit code (PROTOCOL.md §8) and renders one line
//! for people. Messages are built at the failure site from names, paths, line
//! numbers, HTTP statuses and sizes; no constructor here accepts a secret
//! value, and no type that holds one implements `Display`, so a value cannot
//! reach this text by accident.

use std::fmt;

/// A failure, classified by what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line (64).
    Usage(String),
    /// The bundle, a secrets file or the environment it makes was refused:
    /// malformed, not authentic, breaks PROTOCOL.md §6, or over a size budget (65).
    Refused(String),
    /// The secrets service stayed unavailable until the deadline, or answered
    /// something unexpected (69).
    Unavailable(String),
    /// The secrets service refused the token: 401 or 403 (77).
    Denied(String),
    /// Configuration: malformed token, bad or missing secrets URL, unreadable
    /// CA file, a required variable missing (78).
    Config(String),
    /// The command exists but cannot be executed (126).
    NotExecutable(String),
    /// The command was not found (127).
    NotFound(String),
    /// A terminating signal arrived before the command started (128 + N).
    Interrupted(i32),
    /// Something failed inside agent-init that no input explains (70, EX_SOFTWARE).
    Internal(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The exit status that tells a supervisor which class of failure this is.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Refused(_) => 65,
            Error::Unavailable(_) => 69,
            Error::Internal(_) => 70,
            Error::Denied(_) => 77,
            Error::Config(_) => 78,
            Error::NotExecutable(_) => 126,
            Error::NotFound(_) => 127,
            Error::Interrupted(sig) => 128 + sig,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::Refused(m)
            | Error::Unavailable(m)
            | Error::Denied(m)
            | Error::Config(m)
            | Error::NotExecutable(m)
            | Error::NotFound(m)
            | Error::Internal(m) => f.write_str(m),
            Error::Interrupted(sig) => write!(
                f,
                "{} received before the command started; it was not started",
                crate::base::log::signal_name(*sig)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// How a command-line argument may appear in a message. An argument that
/// holds a bootstrap token shows only the token's ID; one that looks like
/// `NAME=VALUE` (a secret misplaced on the command line) shows only `NAME=...`;
/// control characters show as `?`.
pub fn shown_arg(arg: &[u8]) -> String {
    let text = String::from_utf8_lossy(arg);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    if let Some(at) = text.find("lkbt1.") {
        let rest = text[at + "lkbt1.".len()..].as_bytes();
        let id = rest.get(..22).filter(|id| {
            rest.get(22) == Some(&b'.')
                && id
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        return match id {
            Some(id) => format!("a bootstrap token (ID {})", String::from_utf8_lossy(id)),
            None => "a bootstrap token".into(),
        };
    }
    match text.split_once('=') {
        Some((name, _)) => format!("{}=...", clean(name)),
        None => clean(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_the_protocol_exit_code() {
        assert_eq!(Error::Usage(String::new()).exit_code(), 64);
        assert_eq!(Error::Refused(String::new()).exit_code(), 65);
        assert_eq!(Error::Unavailable(String::new()).exit_code(), 69);
        assert_eq!(Error::Denied(String::new()).exit_code(), 77);
        assert_eq!(Error::Config(String::new()).exit_code(), 78);
        assert_eq!(Error::NotExecutable(String::new()).exit_code(), 126);
        assert_eq!(Error::NotFound(String::new()).exit_code(), 127);
        assert_eq!(Error::Interrupted(15).exit_code(), 143);
    }

    #[test]
    fn shown_arguments_keep_names_and_token_ids_and_drop_values() {
        assert_eq!(shown_arg(b"OPENAI_API_KEY=sk-value"), "OPENAI_API_KEY=...");
        assert_eq!(shown_arg(b"-sA=b=c"), "-sA=...");
        assert_eq!(shown_arg(b"python3"), "python3");
        assert_eq!(shown_arg(b"a\nb\xff"), "a?b\u{fffd}");
        let token = b"lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        assert_eq!(
            shown_arg(token),
            "a bootstrap token (ID oKGio6SlpqeoqaqrrK2urw)"
        );
        assert_eq!(shown_arg(&[b"X=", &token[..]].concat()), shown_arg(token));
        // Without the dot after 22 characters the ID may be the KEY itself.
        assert_eq!(
            shown_arg(b"lkbt1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
            "a bootstrap token"
        );
    }

    #[test]
    fn interrupted_message_names_the_signal() {
        assert!(Error::Interrupted(15).to_string().contains("SIGTERM"));
    }
}
