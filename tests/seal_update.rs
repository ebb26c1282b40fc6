//! `agent-init seal` as `lk agent update-secrets`: updating a bundle with its
//! token, the dates of PROTOCOL.md §6.2, `--overwrite`, `--remove`, the
//! default files, `--secret-mount`, and `--list [--json]`, through the real
//! binary.

mod support;

use agent_init::protocol::secrets::{self, Manifest, Plaintext};
use agent_init::protocol::token::Token;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{assert_exit_says, assert_says, Harness};

const T0: &str = "2026-11-02T10:00:00Z";
const T1: &str = "2026-11-20T08:30:00Z";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The token file and the bundle of a run made by [`with_old_bundle`].
const TOKEN_FILE: &str = "agent.token";
const OUT: &str = "bundle.json";

/// A harness whose directory holds a token file and an old bundle for it:
/// A, B (env) and key.pem (file, env KEY_FILE), all created T0 and updated
/// T1, and key.pem itself.
fn with_old_bundle(name: &str) -> (Harness, Token) {
    let h = Harness::new(name);
    let token = Token::generate().unwrap();
    h.file(TOKEN_FILE, token.encode().expose());
    let plain = json!({"secrets": [
        {"name": "A", "value": "value-a-1c2d", "created_at": T0, "updated_at": T1},
        {"name": "B", "value": "value-b-3e4f", "created_at": T0, "updated_at": T1},
        {"name": "key.pem", "kind": "file", "value": agent_init::protocol::token::b64u(b"PEM-5a6b"), "env": "KEY_FILE", "created_at": T0, "updated_at": T1},
    ], "livekit": {"url": "wss://lk.example"}});
    h.file(OUT, support::bundle::seal(&token, &plain.to_string()));
    h.file("key.pem", "PEM-5a6b");
    (h, token)
}

/// `agent-init seal ARGS --token-file agent.token --out bundle.json`.
fn update(h: &Harness, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--token-file", TOKEN_FILE, "--out", OUT]);
    h.seal(&all)
}

/// The bundle at [`OUT`].
fn bundle_file(h: &Harness) -> PathBuf {
    h.dir.join(OUT)
}

/// The secrets and the plaintext of the bundle at [`OUT`].
fn open_bundle(h: &Harness, token: &Token) -> (Plaintext, Vec<u8>) {
    open(token, &bundle_file(h))
}

fn open(token: &Token, path: &Path) -> (Plaintext, Vec<u8>) {
    let body = std::fs::read(path).unwrap();
    let plain = agent_init::protocol::bundle::open(token, &body).unwrap();
    (
        secrets::parse(plain.expose()).unwrap(),
        plain.expose().to_vec(),
    )
}

/// `(name, kind, created_at, updated_at)` per secret, from the manifest.
fn dates(s: &Plaintext) -> Vec<(String, String, String, String)> {
    let m: Manifest = secrets::manifest(s);
    m.secrets
        .into_iter()
        .map(|e| {
            (
                e.name,
                e.kind,
                e.created_at.unwrap_or_default(),
                e.updated_at.unwrap_or_default(),
            )
        })
        .collect()
}

fn row(n: &str, k: &str, c: &str, u: &str) -> (String, String, String, String) {
    (n.into(), k.into(), c.into(), u.into())
}

/// The clock's reading as seal stamps it, for bracketing its "now".
fn now() -> String {
    agent_init::base::time::rfc3339_now()
}

/// Asserts `t` is a seal-stamped time within `[before, after]`.
fn within(t: &str, before: &str, after: &str) {
    assert!(
        before <= t && t <= after,
        "{t} is not within [{before}, {after}]"
    );
}

#[test]
fn an_update_adds_updates_and_keeps_with_section_6_2_dates() {
    let (h, token) = with_old_bundle("update-table");
    let before = now();
    let out = update(
        &h,
        &[
            "--secrets",
            "A=value-a-1c2d",
            "--secrets",
            "B=value-b-new-7a8b",
            "--secrets",
            "C=value-c-9c0d",
            "--secret-mount",
            "KEY_FILE=key.pem",
        ],
    );
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", token.encode().expose()));
    let (opened, _) = open_bundle(&h, &token);
    let d = dates(&opened);
    // A and key.pem: given unchanged, both dates kept.
    assert_eq!(d[0], row("A", "env", T0, T1));
    assert_eq!(d[3], row("key.pem", "file", T0, T1));
    // B: changed, created_at kept, updated_at now.
    assert_eq!((d[1].0.as_str(), d[1].2.as_str()), ("B", T0));
    within(&d[1].3, &before, &after);
    // C: new, both now (the same instant).
    assert_eq!(d[2].0, "C");
    within(&d[2].2, &before, &after);
    assert_eq!(d[2].2, d[2].3);
    assert_eq!(opened.secrets[1].value.expose(), "value-b-new-7a8b");
    assert_eq!(
        opened.livekit.url.as_ref().unwrap().expose(),
        "wss://lk.example"
    );
    support::assert_no_leak(
        &out,
        &[
            "value-a-1c2d",
            "value-b-new-7a8b",
            "value-c-9c0d",
            "PEM-5a6b",
        ],
    );
    let err = stderr(&out);
    assert!(
        err.contains("1 added, 1 updated, 2 unchanged, 1 kept"),
        "{err}"
    );
}

