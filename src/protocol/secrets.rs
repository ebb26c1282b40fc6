//! The plaintext of a bundle (PROTOCOL.md §6, §6.1) and the rules every secret obeys.
//!
//! After [`parse`] returns, the plaintext was UTF-8 JSON of the §6 shape and:
//!
//! - every secret's kind was absent, `"env"` or `"file"` (any other kind
//!   refuses the whole bundle: a kind is never guessed at);
//! - every env secret ([`Secret`]) has a name of 1 to 70 ASCII letters,
//!   digits and `_` and a value of at most 16 KiB without NUL, and none is
//!   `LIVEKIT_URL`, `LIVEKIT_API_KEY` or `LIVEKIT_API_SECRET` (those are
//!   dropped with a [`Warning`]: the platform's value stands);
//! - every file secret ([`FileSecret`]) has a file name of 1 to 70 ASCII
//!   letters, digits, `.`, `_` and `-` not starting with `.`, content of at
//!   most 1 MiB decoded from strict base64url into a zeroizing buffer, and an
//!   `env`, when it has one, that obeys the env name rules, is no `LIVEKIT_*`
//!   name and no name §7 never passes on;
//! - no name appears twice (whatever the kinds), and no file's `env` is
//!   another secret's name or another file's `env`.
//!
//! [`check`] applies the same whole-list rules to a [`Plaintext`] built in
//! memory (the update merge does), [`to_plaintext`] writes the §6 JSON back,
//! and [`manifest`] is the clear-text listing of PROTOCOL.md §10: names,
//! kinds, `env` and dates, never a value. The same name and value rules apply
//! to dotenv files and `--secrets` flags through [`check_name`] and
//! [`check_value`]. Refusals name the secret (or, for a name that breaks the
//! rules, its position), never a value. Nothing here does I/O.

use super::rules::{
    check_file_content, check_file_env, check_file_name, check_name, check_value, is_stripped,
    LiveKitName, LIVEKIT_NAMES, MAX_FILE,
};
use crate::base::error::{Error, Result};
use crate::base::sensitive::{SecretBytes, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What a secret becomes for the command (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An environment variable (`"kind"` absent or `"env"`).
    Env,
    /// A file, whose path an optional variable receives.
    File,
}

impl Kind {
    /// The `"kind"` string of §6.1.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Env => "env",
            Kind::File => "file",
        }
    }
}

/// One env secret from the bundle.
#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub value: SecretString,
    /// RFC 3339 timestamps (§6.2), shown by listings; never needed to run.
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One file secret from the bundle (§6.1).
#[derive(Debug, Clone)]
pub struct FileSecret {
    /// The file's name in the secrets directory.
    pub name: String,
    /// The decoded content, exactly the bytes the file holds.
    pub content: SecretBytes,
    /// The variable that receives the file's absolute path.
    pub env: Option<String>,
    pub created_at: Option<String>,
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
        LiveKitName::ALL
            .into_iter()
            .filter_map(|n| self.get(n).map(|v| (n.as_str(), v)))
    }

    /// The member that holds `name`'s value.
    pub fn get(&self, name: LiveKitName) -> Option<&SecretString> {
        match name {
            LiveKitName::Url => self.url.as_ref(),
            LiveKitName::ApiKey => self.api_key.as_ref(),
            LiveKitName::ApiSecret => self.api_secret.as_ref(),
        }
    }

    /// The member for `name`, to set or clear.
    pub fn slot(&mut self, name: LiveKitName) -> &mut Option<SecretString> {
        match name {
            LiveKitName::Url => &mut self.url,
            LiveKitName::ApiKey => &mut self.api_key,
            LiveKitName::ApiSecret => &mut self.api_secret,
        }
    }
}

/// The plaintext of a bundle (PROTOCOL.md §6): opened and checked by
/// [`parse`], or built in memory (the update merge) and checked by [`check`].
#[derive(Debug, Clone, Default)]
pub struct Plaintext {
    /// Env secrets, in bundle order.
    pub secrets: Vec<Secret>,
    /// File secrets, in bundle order.
    pub files: Vec<FileSecret>,
    pub livekit: LiveKit,
}

