//! The plaintext of a bundle (PROTOCOL.md §6) and the rules every secret obeys.
//!
//! After [`parse`] returns, every secret has a name of 1 to 70 ASCII letters,
//! digits and `_`, a value of at most 16 KiB without NUL, no name appears
//! twice, and none is `LIVEKIT_URL`, `LIVEKIT_API_KEY` or `LIVEKIT_API_SECRET`
//! (those are dropped with a warning: the platform's value stands). The same
//! name and value rules apply to dotenv files and `--secrets` flags through
//! [`check_name`] and [`check_value`]. Refusals name the secret (or, for a
//! name that breaks the rules, its position), never a value.

use crate::error::{Error, Result};
use crate::sensitive::SecretString;
use serde::Deserialize;
use std::collections::HashSet;

/// Longest secret name, in characters.
pub const MAX_NAME: usize = 70;
/// Largest secret value, in bytes of UTF-8.
pub const MAX_VALUE: usize = 16 * 1024;
/// The three variables the platform provides.
pub const LIVEKIT_NAMES: [&str; 3] = ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"];

/// One secret from the bundle.
#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub value: SecretString,
    /// RFC 3339 timestamp, shown by `--list`; never needed to run.
    pub updated_at: Option<String>,
}

/// The platform's connection values, from the bundle's `livekit` member.
#[derive(Debug, Clone, Default)]
pub struct LiveKit {
    pub url: Option<SecretString>,
    pub api_key: Option<SecretString>,
    pub api_secret: Option<SecretString>,
}