#[test]
fn secrets_not_given_are_kept_with_their_dates_and_overwrite_drops_them() {
    let (h, token) = with_old_bundle("update-keep");
    let out = update(&h, &["--secrets", "C=value-c-9c0d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = open_bundle(&h, &token);
    let d = dates(&opened);
    assert_eq!(d[0], row("A", "env", T0, T1));
    assert_eq!(d[1], row("B", "env", T0, T1));
    assert_eq!(d[3], row("key.pem", "file", T0, T1));
    assert_eq!(opened.files[0].content.expose(), b"PEM-5a6b");

    let out = update(&h, &["--overwrite", "--secrets", "A=value-a-1c2d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = open_bundle(&h, &token);
    assert_eq!(dates(&opened), [row("A", "env", T0, T1)]);
    assert!(
        opened.livekit.url.is_none(),
        "overwrite replaces the livekit member too"
    );
    assert_says(&out, "removed B, C, key.pem, LIVEKIT_URL");
}

#[test]
fn remove_deletes_one_secret_and_an_absent_name_is_refused_64() {
    let (h, token) = with_old_bundle("update-remove");
    let out = update(&h, &["--remove", "B", "--remove", "key.pem"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = open_bundle(&h, &token);
    assert_eq!(dates(&opened), [row("A", "env", T0, T1)]);
    let before = std::fs::read(bundle_file(&h)).unwrap();
    let out = update(&h, &["--remove", "NOT_THERE"]);
    assert_exit_says(&out, 64, "--remove NOT_THERE");
    assert!(stdout(&out).is_empty());
    assert_eq!(
        std::fs::read(bundle_file(&h)).unwrap(),
        before,
        "nothing written"
    );
}

#[test]
fn resealing_the_same_inputs_changes_only_the_nonce() {
    let (h, token) = with_old_bundle("update-same");
    let args = ["--secrets", "A=value-a-1c2d", "--secrets", "D=value-d-2b3c"];
    let first = update(&h, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let b1: Value = serde_json::from_slice(&std::fs::read(bundle_file(&h)).unwrap()).unwrap();
    let (_, p1) = open_bundle(&h, &token);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = update(&h, &args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let b2: Value = serde_json::from_slice(&std::fs::read(bundle_file(&h)).unwrap()).unwrap();
    let (_, p2) = open_bundle(&h, &token);
    assert_eq!(
        p1, p2,
        "the plaintext is byte for byte the same, dates included"
    );
    assert_ne!(b1["nonce"], b2["nonce"], "a fresh nonce");
    assert_ne!(b1["ciphertext"], b2["ciphertext"]);
}

#[test]
fn a_bundle_the_token_does_not_open_is_refused_65_and_left_alone() {
    let (h, _) = with_old_bundle("update-wrong-token");
    let other = Token::generate().unwrap();
    h.file(TOKEN_FILE, other.encode().expose());
    let before = std::fs::read(bundle_file(&h)).unwrap();
    let out = update(&h, &["--secrets", "C=value-c-9c0d"]);
    assert_exit_says(&out, 65, "cannot be updated with this token");
    assert!(stdout(&out).is_empty(), "no token printed");
    assert_eq!(std::fs::read(bundle_file(&h)).unwrap(), before);
    support::Forbidden::new()
        .token(&other)
        .value("value-c-9c0d")
        .assert_not_printed(&out);
}

#[test]
fn without_a_token_an_existing_out_is_replaced_only_with_overwrite() {
    let (h, token) = with_old_bundle("new-token");
    let before = std::fs::read(bundle_file(&h)).unwrap();
    let run = |extra: &[&str]| {
        h.agent()
            .args([
                "seal",
                "--secrets",
                "C=value-c-9c0d",
                "--out",
                "bundle.json",
            ])
            .args(extra)
            .output()
    };
    let out = run(&[]);
    assert_exit_says(&out, 64, "--out bundle.json exists");
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read(bundle_file(&h)).unwrap(), before);
    let out = run(&["--overwrite"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new = Token::parse(stdout(&out).trim_end()).unwrap();
    assert_ne!(new.id_b64(), token.id_b64(), "a new token");
    let (opened, _) = open(&new, &bundle_file(&h));
    assert_eq!(opened.secrets.len(), 1);
    assert_eq!(opened.secrets[0].name, "C");
}

#[test]
fn with_no_input_flag_seal_reads_the_lk_files_names_them_and_refuses_to_seal_nothing() {
    let h = Harness::new("seal-defaults");
    let run = || h.seal(&["--out", "b.json"]);
    let out = run();
    assert_exit_says(&out, 64, "none of .env, .env.local, .env.production");
    assert!(!h.dir.join("b.json").exists());
    h.file(".env", "A=from-env-1a1a\nB=from-env-2b2b\n");
    h.file(".env.production", "B=from-production-3c3c\n");
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("reading .env\n") && err.contains("reading .env.production\n"),
        "{err}"
    );
    assert!(!err.contains(".env.local"), "{err}");
    let token = Token::parse(stdout(&out).trim_end()).unwrap();
    let (opened, _) = open(&token, &h.dir.join("b.json"));
    let got: Vec<(&str, &str)> = opened
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.value.expose()))
        .collect();
    assert_eq!(got, [("A", "from-env-1a1a"), ("B", "from-production-3c3c")]);
    // An empty file is no secret: nothing to seal.
    let empty = Harness::new("seal-empty");
    empty.file(".env", "# nothing\n");
    let out = empty.seal(&["--out", "b.json"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(!empty.dir.join("b.json").exists());
}

#[test]
fn list_prints_name_kind_origin_and_dates_and_json_the_same_never_a_value_nor_writes() {
    let (h, token) = with_old_bundle("seal-list");
    let before = std::fs::read(bundle_file(&h)).unwrap();
    // The bundle as it is.
    let out = update(&h, &["--list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "A\tenv\tbundle\t{T0}\t{T1}\nB\tenv\tbundle\t{T0}\t{T1}\nkey.pem\tfile\tbundle\t{T0}\t{T1}\nLIVEKIT_URL\tenv\tbundle (livekit)\t-\t-\n"
        )
    );
    // An update, previewed as JSON.
    let out = update(
        &h,
        &[
            "--list",
            "--json",
            "--secrets",
            "B=value-b-new-7a8b",
            "--remove",
            "A",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["removed"], json!(["A"]));
    assert_eq!(v["secrets"][0]["name"], "B");
    assert_eq!(v["secrets"][0]["origin"], "flag --secrets");
    assert_eq!(v["secrets"][0]["status"], "updated");
    assert_eq!(v["secrets"][0]["created_at"], T0);
    assert_eq!(
        v["secrets"][1],
        json!({"name": "key.pem", "kind": "file", "env": "KEY_FILE", "origin": "bundle", "status": "kept", "created_at": T0, "updated_at": T1})
    );
    support::assert_no_leak(
        &out,
        &[
            "value-a-1c2d",
            "value-b-new-7a8b",
            "value-b-3e4f",
            "PEM-5a6b",
            "wss://lk.example",
        ],
    );
    assert!(
        !stdout(&out).contains(token.encode().expose()),
        "--list prints no token"
    );
    assert_eq!(
        std::fs::read(bundle_file(&h)).unwrap(),
        before,
        "--list writes nothing"
    );
}

#[test]
fn a_file_sealed_with_secret_mount_reaches_the_command_as_a_file() {
    let mut h = Harness::new("seal-mount");
    h.file("google-credentials.json", "{\"private_key\": \"pk-6d7e\"}");
    let out = h.seal(&[
        "--secret-mount",
        "GOOGLE_APPLICATION_CREDENTIALS=google-credentials.json",
        "--secrets",
        "LIVEKIT_URL=wss://x",
        "--secrets",
        "LIVEKIT_API_KEY=k",
        "--secrets",
        "LIVEKIT_API_SECRET=s",
        "--out",
        "b.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out).trim_end().to_string();
    let files_dir = PathBuf::from(format!(
        "/dev/shm/agent-init-test-sealmount-{}",
        std::process::id()
    ));
    h.set("LIVEKIT_BOOTSTRAP_TOKEN", token);
    h.set(
        "LIVEKIT_SECRETS_URL",
        format!("file://{}", h.dir.join("b.json").display()),
    );
    h.set("AGENT_INIT_SECRETS_DIR", files_dir.clone());
    let run = h
        .agent()
        .args([
            "--supervise",
            "sh",
            "-c",
            "cat \"$GOOGLE_APPLICATION_CREDENTIALS\"",
        ])
        .output();
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert_eq!(stdout(&run), "{\"private_key\": \"pk-6d7e\"}");
    assert!(!files_dir.exists());
}