/// A bundle secret that is accepted but does not reach the command as
/// written. Its `Display` is the warning line, naming the secret, never its
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning<'a> {
    /// A `LIVEKIT_*` name (§7): dropped, the platform's value stands.
    Platform(&'a str),
    /// A name §7 never passes on: kept in the list, dropped by the merge.
    NeverPassed(&'a str),
}

impl Warning<'_> {
    /// The secret's name.
    pub fn name(&self) -> &str {
        match self {
            Warning::Platform(name) | Warning::NeverPassed(name) => name,
        }
    }

    /// What happens to it, the end of the warning line.
    pub fn reason(&self) -> &'static str {
        match self {
            Warning::Platform(_) => "ignored: the platform provides it and its value stands",
            Warning::NeverPassed(_) => {
                "will not reach the command: agent-init never passes that name on"
            }
        }
    }
}

impl std::fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bundle secret {} {}", self.name(), self.reason())
    }
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
    kind: RawKind,
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
}

/// `"kind"` as read: a known kind, or another string, which refuses the
/// bundle by the secret's name. A kind that is not a string at all breaks the
/// shape of §6 and is refused by its position (a string-only visitor keeps
/// serde_json's number parser out of the binary).
#[derive(Default)]
enum RawKind {
    #[default]
    Env,
    File,
    Unknown,
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a kind")
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<RawKind, E> {
                Ok(match s {
                    "env" => RawKind::Env,
                    "file" => RawKind::File,
                    _ => RawKind::Unknown,
                })
            }
        }
        d.deserialize_str(V)
    }
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

/// How a refused name is shown: the name itself when it obeys the rules (then
/// it is a name, not a value), else only its position.
fn describe(index: usize, name: &str) -> String {
    if check_name(name).is_ok() {
        name.to_string()
    } else {
        format!("secret #{}", index + 1)
    }
}

fn refuse(who: &str, why: &str) -> Error {
    Error::Refused(format!("bundle refused: {who}: {why}"))
}

/// Parses and checks a bundle plaintext, dropping what it warns about
/// unseen: [`parse_noting`] hands the warnings to the caller.
pub fn parse(plaintext: &[u8]) -> Result<Plaintext> {
    parse_noting(plaintext, |_| {})
}

