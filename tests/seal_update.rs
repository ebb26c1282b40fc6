//! `agent-init seal` as `lk agent update-secrets`: updating a bundle with its
//! token, the dates of PROTOCOL.md §6.2, `--overwrite`, `--remove`, the
//! default files, `--secret-mount`, and `--list [--json]`, through the real
//! binary.

mod support;

use agent_init::protocol::secrets::{self, Manifest, Secrets};
use agent_init::protocol::token::Token;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{scratch, Run};

const T0: &str = "2026-11-02T10:00:00Z";
const T1: &str = "2026-11-20T08:30:00Z";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A directory with a token file and an old bundle for it: A, B (env) and
/// key.pem (file, env KEY_FILE), all created T0 and updated T1.
struct Setup {
    dir: PathBuf,
    token: Token,
    token_file: PathBuf,
    out: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = scratch(name);
        let token = Token::generate().unwrap();
        let token_file = dir.join("agent.token");
        std::fs::write(&token_file, token.encode().expose()).unwrap();
        let out = dir.join("bundle.json");
        let plain = json!({"secrets": [
            {"name": "A", "value": "value-a-1c2d", "created_at": T0, "updated_at": T1},
            {"name": "B", "value": "value-b-3e4f", "created_at": T0, "updated_at": T1},
            {"name": "key.pem", "kind": "file", "value": agent_init::protocol::token::b64u(b"PEM-5a6b"), "env": "KEY_FILE", "created_at": T0, "updated_at": T1},
        ], "livekit": {"url": "wss://lk.example"}});
        std::fs::write(
            &out,
            agent_init::protocol::bundle::seal(&token, plain.to_string().as_bytes()).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("key.pem"), "PEM-5a6b").unwrap();
        Setup {
            dir,
            token,
            token_file,
            out,
        }
    }

    /// `agent-init seal ARGS --token-file T --out bundle.json`.
    fn seal(&self, args: &[&str]) -> Output {
        Run::new(&self.dir)
            .args(["seal"])
            .args(args)
            .args(["--token-file".as_ref(), self.token_file.as_os_str()])
            .args(["--out".as_ref(), self.out.as_os_str()])
            .output()
    }

    fn opened(&self) -> (Secrets, Vec<u8>) {
        open(&self.token, &self.out)
    }
}

fn open(token: &Token, path: &Path) -> (Secrets, Vec<u8>) {
    let body = std::fs::read(path).unwrap();
    let plain = agent_init::protocol::bundle::open(token, &body).unwrap();
    (
        secrets::parse(plain.expose()).unwrap(),
        plain.expose().to_vec(),
    )
}

