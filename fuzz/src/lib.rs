//! The checks behind every fuzz target, one function per target.
//!
//! Each function takes the raw bytes libFuzzer hands a target, decodes them
//! the way that target does (structured targets through `arbitrary`, exactly
//! as `libfuzzer-sys` would), calls agent-init's own code and asserts what
//! that code promises. The fuzz targets in `fuzz_targets/` are one line each;
//! `tests/fuzz_corpus_replay.rs` in the main crate includes this file and runs
//! every committed corpus input through the same functions on stable Rust.
//!
//! A check fails by panicking. What each one asserts:
//! - no input panics, hangs or allocates without bound (libFuzzer's limits);
//! - a refusal carries the exit code PROTOCOL.md §8 gives it;
//! - a refusal never quotes a secret, the token's KEY or a derived key;
//! - what is accepted obeys the module's guarantee (§2 grammar, §6 rules,
//!   §7 precedence), checked against a small independent model.

use agent_init::base::sensitive::SecretBytes;
use agent_init::env::{Environment, FileVars, MAX_ARG_STRLEN};
use agent_init::protocol::bundle;
use agent_init::protocol::rules::{check_name, check_value, LIVEKIT_NAMES};
use agent_init::protocol::secrets;
use agent_init::protocol::token::{b64u, Token};
use arbitrary::{Arbitrary, Unstructured};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// PROTOCOL.md §9's token: the fixed token of the bundle targets.
pub const TOKEN: &str = "lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// Its KEY part, which no message may show.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// A fixed nonce: fine for fuzzing, where nothing is secret.
const NONCE: [u8; 12] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
];

/// Decodes a structured input the way `libfuzzer-sys`'s `fuzz_target!` does.
fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

fn quiet() {
    // Code under test may log (dotenv's and the config's warnings; the
    // protocol returns its warnings as data and prints nothing); a fuzzer
    // printing millions of those lines measures the terminal, not the parser.
    agent_init::base::log::set_level(agent_init::base::log::Level::Error);
}

fn token() -> Token {
    Token::parse(TOKEN).expect("the §9 token parses")
}

/// Panics if `msg` shows the fixed token's KEY, its seal_key or its auth_key.
fn assert_no_key_material(msg: &str) {
    let t = token();
    for (what, s) in [
        ("KEY", KEY.to_string()),
        ("seal_key", b64u(&t.seal_key()[..])),
        ("auth_key", b64u(&t.auth_key()[..])),
    ] {
        assert!(!msg.contains(&s), "a message shows the {what}: {msg}");
    }
}

/// Target `token`: `Token::parse` on any text.
///
/// Accepted means canonical: the only spelling that parses is the one
/// `encode` writes back (after trimming ASCII whitespace), so two texts never
/// name the same token. Refused means exit 78, and the message never quotes
/// the KEY part.
pub fn token_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Token::parse(text) {
        Ok(t) => {
            let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
            assert_eq!(t.encode().expose(), trimmed, "a non-canonical token parsed");
        }
        Err(e) => {
            assert_eq!(e.exit_code(), 78, "{e}");
            let msg = e.to_string();
            let key = text.rsplit('.').next().unwrap_or("");
            // Messages are fixed text; no run of 12 base64url characters is in one.
            if key.len() >= 12
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                assert!(!msg.contains(key), "a token error quotes the KEY: {msg}");
            }
        }
    }
}

/// Target `bundle_open`: `bundle::open` with the §9 token on any body.
///
/// Refused means exit 65 without key material in the message; what opens
/// goes on through `secrets::parse`.
pub fn bundle_open(data: &[u8]) {
    quiet();
    match bundle::open(&token(), data) {
        Ok(plain) => {
            let _ = secrets::parse(plain.expose());
        }
        Err(e) => {
            assert_eq!(e.exit_code(), 65, "{e}");
            assert_no_key_material(&e.to_string());
        }
    }
}

/// Whether `c` can appear in an honest refusal, which is built from fixed
/// English text, secret names, numbers and a token ID.
fn in_messages(c: char) -> bool {
    c.is_ascii_alphanumeric() || " _-#:,.(){}\"'".contains(c)
}

