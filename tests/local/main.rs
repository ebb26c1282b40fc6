//! Local development: dotenv files, `--secrets`, their precedence,
//! `--list`, `--check` and `agent-init seal`, through the real binary.
//!
//! Each precedence test asserts the command's exact initial environment,
//! captured byte for byte from `/proc/self/environ`.
//!
//! One test binary; a module per behaviour. The helpers shared by the
//! modules are here: runs and the command's captured environment, and
//! `agent-init seal` with its bundles opened per the protocol.

#[path = "../support/mod.rs"]
mod support;

mod dotenv_files;
mod help;
mod listing;
mod precedence;
mod refusals;
mod seal;
mod seal_refusals;

use agent_init::protocol::bundle;
use agent_init::protocol::token::Token;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::process::Output;
use support::bundle::vector;
use support::{
    assert_exit_says, assert_failed_cleanly, assert_no_leak, assert_says, scratch, Harness, Run,
};

/// What every run passes on.
const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";

/// The command's environment as a set of `NAME=VALUE` strings; asserts no name repeats.
fn child_env(c: &Harness) -> BTreeSet<String> {
    let vars: Vec<String> = c
        .captured()
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap())
        .collect();
    let names: BTreeSet<&str> = vars.iter().map(|v| v.split('=').next().unwrap()).collect();
    assert_eq!(names.len(), vars.len(), "a name repeats: {vars:?}");
    vars.into_iter().collect()
}

fn set(vars: &[&str]) -> BTreeSet<String> {
    vars.iter().map(|s| s.to_string()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `PATH` and `vars`: a whole environment of a run.
fn with_path(vars: &[&str]) -> BTreeSet<String> {
    let mut all = set(vars);
    all.insert(PATH.to_string());
    all
}

/// Runs `run` with the capture command after its arguments and asserts the
/// command ran; its output and environment (as [`child_env`] reads it).
fn ran(c: &Harness, run: Run) -> (Output, BTreeSet<String>) {
    let out = run.args(c.capture()).output();
    assert_ran(&out, c);
    (out, child_env(c))
}

/// Runs agent-init in `c` with `args` and the capture command, and asserts
/// the refusal: exit `code`, nothing started, none of `secrets` printed.
#[track_caller]
fn refused(c: &Harness, args: &[&str], code: i32, secrets: &[&str]) -> Output {
    let out = c.agent().args(args).args(c.capture()).output();
    assert_failed_cleanly(&out, code, &c.marker, secrets);
    out
}

fn assert_ran(out: &Output, case: &Harness) {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    assert!(
        case.marker.exists(),
        "the command did not start: {}",
        stderr(out)
    );
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// agent-init in `c` with the known-answer vector's token, and its bundle
/// written to `c`'s directory as the file:// secrets URL.
fn with_known_answer_bundle(c: &Harness) -> Run {
    let v = vector();
    let b = c.file("bundle.json", v["bundle"].to_string());
    c.agent()
        .env("LIVEKIT_BOOTSTRAP_TOKEN", v["token"].as_str().unwrap())
        .env("LIVEKIT_SECRETS_URL", file_url(&b))
}

// ---------------------------------------------------------------------------
// `agent-init seal` and its bundles, opened per the protocol (seal, seal_refusals)

/// PROTOCOL.md §3 and §5 written out independently of src/: HKDF-SHA256 for
/// seal_key, AES-256-GCM with AAD "lkbt1." ID. Returns the plaintext.
fn open_per_protocol(token: &str, bundle: &serde_json::Value) -> Vec<u8> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    use ring::hkdf;
    let rest = token.trim().strip_prefix("lkbt1.").expect("lkbt1. prefix");
    let (id, key) = rest.split_once('.').expect("lkbt1.ID.KEY");
    let ikm = URL_SAFE_NO_PAD.decode(key).unwrap();
    let mut seal_key = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"lkbt1")
        .extract(&ikm)
        .expand(&[b"seal"], hkdf::HKDF_SHA256)
        .unwrap()
        .fill(&mut seal_key)
        .unwrap();
    assert_eq!(bundle["format"], "lkbt1");
    let nonce = URL_SAFE_NO_PAD
        .decode(bundle["nonce"].as_str().unwrap())
        .unwrap();
    let mut ct = URL_SAFE_NO_PAD
        .decode(bundle["ciphertext"].as_str().unwrap())
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seal_key).unwrap());
    let aad = format!("lkbt1.{id}");
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::from(aad.as_bytes()),
            &mut ct,
        )
        .expect("the bundle authenticates under the protocol's construction");
    plain.to_vec()
}

/// Runs `agent-init seal ARGS`, asserting success and that stdout is exactly one token line.
fn seal(c: &Harness, args: &[&str]) -> (String, Output) {
    let out = c.agent().args(["seal"]).args(args).output();
    assert_eq!(out.status.code(), Some(0), "seal failed: {}", stderr(&out));
    let text = stdout(&out);
    let token = text
        .strip_suffix('\n')
        .expect("the token ends in a newline");
    assert!(
        !token.contains('\n'),
        "stdout holds more than the token: {text:?}"
    );
    Token::parse(token).expect("stdout is a well-formed token");
    assert_eq!(token.len(), "lkbt1.".len() + 22 + 1 + 43);
    (token.to_string(), out)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The secrets of the bundle `token` opens at `p`, as sorted (name, value) pairs.
fn sealed_secrets(token: &str, p: &Path) -> Vec<(String, String)> {
    let plain = open_per_protocol(token.trim(), &read_json(p));
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let mut v: Vec<(String, String)> = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Asserts that the bundle `token` opens at `file` (in `c`'s directory)
/// holds exactly the secrets `want`.
#[track_caller]
fn assert_sealed(c: &Harness, token: &str, file: &str, want: &[(&str, &str)]) {
    assert_eq!(
        sealed_secrets(token, &c.dir.join(file)),
        pairs(want),
        "{file}"
    );
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