/// Parses and checks a bundle plaintext, and hands each [`Warning`] to
/// `note`, in bundle order, once the whole bundle passed (a refused bundle
/// gives none). Printing them is the caller's business: this module does no
/// I/O.
pub fn parse_noting(plaintext: &[u8], mut note: impl FnMut(Warning<'_>)) -> Result<Plaintext> {
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
            "does not have the expected shape (\"secrets\" is a list of {name, value, kind?, env?} with string members)"
        } else {
            "is not valid UTF-8 JSON"
        };
        Error::Refused(format!(
            "bundle plaintext {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let mut out = Plaintext::default();
    for (i, s) in raw.secrets.into_iter().enumerate() {
        let value = SecretString::new(s.value);
        let (created_at, updated_at) = (date(s.created_at), date(s.updated_at));
        match s.kind {
            RawKind::Unknown => {
                return Err(refuse(
                    &describe(i, &s.name),
                    "kind is neither \"env\" nor \"file\"; a secret of an unknown kind is never guessed at",
                ))
            }
            RawKind::Env => {
                check_name(&s.name).map_err(|why| refuse(&describe(i, &s.name), &why))?;
                check_value(value.expose()).map_err(|why| refuse(&s.name, &why))?;
                out.secrets.push(Secret {
                    name: s.name,
                    value,
                    created_at,
                    updated_at,
                });
            }
            RawKind::File => {
                check_file_name(&s.name).map_err(|why| refuse(&describe(i, &s.name), &why))?;
                // Checked before decoding, so an oversized value costs no allocation.
                if value.len() > MAX_FILE.div_ceil(3) * 4 {
                    return Err(refuse(
                        &s.name,
                        &format!("content is over the limit of {MAX_FILE} bytes (1 MiB)"),
                    ));
                }
                let content = SecretBytes::new(
                    crate::protocol::token::b64u_decode(value.expose())
                        .ok_or_else(|| refuse(&s.name, "value is not base64url (§1)"))?,
                );
                drop(value);
                check_file_content(content.len()).map_err(|why| refuse(&s.name, &why))?;
                out.files.push(FileSecret {
                    name: s.name,
                    content,
                    env: s.env,
                    created_at,
                    updated_at,
                });
            }
        }
    }
    check(&out)?;
    let lk = raw.livekit.unwrap_or(RawLiveKit {
        url: None,
        api_key: None,
        api_secret: None,
    });
    out.livekit = LiveKit {
        url: lk.url.map(SecretString::new),
        api_key: lk.api_key.map(SecretString::new),
        api_secret: lk.api_secret.map(SecretString::new),
    };
    for (name, v) in out.livekit.vars() {
        if v.expose().as_bytes().contains(&0) {
            return Err(Error::Refused(format!(
                "bundle refused: livekit value for {name} contains a NUL byte"
            )));
        }
    }
    // Dropped only once the whole bundle passed: the warning is for a bundle that is used.
    out.secrets.retain(|s| {
        let platform = LIVEKIT_NAMES.contains(&s.name.as_str());
        let warning = if platform {
            Some(Warning::Platform(&s.name))
        } else if is_stripped(std::ffi::OsStr::new(&s.name)) {
            // Kept in the list (the merge drops it, §7), but never silently.
            Some(Warning::NeverPassed(&s.name))
        } else {
            None
        };
        if let Some(w) = warning {
            note(w);
        }
        !platform
    });
    Ok(out)
}

/// Checks every rule of §6 and §6.1 on `s`: each secret's own rules, then the
/// rules across the list (no name twice, no `env` that collides). [`parse`]
/// ends with it; anything that builds a [`Plaintext`] calls it before sealing.
pub fn check(s: &Plaintext) -> Result<()> {
    let mut names: HashSet<&str> = HashSet::with_capacity(s.secrets.len() + s.files.len());
    let twice =
        |name: &str| Error::Refused(format!("bundle refused: {name} appears more than once"));
    for x in &s.secrets {
        check_name(&x.name).map_err(|why| refuse("an env secret", &why))?;
        check_value(x.value.expose()).map_err(|why| refuse(&x.name, &why))?;
        if !names.insert(&x.name) {
            return Err(twice(&x.name));
        }
    }
    for f in &s.files {
        check_file_name(&f.name).map_err(|why| refuse("a file secret", &why))?;
        check_file_content(f.content.len()).map_err(|why| refuse(&f.name, &why))?;
        if let Some(env) = &f.env {
            check_file_env(env).map_err(|why| refuse(&f.name, &why))?;
        }
        if !names.insert(&f.name) {
            return Err(twice(&f.name));
        }
    }
    let mut envs: HashSet<&str> = HashSet::with_capacity(s.files.len());
    for f in &s.files {
        let Some(env) = f.env.as_deref() else {
            continue;
        };
        if names.contains(env) {
            return Err(refuse(
                &f.name,
                &format!("env {env} is also the name of a secret"),
            ));
        }
        if !envs.insert(env) {
            return Err(refuse(
                &f.name,
                &format!("env {env} is also another file's env"),
            ));
        }
    }
    Ok(())
}

/// A timestamp kept for listings; one that is not RFC 3339 is left out.
fn date(t: Option<String>) -> Option<String> {
    t.filter(|t| looks_like_rfc3339(t))
}

/// One secret of the plaintext, borrowing its value.
#[derive(Serialize)]
struct PlainSecret<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<&'a str>,
}

#[derive(Serialize)]
struct PlainLiveKit<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_secret: Option<&'a str>,
}

#[derive(Serialize)]
struct Plain<'a> {
    secrets: Vec<PlainSecret<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    livekit: Option<PlainLiveKit<'a>>,
}