impl LiveKit {
    /// The members as `(variable name, value)` pairs, present ones only.
    pub fn vars(&self) -> impl Iterator<Item = (&'static str, &SecretString)> {
        [
            (LIVEKIT_NAMES[0], self.url.as_ref()),
            (LIVEKIT_NAMES[1], self.api_key.as_ref()),
            (LIVEKIT_NAMES[2], self.api_secret.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
    }
}

/// An opened, checked bundle plaintext.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub secrets: Vec<Secret>,
    pub livekit: LiveKit,
}

#[derive(Deserialize)]
struct RawPlain {
    secrets: Vec<RawSecret>,
    #[serde(default)]
    livekit: Option<RawLiveKit>,
}

#[derive(Deserialize)]
struct RawSecret {
    name: String,
    value: String,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct RawLiveKit {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_secret: Option<String>,
}

/// Why a name breaks §6, or `None` if it obeys. Never quotes the name.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if let Some((pos, _)) = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "name has a character other than ASCII letters, digits and _ at byte {}",
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

/// Why a value breaks §6, or `None` if it obeys.
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

/// How a refused name is shown: the name itself when it obeys the rules (then
/// it is a name, not a value), else only its position.
fn describe(index: usize, name: &str) -> String {
    if check_name(name).is_ok() {
        name.to_string()
    } else {
        format!("secret #{}", index + 1)
    }
}

/// Parses and checks a bundle plaintext.
pub fn parse(plaintext: &[u8]) -> Result<Secrets> {
    // serde_json checks UTF-8 only in the strings it keeps; §6 says the whole
    // plaintext is UTF-8, unknown members included.
    let text = std::str::from_utf8(plaintext).map_err(|e| {
        Error::Refused(format!(
            "bundle plaintext is not valid UTF-8 JSON (bad UTF-8 at byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    let raw: RawPlain = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_data() {
            "does not have the expected shape (\"secrets\" is a list of {name, value})"
        } else {
            "is not valid UTF-8 JSON"
        };
        Error::Refused(format!(
            "bundle plaintext {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let mut seen = HashSet::with_capacity(raw.secrets.len());
    let mut secrets = Vec::with_capacity(raw.secrets.len());
    for (i, s) in raw.secrets.into_iter().enumerate() {
        let value = SecretString::new(s.value);
        if let Err(why) = check_name(&s.name) {
            return Err(Error::Refused(format!(
                "bundle refused: {}: {why}",
                describe(i, &s.name)
            )));
        }
        if let Err(why) = check_value(value.expose()) {
            return Err(Error::Refused(format!("bundle refused: {}: {why}", s.name)));
        }
        if !seen.insert(s.name.clone()) {
            return Err(Error::Refused(format!(
                "bundle refused: {} appears more than once",
                s.name
            )));
        }
        if LIVEKIT_NAMES.contains(&s.name.as_str()) {
            crate::warn!(
                "bundle secret {} ignored: the platform provides it and its value stands",
                s.name
            );
            continue;
        }
        if crate::env::is_stripped(std::ffi::OsStr::new(&s.name)) {
            // Kept in the list (the merge drops it, §7), but never silently.
            crate::warn!(
                "bundle secret {} will not reach the command: agent-init never passes that name on",
                s.name
            );
        }
        let updated_at = s.updated_at.filter(|t| looks_like_rfc3339(t));
        secrets.push(Secret {
            name: s.name,
            value,
            updated_at,
        });
    }
    let lk = raw.livekit.unwrap_or(RawLiveKit {
        url: None,
        api_key: None,
        api_secret: None,
    });
    let livekit = LiveKit {
        url: lk.url.map(SecretString::new),
        api_key: lk.api_key.map(SecretString::new),
        api_secret: lk.api_secret.map(SecretString::new),
    };
    for (name, v) in livekit.vars() {
        if v.expose().as_bytes().contains(&0) {
            return Err(Error::Refused(format!(
                "bundle refused: livekit value for {name} contains a NUL byte"
            )));
        }
    }
    Ok(Secrets { secrets, livekit })
}

/// A shape check for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a timestamp that
/// fails it is only left out of listings.
fn looks_like_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(secrets: &str) -> Vec<u8> {
        format!("{{\"secrets\": [{secrets}]}}").into_bytes()
    }

    #[test]
    fn vector_plaintext_parses_with_livekit_member() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/lkbt1.json")).unwrap();
        let s = parse(v["plaintext"].as_str().unwrap().as_bytes()).unwrap();
        let names: Vec<_> = s.secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["OPENAI_API_KEY", "MULTI_LINE", "UNICODE_VALUE", "EMPTY"]
        );
        assert_eq!(s.secrets[1].value.expose(), "line one\nline two");
        assert_eq!(s.secrets[2].value.expose(), "h\u{e9}llo \u{2603}");
        assert_eq!(
            s.secrets[0].updated_at.as_deref(),
            Some("2026-11-20T08:30:00Z")
        );
        assert_eq!(
            s.livekit.url.as_ref().unwrap().expose(),
            "wss://example.livekit.cloud"
        );
        assert_eq!(
            s.livekit.api_secret.as_ref().unwrap().expose(),
            "example-api-secret"
        );
    }

    #[test]
    fn empty_secret_list_is_valid_and_secrets_member_is_required() {
        assert!(parse(b"{\"secrets\": []}").unwrap().secrets.is_empty());
        assert_eq!(parse(b"{\"livekit\": {}}").unwrap_err().exit_code(), 65);
    }

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
    fn each_rule_breach_refuses_the_bundle_without_showing_the_value() {
        let big = "v".repeat(MAX_VALUE + 1);
        let cases = [
            plain("{\"name\": \"A-B\", \"value\": \"distinct-value-1\"}"),
            plain("{\"name\": \"\", \"value\": \"distinct-value-1\"}"),
            plain(&format!("{{\"name\": \"{}\", \"value\": \"distinct-value-1\"}}", "N".repeat(71))),
            plain(&format!("{{\"name\": \"BIG\", \"value\": \"{big}\"}}")),
            plain("{\"name\": \"NUL\", \"value\": \"distinct-value-1\\u0000x\"}"),
            plain("{\"name\": \"D\", \"value\": \"distinct-value-1\"}, {\"name\": \"D\", \"value\": \"distinct-value-2\"}"),
            plain("{\"name\": \"NOVALUE\"}"),
            plain("{\"name\": \"NUM\", \"value\": 12}"),
            b"{\"secrets\": [], \"livekit\": {\"url\": \"a\\u0000b\"}}".to_vec(),
            b"\xff".to_vec(),
        ];
        for c in &cases {
            let e = parse(c).unwrap_err();
            assert_eq!(e.exit_code(), 65);
            let m = e.to_string();
            assert!(!m.contains("distinct-value"), "{m}");
            assert!(!m.contains("vvvv"), "{m}");
        }
    }

    #[test]
    fn invalid_utf8_inside_an_unknown_member_is_refused() {
        // Found by the `secrets_parse` fuzz target: serde_json skips unknown
        // members without checking their UTF-8, so this plaintext was accepted.
        let e = parse(b"{\"secrets\": [], \"note\": \"\xff\xfe\"}").unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn sixteen_kib_value_is_accepted() {
        let v = "v".repeat(MAX_VALUE);
        let s = parse(&plain(&format!(
            "{{\"name\": \"BIG\", \"value\": \"{v}\"}}"
        )))
        .unwrap();
        assert_eq!(s.secrets[0].value.len(), MAX_VALUE);
    }

    #[test]
    fn livekit_names_in_secrets_are_dropped_not_refused() {
        let s = parse(&plain(
            "{\"name\": \"LIVEKIT_URL\", \"value\": \"x\"}, {\"name\": \"OTHER\", \"value\": \"y\"}",
        ))
        .unwrap();
        assert_eq!(s.secrets.len(), 1);
        assert_eq!(s.secrets[0].name, "OTHER");
    }

    #[test]
    fn unknown_members_at_any_level_are_ignored() {
        let s = parse(b"{\"v\":2,\"secrets\":[{\"name\":\"A\",\"value\":\"b\",\"kind\":1}],\"livekit\":{\"url\":\"u\",\"x\":[]}}").unwrap();
        assert_eq!(s.secrets[0].name, "A");
        assert!(s.livekit.api_key.is_none());
    }

    #[test]
    fn rfc3339_shapes() {
        assert!(looks_like_rfc3339("2026-11-20T08:30:00Z"));
        assert!(looks_like_rfc3339("2026-11-20T08:30:00.123+02:00"));
        assert!(!looks_like_rfc3339("2026-11-20"));
        assert!(!looks_like_rfc3339("yesterday at noon, Z"));
    }
}