/// Panics if a refusal of `plaintext` shows one of its values.
///
/// Only values holding a character no honest message holds are checked: the
/// fuzzer learns the message text from this very comparison and would
/// otherwise spell a value like it. A code path that leaks values leaks
/// those too.
fn assert_no_value_in(msg: &str, plaintext: &[u8]) {
    let values = match serde_json::from_slice::<serde_json::Value>(plaintext) {
        Ok(doc) => values_of(&doc),
        // serde_json reads into a Value less leniently than secrets::parse
        // skips unknown members (a lone surrogate escape in one, say); then
        // every string literal counts.
        Err(_) => string_literals(plaintext),
    };
    for v in values {
        let v = v.trim_matches('\0');
        if v.chars().all(in_messages) {
            continue;
        }
        assert!(!msg.contains(v), "a refusal shows the value {v:?}: {msg}");
    }
}

/// The secrets' values and the `livekit` values.
fn values_of(doc: &serde_json::Value) -> Vec<String> {
    let mut values = Vec::new();
    if let Some(list) = doc.get("secrets").and_then(|s| s.as_array()) {
        values.extend(
            list.iter()
                .filter_map(|s| s.get("value").and_then(|v| v.as_str()))
                .map(String::from),
        );
    }
    if let Some(lk) = doc.get("livekit").and_then(|l| l.as_object()) {
        values.extend(lk.values().filter_map(|v| v.as_str()).map(String::from));
    }
    values
}