/// Counts bytes, to size a buffer before writing into it.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The §6 plaintext of `s`: env secrets (no `"kind"`, as before §6.1), then
/// file secrets (`"kind": "file"`, content in base64url), then the `livekit`
/// member when it has one. The same `Plaintext` always gives the same bytes,
/// written once into a zeroizing buffer of the exact size. It does not
/// [`check`] `s`: opening the result does.
pub fn to_plaintext(s: &Plaintext) -> SecretBytes {
    let encoded: Vec<SecretString> = s
        .files
        .iter()
        .map(|f| SecretString::new(crate::protocol::token::b64u(f.content.expose())))
        .collect();
    let mut secrets: Vec<PlainSecret<'_>> = s
        .secrets
        .iter()
        .map(|x| PlainSecret {
            name: &x.name,
            kind: None,
            value: x.value.expose(),
            env: None,
            created_at: x.created_at.as_deref(),
            updated_at: x.updated_at.as_deref(),
        })
        .collect();
    secrets.extend(s.files.iter().zip(&encoded).map(|(f, v)| PlainSecret {
        name: &f.name,
        kind: Some(Kind::File.as_str()),
        value: v.expose(),
        env: f.env.as_deref(),
        created_at: f.created_at.as_deref(),
        updated_at: f.updated_at.as_deref(),
    }));
    let lk = &s.livekit;
    let livekit = (lk.vars().next().is_some()).then(|| PlainLiveKit {
        url: lk.url.as_ref().map(SecretString::expose),
        api_key: lk.api_key.as_ref().map(SecretString::expose),
        api_secret: lk.api_secret.as_ref().map(SecretString::expose),
    });
    let doc = Plain { secrets, livekit };
    let mut count = Count(0);
    serde_json::to_writer(&mut count, &doc).expect("JSON of strings");
    let mut buf = SecretBytes::with_capacity(count.0);
    serde_json::to_writer(buf.expose_mut(), &doc).expect("JSON of strings");
    buf
}

/// The clear-text listing of a bundle (PROTOCOL.md §10): what `lk agent
/// secrets` shows, and what a secrets service stores beside the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub secrets: Vec<ManifestEntry>,
}

/// One secret of a [`Manifest`]: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub name: String,
    /// `"env"` or `"file"`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Absent only for a secret a bundle carried without dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// The manifest of `s`: env secrets then files, in plaintext order. The
/// `livekit` member is not a secret of the list and is not in it.
pub fn manifest(s: &Plaintext) -> Manifest {
    let env = s.secrets.iter().map(|x| ManifestEntry {
        name: x.name.clone(),
        kind: Kind::Env.as_str().into(),
        env: None,
        created_at: x.created_at.clone(),
        updated_at: x.updated_at.clone(),
    });
    let files = s.files.iter().map(|f| ManifestEntry {
        name: f.name.clone(),
        kind: Kind::File.as_str().into(),
        env: f.env.clone(),
        created_at: f.created_at.clone(),
        updated_at: f.updated_at.clone(),
    });
    Manifest {
        secrets: env.chain(files).collect(),
    }
}