/// `(name, kind, created_at, updated_at)` per secret, from the manifest.
fn dates(s: &Secrets) -> Vec<(String, String, String, String)> {
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
    let s = Setup::new("update-table");
    let before = now();
    let out = s.seal(&[
        "--secrets",
        "A=value-a-1c2d",
        "--secrets",
        "B=value-b-new-7a8b",
        "--secrets",
        "C=value-c-9c0d",
        "--secret-mount",
        "KEY_FILE=key.pem",
    ]);
    let after = now();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", s.token.encode().expose()));
    let (opened, _) = s.opened();
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
    let s = Setup::new("update-keep");
    let out = s.seal(&["--secrets", "C=value-c-9c0d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = s.opened();
    let d = dates(&opened);
    assert_eq!(d[0], row("A", "env", T0, T1));
    assert_eq!(d[1], row("B", "env", T0, T1));
    assert_eq!(d[3], row("key.pem", "file", T0, T1));
    assert_eq!(opened.files[0].content.expose(), b"PEM-5a6b");

    let out = s.seal(&["--overwrite", "--secrets", "A=value-a-1c2d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = s.opened();
    assert_eq!(dates(&opened), [row("A", "env", T0, T1)]);
    assert!(
        opened.livekit.url.is_none(),
        "overwrite replaces the livekit member too"
    );
    assert!(
        stderr(&out).contains("removed B, C, key.pem, LIVEKIT_URL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn remove_deletes_one_secret_and_an_absent_name_is_refused_64() {
    let s = Setup::new("update-remove");
    let out = s.seal(&["--remove", "B", "--remove", "key.pem"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (opened, _) = s.opened();
    assert_eq!(dates(&opened), [row("A", "env", T0, T1)]);
    let before = std::fs::read(&s.out).unwrap();
    let out = s.seal(&["--remove", "NOT_THERE"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--remove NOT_THERE"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read(&s.out).unwrap(), before, "nothing written");
}

#[test]
fn resealing_the_same_inputs_changes_only_the_nonce() {
    let s = Setup::new("update-same");
    let args = ["--secrets", "A=value-a-1c2d", "--secrets", "D=value-d-2b3c"];
    let first = s.seal(&args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let b1: Value = serde_json::from_slice(&std::fs::read(&s.out).unwrap()).unwrap();
    let (_, p1) = s.opened();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = s.seal(&args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let b2: Value = serde_json::from_slice(&std::fs::read(&s.out).unwrap()).unwrap();
    let (_, p2) = s.opened();
    assert_eq!(
        p1, p2,
        "the plaintext is byte for byte the same, dates included"
    );
    assert_ne!(b1["nonce"], b2["nonce"], "a fresh nonce");
    assert_ne!(b1["ciphertext"], b2["ciphertext"]);
}

#[test]
fn a_bundle_the_token_does_not_open_is_refused_65_and_left_alone() {
    let s = Setup::new("update-wrong-token");
    let other = Token::generate().unwrap();
    std::fs::write(&s.token_file, other.encode().expose()).unwrap();
    let before = std::fs::read(&s.out).unwrap();
    let out = s.seal(&["--secrets", "C=value-c-9c0d"]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be updated with this token"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "no token printed");
    assert_eq!(std::fs::read(&s.out).unwrap(), before);
    support::Forbidden::new()
        .token(&other)
        .value("value-c-9c0d")
        .assert_not_printed(&out);
}

#[test]
fn without_a_token_an_existing_out_is_replaced_only_with_overwrite() {
    let s = Setup::new("new-token");
    let before = std::fs::read(&s.out).unwrap();
    let run = |extra: &[&str]| {
        Run::new(&s.dir)
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
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--out bundle.json exists"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(std::fs::read(&s.out).unwrap(), before);
    let out = run(&["--overwrite"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = Token::parse(stdout(&out).trim_end()).unwrap();
    assert_ne!(token.id_b64(), s.token.id_b64(), "a new token");
    let (opened, _) = open(&token, &s.out);
    assert_eq!(opened.secrets.len(), 1);
    assert_eq!(opened.secrets[0].name, "C");
}

#[test]
fn with_no_input_flag_seal_reads_the_lk_files_names_them_and_refuses_to_seal_nothing() {
    let dir = scratch("seal-defaults");
    let run = || Run::new(&dir).args(["seal", "--out", "b.json"]).output();
    let out = run();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("none of .env, .env.local, .env.production"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("b.json").exists());
    std::fs::write(dir.join(".env"), "A=from-env-1a1a\nB=from-env-2b2b\n").unwrap();
    std::fs::write(dir.join(".env.production"), "B=from-production-3c3c\n").unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("reading .env\n") && err.contains("reading .env.production\n"),
        "{err}"
    );
    assert!(!err.contains(".env.local"), "{err}");
    let token = Token::parse(stdout(&out).trim_end()).unwrap();
    let (opened, _) = open(&token, &dir.join("b.json"));
    let got: Vec<(&str, &str)> = opened
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.value.expose()))
        .collect();
    assert_eq!(got, [("A", "from-env-1a1a"), ("B", "from-production-3c3c")]);
    // An empty file is no secret: nothing to seal.
    let empty = scratch("seal-empty");
    std::fs::write(empty.join(".env"), "# nothing\n").unwrap();
    let out = Run::new(&empty).args(["seal", "--out", "b.json"]).output();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(!empty.join("b.json").exists());
}

#[test]
fn list_prints_name_kind_origin_and_dates_and_json_the_same_never_a_value_nor_writes() {
    let s = Setup::new("seal-list");
    let before = std::fs::read(&s.out).unwrap();
    // The bundle as it is.
    let out = s.seal(&["--list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "A\tenv\tbundle\t{T0}\t{T1}\nB\tenv\tbundle\t{T0}\t{T1}\nkey.pem\tfile\tbundle\t{T0}\t{T1}\nLIVEKIT_URL\tenv\tbundle (livekit)\t-\t-\n"
        )
    );
    // An update, previewed as JSON.
    let out = s.seal(&[
        "--list",
        "--json",
        "--secrets",
        "B=value-b-new-7a8b",
        "--remove",
        "A",
    ]);
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
        !stdout(&out).contains(s.token.encode().expose()),
        "--list prints no token"
    );
    assert_eq!(
        std::fs::read(&s.out).unwrap(),
        before,
        "--list writes nothing"
    );
}

#[test]
fn a_file_sealed_with_secret_mount_reaches_the_command_as_a_file() {
    let dir = scratch("seal-mount");
    std::fs::write(
        dir.join("google-credentials.json"),
        "{\"private_key\": \"pk-6d7e\"}",
    )
    .unwrap();
    let out = Run::new(&dir)
        .args([
            "seal",
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
        ])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out).trim_end().to_string();
    let files_dir = PathBuf::from(format!(
        "/dev/shm/agent-init-test-sealmount-{}",
        std::process::id()
    ));
    let run = Run::new(&dir)
        .env("LIVEKIT_BOOTSTRAP_TOKEN", &token)
        .env(
            "LIVEKIT_SECRETS_URL",
            format!("file://{}", dir.join("b.json").display()),
        )
        .env("AGENT_INIT_SECRETS_DIR", &files_dir)
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