/// The raw text between every pair of unescaped double quotes.
fn string_literals(text: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(start) = text[i..].iter().position(|&b| b == b'"').map(|p| i + p + 1) {
        let mut j = start;
        while j < text.len() && text[j] != b'"' {
            j += if text[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(text.len());
        out.push(String::from_utf8_lossy(&text[start..end]).into_owned());
        i = end + 1;
        if i >= text.len() {
            break;
        }
    }
    out
}

/// Panics unless `s` obeys every rule `secrets::parse` guarantees (§6).
fn assert_obeys_section_6(s: &secrets::Plaintext) {
    let mut seen = std::collections::HashSet::new();
    for x in &s.secrets {
        assert!(check_name(&x.name).is_ok(), "accepted a bad name");
        assert!(
            check_value(x.value.expose()).is_ok(),
            "accepted a bad value"
        );
        assert!(
            !LIVEKIT_NAMES.contains(&x.name.as_str()),
            "kept a LIVEKIT_* secret"
        );
        assert!(seen.insert(x.name.clone()), "accepted a name twice");
    }
    for (_, v) in s.livekit.vars() {
        assert!(!v.expose().contains('\0'), "accepted a NUL in livekit");
    }
}

/// Target `secrets_parse`: `secrets::parse` on any plaintext.
pub fn secrets_parse(data: &[u8]) {
    quiet();
    match secrets::parse(data) {
        Ok(s) => assert_obeys_section_6(&s),
        Err(e) => {
            assert_eq!(e.exit_code(), 65, "{e}");
            assert_no_value_in(&e.to_string(), data);
        }
    }
}

/// A secret name: mostly from a small pool, so collisions and the special
/// names come up often; sometimes anything at all.
#[derive(Arbitrary, Debug, Clone)]
pub enum NameIn {
    Pick(u8),
    Word { len: u8, seed: u8 },
    Any(String),
}

const POOL: [&str; 14] = [
    "A",
    "B",
    "PATH",
    "SHARED",
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_BOOTSTRAP_TOKEN",
    "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
    "LIVEKIT_SECRETS_URL",
    "AGENT_INIT_LOG",
    "AGENT_INIT_",
    "_1",
    "a",
];

impl NameIn {
    fn render(&self) -> String {
        const WORD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
        match self {
            NameIn::Pick(i) => POOL[*i as usize % POOL.len()].to_string(),
            // Lengths 0..=75 cross the 1..=70 boundary on both sides.
            NameIn::Word { len, seed } => (0..*len as usize % 76)
                .map(|i| WORD[(i * 7 + *seed as usize) % WORD.len()] as char)
                .collect(),
            NameIn::Any(s) => s.clone(),
        }
    }
}

/// A secret value: anything, or a long run that crosses the 16 KiB limit.
#[derive(Arbitrary, Debug, Clone)]
pub enum ValueIn {
    Any(String),
    Long { len: u16, fill: char },
}

impl ValueIn {
    fn render(&self) -> String {
        match self {
            ValueIn::Any(s) => s.clone(),
            // 16,384 bytes sit in the middle of 0..=20,479 chars of 1..4 bytes.
            ValueIn::Long { len, fill } => {
                std::iter::repeat_n(*fill, *len as usize % 20_480).collect()
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
pub struct SecretIn {
    pub name: NameIn,
    pub value: ValueIn,
    pub updated_at: Option<String>,
}

/// A plaintext to seal: raw bytes, or a document built from parts.
#[derive(Arbitrary, Debug)]
pub enum SealedInput {
    Raw(Vec<u8>),
    Structured {
        secrets: Vec<SecretIn>,
        livekit: Option<[Option<String>; 3]>,
        unknown_members: bool,
    },
}

/// Target `sealed_plaintext`: seal a plaintext with the §9 token, open it,
/// parse it and merge it, so the fuzzer works past the AEAD.
///
/// Sealing then opening returns the plaintext byte for byte. For a
/// structured plaintext a model says whether §6 accepts it; when it does,
/// every value reaches the environment block byte for byte.
pub fn sealed_plaintext(data: &[u8]) {
    quiet();
    let Some(input) = decode::<SealedInput>(data) else {
        return;
    };
    let t = token();
    let (plaintext, expect) = match &input {
        SealedInput::Raw(bytes) => (bytes.clone(), None),
        SealedInput::Structured {
            secrets,
            livekit,
            unknown_members,
        } => {
            let rendered: Vec<(String, String, Option<String>)> = secrets
                .iter()
                .map(|s| (s.name.render(), s.value.render(), s.updated_at.clone()))
                .collect();
            let mut list = Vec::new();
            for (n, v, u) in &rendered {
                let mut o = serde_json::json!({"name": n, "value": v});
                if let Some(u) = u {
                    o["updated_at"] = u.clone().into();
                }
                if *unknown_members {
                    // Not "kind": since §6.1 that member is known, and an unknown kind refuses.
                    o["labels"] = serde_json::json!({"nested": [1, null]});
                }
                list.push(o);
            }
            let mut doc = serde_json::json!({ "secrets": list });
            if let Some(lk) = livekit {
                let mut m = serde_json::Map::new();
                for (k, v) in ["url", "api_key", "api_secret"].iter().zip(lk) {
                    if let Some(v) = v {
                        m.insert(k.to_string(), v.clone().into());
                    }
                }
                doc["livekit"] = m.into();
            }
            if *unknown_members {
                doc["version"] = 2.into();
            }
            let mut seen = std::collections::HashSet::new();
            let ok = rendered.iter().all(|(n, v, _)| {
                check_name(n).is_ok() && check_value(v).is_ok() && seen.insert(n.clone())
            }) && livekit
                .iter()
                .flatten()
                .flatten()
                .all(|v| !v.contains('\0'));
            let kept: Vec<(String, String)> = rendered
                .into_iter()
                .filter(|(n, _, _)| !LIVEKIT_NAMES.contains(&n.as_str()))
                .map(|(n, v, _)| (n, v))
                .collect();
            let lk: Vec<(&str, String)> = match livekit {
                Some(lk) => LIVEKIT_NAMES
                    .iter()
                    .zip(lk)
                    .filter_map(|(n, v)| v.clone().map(|v| (*n, v)))
                    .collect(),
                None => vec![],
            };
            (
                serde_json::to_vec(&doc).expect("JSON of strings"),
                Some((ok, kept, lk)),
            )
        }
    };
    let body = bundle::seal_with_nonce(&t, &plaintext, NONCE);
    let opened = bundle::open(&t, body.as_bytes()).expect("a bundle sealed for the token opens");
    assert_eq!(opened.expose(), &plaintext[..], "open(seal(p)) != p");
    let parsed = secrets::parse(opened.expose());
    if let Err(e) = &parsed {
        assert_eq!(e.exit_code(), 65, "{e}");
        assert_no_value_in(&e.to_string(), &plaintext);
        assert_no_key_material(&e.to_string());
    }
    let Some((ok, kept, lk)) = expect else {
        if let Ok(s) = parsed {
            assert_obeys_section_6(&s);
        }
        return;
    };
    assert_eq!(parsed.is_ok(), ok, "§6 model and secrets::parse disagree");
    let Ok(s) = parsed else { return };
    assert_obeys_section_6(&s);
    let got: Vec<(String, String)> = s
        .secrets
        .iter()
        .map(|x| (x.name.clone(), x.value.expose().to_string()))
        .collect();
    assert_eq!(got, kept, "secrets changed between seal and parse");
    // Into the environment the command receives: bundle secrets, then livekit over them.
    let mut want: Vec<(String, String)> = Vec::new();
    for (n, v) in kept
        .into_iter()
        .chain(lk.into_iter().map(|(n, v)| (n.to_string(), v)))
        .filter(|(n, _)| !agent_init::protocol::rules::is_stripped(n.as_ref()))
    {
        match want.iter_mut().find(|(m, _)| *m == n) {
            Some(slot) => slot.1 = v,
            None => want.push((n, v)),
        }
    }
    let block = Environment::production(Vec::new(), s).into_block();
    let strs: Vec<Vec<u8>> = block
        .c_strs()
        .iter()
        .map(|c| c.to_bytes().to_vec())
        .collect();
    let want: Vec<Vec<u8>> = want
        .into_iter()
        .map(|(n, v)| format!("{n}={v}").into_bytes())
        .collect();
    assert_eq!(strs, want, "the environment block differs from the secrets");
}

/// Target `dotenv`: `dotenv::parse` on any text, with a lookup that knows
/// a few names so interpolation has something to find.
///
/// Accepted means every entry obeys the §6 name and value rules (an
/// environment cannot carry the rest) and its line number lies inside the
/// file; refused is a user-facing error (65 or 78), never an internal one.
pub fn dotenv(data: &[u8]) {
    quiet();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lookup = |name: &str| -> Option<agent_init::base::sensitive::SecretString> {
        let v = match name {
            "A" => "alpha",
            "EMPTY" => "",
            "MULTI" => "one\ntwo",
            "DOLLAR" => "${A}",
            _ => return None,
        };
        Some(v.to_string().into())
    };
    match agent_init::local::dotenv::parse(text, "fuzz.env", &lookup) {
        Ok(entries) => {
            // python-dotenv reads \r\n and a bare \r as line ends too.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            for e in &entries {
                assert!(check_name(&e.name).is_ok(), "dotenv accepted a bad name");
                assert!(
                    check_value(e.value.expose()).is_ok(),
                    "dotenv accepted a bad value"
                );
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            }
        }
        Err(e) => {
            assert!(
                matches!(e.exit_code(), 65 | 78),
                "dotenv error with exit {}: {e}",
                e.exit_code()
            );
        }
    }
}

/// A value of agent-init's own environment: anything, or a long run that
/// crosses the kernel's 128 KiB per-string limit.
#[derive(Arbitrary, Debug)]
pub enum EnvValueIn {
    Any(Vec<u8>),
    Long { len: u32, fill: u8 },
}

impl EnvValueIn {
    fn render(&self) -> Vec<u8> {
        match self {
            EnvValueIn::Any(v) => v.clone(),
            EnvValueIn::Long { len, fill } => vec![*fill; *len as usize % (MAX_ARG_STRLEN + 8192)],
        }
    }
}

/// Everything the merge sees, production or local.
#[derive(Arbitrary, Debug)]
pub struct MergeInput {
    pub local: bool,
    pub inherited: Vec<(NameIn, EnvValueIn)>,
    pub secrets: Vec<(NameIn, ValueIn)>,
    pub livekit: [Option<String>; 3],
    pub files: Vec<Vec<(NameIn, ValueIn)>>,
    pub flags: Vec<(NameIn, ValueIn)>,
    pub required: Vec<NameIn>,
    pub argv: Vec<Vec<u8>>,
    pub arg_max: u32,
}

fn stripped(n: &[u8]) -> bool {
    agent_init::protocol::rules::is_stripped(std::ffi::OsStr::from_bytes(n))
}

/// Target `merge`: `Environment::production` / `local`, `check` and
/// `into_block` on inputs that meet what the earlier steps guarantee
/// (environ names without `=` or NUL, §6-checked secrets and file values).
///
/// The merged environment equals a plain model of §7 (production) or of
/// "flags > inherited > files, later over earlier" (local), never holds a
/// bootstrap variable, and `into_block` writes exactly `NAME=VALUE` for each
/// variable. When `check` passes, no required name is missing or empty and
/// no string is over `MAX_ARG_STRLEN`.
pub fn merge(data: &[u8]) {
    quiet();
    let Some(input) = decode::<MergeInput>(data) else {
        return;
    };
    let inherited: Vec<(Vec<u8>, Vec<u8>)> = input
        .inherited
        .iter()
        .map(|(n, v)| (n.render().into_bytes(), v.render()))
        .filter(|(n, v)| !n.is_empty() && !n.contains(&b'=') && !n.contains(&0) && !v.contains(&0))
        .collect();
    // A name twice in the environment counts once, by its first entry (getenv's rule).
    let mut first_inherited: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (n, v) in &inherited {
        if !first_inherited.iter().any(|(m, _)| m == n) {
            first_inherited.push((n.clone(), v.clone()));
        }
    }
    let valid = |(n, v): &(NameIn, ValueIn)| {
        let (n, v) = (n.render(), v.render());
        (check_name(&n).is_ok() && check_value(&v).is_ok()).then_some((n, v))
    };
    let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut put = |n: &[u8], v: &[u8]| {
        if stripped(n) {
            return;
        }
        match model.iter_mut().find(|(m, _)| m == n) {
            Some(slot) => slot.1 = v.to_vec(),
            None => model.push((n.to_vec(), v.to_vec())),
        }
    };
    let inh = || {
        inherited
            .iter()
            .map(|(n, v)| (OsString::from_vec(n.clone()), SecretBytes::new(v.clone())))
            .collect::<Vec<_>>()
    };
    let env = if input.local {
        let files: Vec<Vec<(String, String)>> = input
            .files
            .iter()
            .map(|f| f.iter().filter_map(valid).collect())
            .collect();
        let flags: Vec<(String, String)> = input.flags.iter().filter_map(valid).collect();
        for (n, v) in files.iter().flatten() {
            put(n.as_bytes(), v.as_bytes());
        }
        for (n, v) in &first_inherited {
            put(n, v);
        }
        for (n, v) in &flags {
            put(n.as_bytes(), v.as_bytes());
        }
        let file_vars: FileVars = files
            .into_iter()
            .enumerate()
            .map(|(i, vars)| {
                (
                    format!(".env.{i}").into(),
                    vars.into_iter()
                        .map(|(n, v)| (n, SecretBytes::new(v.into_bytes())))
                        .collect(),
                )
            })
            .collect();
        let flags = flags
            .into_iter()
            .map(|(n, v)| (n, SecretBytes::new(v.into_bytes())))
            .collect();
        Environment::local(inh(), file_vars, flags)
    } else {
        let mut seen = std::collections::HashSet::new();
        let list: Vec<(String, String)> = input
            .secrets
            .iter()
            .filter_map(valid)
            .filter(|(n, _)| seen.insert(n.clone()))
            .collect();
        let livekit: Vec<(&str, &String)> = LIVEKIT_NAMES
            .iter()
            .zip(&input.livekit)
            .filter_map(|(n, v)| v.as_ref().filter(|v| !v.contains('\0')).map(|v| (*n, v)))
            .collect();
        let doc = serde_json::json!({
            "secrets": list.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "livekit": livekit.iter().map(|(n, v)| {
                let k = ["url", "api_key", "api_secret"][LIVEKIT_NAMES.iter().position(|x| x == n).unwrap()];
                (k.to_string(), serde_json::Value::from(v.as_str()))
            }).collect::<serde_json::Map<_, _>>(),
        });
        let parsed = secrets::parse(&serde_json::to_vec(&doc).unwrap())
            .expect("a §6-valid plaintext parses");
        for (n, v) in &first_inherited {
            put(n, v);
        }
        for (n, v) in &list {
            if !LIVEKIT_NAMES.contains(&n.as_str()) {
                put(n.as_bytes(), v.as_bytes());
            }
        }
        for (n, v) in &livekit {
            put(n.as_bytes(), v.as_bytes());
        }
        Environment::production(inh(), parsed)
    };

    let got: HashMap<Vec<u8>, Vec<u8>> = env
        .vars()
        .iter()
        .map(|v| (v.name.as_bytes().to_vec(), v.value.expose().to_vec()))
        .collect();
    assert_eq!(
        got.len(),
        env.len(),
        "a name appears twice in the environment"
    );
    let want: HashMap<Vec<u8>, Vec<u8>> = model.into_iter().collect();
    if got != want {
        let show = |m: &HashMap<Vec<u8>, Vec<u8>>| {
            let mut v: Vec<(String, String)> = m
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into(),
                        String::from_utf8_lossy(v).into(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        panic!(
            "the merge differs from the precedence model:\n got {:?}\nwant {:?}\n{input:?}",
            show(&got),
            show(&want)
        );
    }

    let required: Vec<String> = input.required.iter().map(NameIn::render).collect();
    let argv: Vec<OsString> = input
        .argv
        .iter()
        .filter(|a| !a.contains(&0))
        .map(|a| OsString::from_vec(a.clone()))
        .collect();
    let missing = required
        .iter()
        .any(|r| want.get(r.as_bytes()).is_none_or(|v| v.is_empty()));
    match env.check(&required, &argv, input.arg_max as usize) {
        Ok(()) => {
            assert!(!missing, "check passed with a required name missing");
            for v in env.vars() {
                assert!(v.name.len() + v.value.len() + 2 <= MAX_ARG_STRLEN);
            }
        }
        Err(e) => match e.exit_code() {
            78 => assert!(missing, "78 without a missing name: {e}"),
            65 => assert!(!missing, "65 before the missing-name check: {e}"),
            c => panic!("check failed with exit {c}: {e}"),
        },
    }
    let expected: Vec<Vec<u8>> = env
        .vars()
        .iter()
        .map(|v| [v.name.as_bytes(), b"=", v.value.expose()].concat())
        .collect();
    let names: Vec<String> = env
        .vars()
        .iter()
        .map(|v| v.name.to_string_lossy().into_owned())
        .collect();
    let block = env.into_block();
    let strs: Vec<Vec<u8>> = block
        .c_strs()
        .iter()
        .map(|c| c.to_bytes().to_vec())
        .collect();
    assert_eq!(strs, expected, "into_block differs from the variables");
    for s in &strs {
        let name = &s[..s.iter().position(|&b| b == b'=').unwrap()];
        assert!(!stripped(name), "a bootstrap variable reached the block");
    }
    for n in names {
        assert_eq!(block.get(&n), want.get(n.as_bytes()).map(Vec::as_slice));
    }
}

/// Target `retry_after`: `parse_retry_after` on any header value. It parses
/// bytes from the network, so it must not panic on any of them (overflowing
/// arithmetic panics in this build) and must not wrap into a wrong wait.
pub fn retry_after(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_754_473);
    if let Some(d) = agent_init::source::parse_retry_after(s, now) {
        let v = s.trim();
        if v.bytes().all(|b| b.is_ascii_digit()) {
            assert!(
                d.as_secs() <= 86_400,
                "delta-seconds beyond the one-day cap"
            );
        }
    }
}

/// Environment names the argument target may set: what `Invocation::parse`
/// reads, except `LIVEKIT_BOOTSTRAP_TOKEN_FILE`, which would read a file.
const PARSE_ENV: [&str; 11] = [
    "AGENT_INIT_LOG",
    "AGENT_INIT_REQUIRE",
    "AGENT_INIT_SUPERVISE",
    "AGENT_INIT_SIGNAL_CHILD",
    "AGENT_INIT_TIMEOUT",
    "AGENT_INIT_MAX_BUNDLE",
    "AGENT_INIT_CA_FILE",
    "LIVEKIT_BOOTSTRAP_TOKEN",
    "LIVEKIT_SECRETS_URL",
    "PYTHON_DOTENV_DISABLED",
    "PATH",
];

/// Target `config_parse`: `Invocation::parse` on any command line.
///
/// The input is NUL-separated items: one starting with byte 0x01 is an
/// environment entry `NAME=VALUE` (for the names of [`PARSE_ENV`]), every
/// other item an argument, in order; a plain text file of the corpus reads as
/// a command line. Refused means exit 64, 65 or 78, and the message shows no
/// value of a `NAME=VALUE` argument and no token KEY, beyond what
/// `shown_arg` lets through for the argument it names. Accepted means a run
/// has a command and every `--require` and `AGENT_INIT_REQUIRE` name of a
/// run, `--list` or `--check` and every `--secrets` name (theirs or seal's)
/// obeys §6.
pub fn config_parse(data: &[u8]) {
    use agent_init::base::error::shown_arg;
    use agent_init::config::{Action, Invocation, Mode};
    quiet();
    let mut args: Vec<OsString> = Vec::new();
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for item in data.split(|&b| b == 0) {
        if let Some(entry) = item.strip_prefix(&[1u8]) {
            let eq = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
            let name = &entry[..eq];
            if PARSE_ENV.iter().any(|n| n.as_bytes() == name) {
                let value = entry.get(eq + 1..).unwrap_or_default();
                env.push((
                    OsString::from_vec(name.to_vec()),
                    OsString::from_vec(value.to_vec()),
                ));
            }
        } else {
            args.push(OsString::from_vec(item.to_vec()));
        }
    }
    // --token-file reads the file it names (possibly /dev/zero).
    if args.iter().any(|a| a.as_bytes().starts_with(b"--token-f")) {
        return;
    }
    // What a message may echo: each argument as `shown_arg` shows it, and
    // for `--flag=value` the flag and the value each as `shown_arg` shows
    // them (`--require=NAME` names a variable, which a message may show).
    let mut shown: Vec<String> = Vec::new();
    for a in &args {
        let b = a.as_bytes();
        shown.push(shown_arg(b));
        if let Some(eq) = b.iter().position(|&c| c == b'=') {
            shown.push(shown_arg(&b[..eq]));
            shown.push(shown_arg(&b[eq + 1..]));
        }
    }
    for (_, v) in &env {
        shown.push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let env = env
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                agent_init::base::sensitive::SecretBytes::new(v.into_vec()),
            )
        })
        .collect();
    let argv = args
        .iter()
        .map(|a| agent_init::base::sensitive::SecretBytes::new(a.as_bytes().to_vec()))
        .collect();
    match Invocation::parse(argv, env) {
        Ok(i) => {
            let flags = match &i {
                Invocation::Help | Invocation::Version => &[][..],
                Invocation::Seal(seal) => &seal.inputs.flags[..],
                Invocation::Run(c) => {
                    if c.action == Action::Run {
                        assert!(!c.command.is_empty(), "a run without a command");
                    }
                    for n in &c.require {
                        assert!(check_name(n).is_ok(), "accepted a bad required name");
                    }
                    match &c.mode {
                        Mode::Local { inputs, .. } => &inputs.flags[..],
                        Mode::Production { .. } => &[],
                    }
                }
            };
            for (n, v) in flags {
                assert!(check_name(n).is_ok(), "accepted a bad --secrets name");
                let v = std::str::from_utf8(v.expose()).expect("--secrets values are UTF-8");
                assert!(check_value(v).is_ok(), "accepted a bad --secrets value");
            }
        }
        Err(e) => {
            assert!(
                matches!(e.exit_code(), 64 | 65 | 78),
                "a command-line error with exit {}: {e}",
                e.exit_code()
            );
            let msg = e.to_string();
            let echoed = |s: &str| shown.iter().any(|x| x.contains(s));
            if !echoed(KEY) {
                assert!(!msg.contains(KEY), "a message shows a token's KEY: {msg}");
            }
            for a in &args {
                let b = a.as_bytes();
                let Some(eq) = b.iter().position(|&c| c == b'=') else {
                    continue;
                };
                let value = String::from_utf8_lossy(&b[eq + 1..]);
                // Only values no honest message could spell (see `in_messages`).
                let value = value.trim_matches(|c: char| c.is_control());
                if value.len() < 6 || value.chars().all(in_messages) || echoed(value) {
                    continue;
                }
                assert!(
                    !msg.contains(value),
                    "a message shows an argument's value: {msg}"
                );
            }
        }
    }
}