/// A shape check for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; a timestamp that
/// fails it is only left out of listings.
pub fn looks_like_rfc3339(t: &str) -> bool {
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
    use crate::protocol::rules::MAX_VALUE;

    fn plain(secrets: &str) -> Vec<u8> {
        format!("{{\"secrets\": [{secrets}]}}").into_bytes()
    }

    #[test]
    fn vector_plaintext_parses_with_livekit_member() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/lkbt1.json")).unwrap();
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

    /// What `parse_noting` makes of `secrets`, and the warning lines it hands out.
    fn noted(secrets: &str) -> (Plaintext, Vec<String>) {
        let mut lines = Vec::new();
        let s = parse_noting(&plain(secrets), |w| lines.push(w.to_string())).unwrap();
        (s, lines)
    }

    #[test]
    fn warnings_go_to_the_caller_in_bundle_order_naming_no_value() {
        let (s, lines) = noted(
            "{\"name\": \"AGENT_INIT_LOG\", \"value\": \"v1\"}, {\"name\": \"LIVEKIT_API_KEY\", \"value\": \"v2\"}, {\"name\": \"FINE\", \"value\": \"v3\"}",
        );
        assert_eq!(
            lines,
            [
                "bundle secret AGENT_INIT_LOG will not reach the command: agent-init never passes that name on",
                "bundle secret LIVEKIT_API_KEY ignored: the platform provides it and its value stands",
            ]
        );
        // The never-passed name stays in the list (the merge drops it, §7).
        let names: Vec<&str> = s.secrets.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["AGENT_INIT_LOG", "FINE"]);
        assert!(noted("{\"name\": \"FINE\", \"value\": \"v\"}").1.is_empty());
        // A refused bundle warns about nothing, even after its secrets passed.
        let mut any = false;
        let nul = b"{\"secrets\": [{\"name\": \"LIVEKIT_URL\", \"value\": \"x\"}], \"livekit\": {\"url\": \"a\\u0000b\"}}";
        assert!(parse_noting(nul, |_| any = true).is_err());
        assert!(!any);
    }

    #[test]
    fn unknown_members_at_any_level_are_ignored() {
        let s = parse(b"{\"v\":2,\"secrets\":[{\"name\":\"A\",\"value\":\"b\",\"how\":1}],\"livekit\":{\"url\":\"u\",\"x\":[]}}").unwrap();
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

    fn files_vector() -> serde_json::Value {
        serde_json::from_str(include_str!("../../testdata/lkbt1-files.json")).unwrap()
    }

    fn sha256_hex(b: &[u8]) -> String {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    }

    #[test]
    fn files_vector_plaintext_gives_both_files_with_their_sha256_and_env() {
        let v = files_vector();
        let s = parse(v["plaintext"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(s.secrets.len(), 1);
        assert_eq!(s.secrets[0].name, "OPENAI_API_KEY");
        assert_eq!(
            s.secrets[0].created_at.as_deref(),
            Some("2026-11-02T10:00:00Z")
        );
        let files = v["files"].as_object().unwrap();
        assert_eq!(s.files.len(), files.len());
        for f in &s.files {
            let want = &files[&f.name];
            assert_eq!(
                sha256_hex(f.content.expose()),
                want["sha256"].as_str().unwrap()
            );
            assert_eq!(f.content.len() as u64, want["size"].as_u64().unwrap());
            assert_eq!(f.env.as_deref(), want["env"].as_str(), "{}", f.name);
        }
        let m = manifest(&s);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"secrets": [
                {"name": "OPENAI_API_KEY", "kind": "env", "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-20T08:30:00Z"},
                {"name": "google-credentials.json", "kind": "file", "env": "GOOGLE_APPLICATION_CREDENTIALS", "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:00Z"},
                {"name": "raw.bin", "kind": "file", "created_at": "2026-11-03T10:00:00Z", "updated_at": "2026-11-03T10:00:00Z"}
            ]})
        );
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            !text.contains("sk-test") && !text.contains("eyJ0"),
            "{text}"
        );
    }

    #[test]
    fn to_plaintext_round_trips_the_files_vector() {
        let v = files_vector();
        let s = parse(v["plaintext"].as_str().unwrap().as_bytes()).unwrap();
        let mut p = to_plaintext(&s);
        assert_eq!(p.len(), p.expose_mut().capacity());
        let again = parse(p.expose()).unwrap();
        assert_eq!(to_plaintext(&again).expose(), p.expose());
        assert_eq!(manifest(&again), manifest(&s));
        assert_eq!(
            again.livekit.api_key.as_ref().unwrap().expose(),
            "APIexample"
        );
        // Env secrets are written as before §6.1: no "kind".
        let v: serde_json::Value = serde_json::from_slice(p.expose()).unwrap();
        assert!(v["secrets"][0].get("kind").is_none());
        assert_eq!(v["secrets"][1]["kind"], "file");
    }

    fn file(fields: &str) -> Vec<u8> {
        plain(&format!("{{\"kind\": \"file\", {fields}}}"))
    }

    #[test]
    fn kind_env_is_the_default_and_explicit_env_is_the_same() {
        let a = parse(&plain("{\"name\": \"A\", \"value\": \"x\"}")).unwrap();
        let b = parse(&plain(
            "{\"name\": \"A\", \"kind\": \"env\", \"value\": \"x\", \"env\": \"IGNORED\"}",
        ))
        .unwrap();
        assert_eq!(to_plaintext(&a).expose(), to_plaintext(&b).expose());
        assert!(b.files.is_empty());
    }

    #[test]
    fn an_unknown_kind_refuses_the_bundle_by_name_and_a_non_string_kind_by_position() {
        for kind in ["\"secret\"", "\"File\"", "\"\"", "\"env \""] {
            let p = plain(&format!(
                "{{\"name\": \"OK\", \"value\": \"e30\"}}, {{\"name\": \"WHAT\", \"kind\": {kind}, \"value\": \"distinct-value-1\"}}"
            ));
            let e = parse(&p).unwrap_err();
            assert_eq!(e.exit_code(), 65, "{kind}");
            let m = e.to_string();
            assert!(m.contains("WHAT") && m.contains("kind"), "{kind}: {m}");
            assert!(!m.contains("distinct-value"), "{m}");
        }
        // Not a string at all: the shape of §6 is broken; refused by position.
        for kind in ["1", "true", "null", "[]", "{\"a\": 1}"] {
            let p = plain(&format!(
                "{{\"name\": \"WHAT\", \"kind\": {kind}, \"value\": \"distinct-value-1\"}}"
            ));
            let e = parse(&p).unwrap_err();
            assert_eq!(e.exit_code(), 65, "{kind}");
            let m = e.to_string();
            assert!(m.contains("kind?") && m.contains("line 1"), "{kind}: {m}");
            assert!(!m.contains("distinct-value"), "{m}");
        }
    }

    #[test]
    fn each_file_rule_breach_refuses_the_bundle_naming_the_secret_never_the_value() {
        let mib = crate::protocol::token::b64u(&vec![0x5a; MAX_FILE + 1]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (file("\"name\": \".hidden\", \"value\": \"ZGlzdGluY3Q\""), "secret #1"),
            (file("\"name\": \"a/b\", \"value\": \"ZGlzdGluY3Q\""), "secret #1"),
            (file("\"name\": \"\", \"value\": \"ZGlzdGluY3Q\""), "secret #1"),
            (file(&format!("\"name\": \"{}\", \"value\": \"ZGlzdGluY3Q\"", "n".repeat(71))), "secret #1"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q=\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlz+GluY3Q\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3R\""), "k.pem"),
            (file(&format!("\"name\": \"big.bin\", \"value\": \"{mib}\"")), "big.bin"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"A-B\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"LIVEKIT_API_SECRET\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"AGENT_INIT_X\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"LIVEKIT_BOOTSTRAP_TOKEN\""), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\", \"env\": \"LIVEKIT_SECRETS_URL\""), "k.pem"),
            (plain("{\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"ZGlzdGluY3Q\"}, {\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"eA\"}"), "k.pem"),
            (plain("{\"name\": \"K\", \"value\": \"distinct\"}, {\"kind\": \"file\", \"name\": \"K\", \"value\": \"eA\"}"), "K"),
            (plain("{\"name\": \"OTHER\", \"value\": \"distinct\"}, {\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"eA\", \"env\": \"OTHER\"}"), "k.pem"),
            (plain("{\"kind\": \"file\", \"name\": \"a.pem\", \"value\": \"eA\"}, {\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"eA\", \"env\": \"a.pem\"}"), "k.pem"),
            (plain("{\"kind\": \"file\", \"name\": \"A_PEM\", \"value\": \"eA\"}, {\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"eA\", \"env\": \"A_PEM\"}"), "k.pem"),
            (plain("{\"kind\": \"file\", \"name\": \"a.pem\", \"value\": \"eA\", \"env\": \"SAME\"}, {\"kind\": \"file\", \"name\": \"k.pem\", \"value\": \"eA\", \"env\": \"SAME\"}"), "k.pem"),
            (file("\"name\": \"k.pem\", \"value\": 12"), "shape"),
        ];
        for (c, who) in &cases {
            let e = parse(c).unwrap_err();
            assert_eq!(
                e.exit_code(),
                65,
                "{}",
                String::from_utf8_lossy(&c[..c.len().min(200)])
            );
            let m = e.to_string();
            assert!(m.contains(who), "{who}: {m}");
            for v in ["ZGlzdGluY3Q", "distinct", "ZZZZ", "WlpaW"] {
                assert!(!m.contains(v), "{m}");
            }
        }
    }

    #[test]
    fn a_file_of_exactly_one_mib_of_any_bytes_is_accepted() {
        let content: Vec<u8> = (0..MAX_FILE).map(|i| (i % 256) as u8).collect();
        let p = file(&format!(
            "\"name\": \"blob.bin\", \"value\": \"{}\"",
            crate::protocol::token::b64u(&content)
        ));
        let s = parse(&p).unwrap();
        assert_eq!(s.files[0].content.expose(), &content[..]);
        let p = file("\"name\": \"empty\", \"value\": \"\"");
        assert!(parse(&p).unwrap().files[0].content.is_empty());
    }
}
