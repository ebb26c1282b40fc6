//! End to end: the agent-secrets CLI against a real `agent-secrets serve`
//! over HTTPS (a CA this test makes), and agent-init fetching what the CLI
//! stored, as a container would. The server is the workspace's binary; the
//! agent-init binary is the one `AGENT_INIT_BIN` names (scripts/test.sh sets
//! the release binary), else the debug build next to this test.

mod support;

use agent_init::protocol::token::Token;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::service::{assert_exit, assert_no_leak, assert_ok, Secrets, ADMIN_KEY};
use support::Db;

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn agent_secrets() -> PathBuf {
    support::bin()
}

/// agent-secrets with only `PATH`, and no flag yet.
fn bare_cli() -> Command {
    let mut c = Command::new(agent_secrets());
    c.env_clear().env("PATH", PATH).stdin(Stdio::null());
    c
}

fn agent_init() -> PathBuf {
    support::workspace::agent_init()
}

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("cli-{name}"))
}

/// A running `agent-secrets serve` on `db` (TLS with a CA the test makes).
fn start(name: &str, db: Db) -> Secrets {
    let dir = scratch(name);
    let (extra, on_postgres) = match &db {
        Db::Sqlite => (vec![], false),
        Db::Postgres(url) => (vec!["--database", url.as_str()], true),
    };
    let svc = Secrets::start_with(&dir, &extra);
    let log = svc.log();
    assert_eq!(log.contains("(PostgreSQL;"), on_postgres, "{log}");
    svc
}

/// A service on `db` and a working directory whose token (returned)
/// [`base_inputs`] were created for.
fn created(name: &str, db: Db) -> (Secrets, PathBuf, String) {
    let svc = start(name, db);
    let work = scratch(&format!("{name}-work"));
    let token = svc.create(&work, &strs(&base_inputs()));
    (svc, work, token)
}

/// agent-init with the token file in `cwd`, fetching from `svc`, running
/// `extra`.
fn agent(svc: &Secrets, cwd: &Path, extra: &[&str]) -> Output {
    agent_command(svc, cwd).args(extra).output().unwrap()
}

fn agent_command(svc: &Secrets, cwd: &Path) -> Command {
    let mut c = Command::new(agent_init());
    c.env_clear()
        .env("PATH", PATH)
        .env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", cwd.join("token"))
        .env("LIVEKIT_SECRETS_URL", svc.bundle_url())
        .env("AGENT_INIT_CA_FILE", &svc.ca)
        .env("AGENT_INIT_TIMEOUT", "20")
        .current_dir(cwd)
        .stdin(Stdio::null());
    c
}

/// The environment agent-init's command received.
fn agent_env(svc: &Secrets, cwd: &Path) -> BTreeMap<String, String> {
    let out = agent(svc, cwd, &["/usr/bin/env", "-0"]);
    assert_ok(&out, "agent-init");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `secrets --json` of the token in `cwd/token`.
fn manifest(svc: &Secrets, cwd: &Path) -> serde_json::Value {
    let out = svc.cli(cwd, "secrets", &["--token-file", "token", "--json"]);
    assert_ok(&out, "secrets --json");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The secrets every test seals, with the three LiveKit values.
fn base_inputs() -> Vec<String> {
    [
        "OPENAI_API_KEY=sk-e2e-openai-7f3a",
        "MULTI=line one\nline two",
        "UNICODE=h\u{e9}llo \u{2603}",
        "EMPTY=",
        "LIVEKIT_URL=wss://e2e.example.livekit.cloud",
        "LIVEKIT_API_KEY=APIe2e",
        "LIVEKIT_API_SECRET=e2e-api-secret-91b2",
    ]
    .iter()
    .flat_map(|s| ["--secrets".to_string(), s.to_string()])
    .collect()
}

fn expected_env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        ("PATH", PATH),
        ("OPENAI_API_KEY", "sk-e2e-openai-7f3a"),
        ("MULTI", "line one\nline two"),
        ("UNICODE", "h\u{e9}llo \u{2603}"),
        ("EMPTY", ""),
        ("LIVEKIT_URL", "wss://e2e.example.livekit.cloud"),
        ("LIVEKIT_API_KEY", "APIe2e"),
        ("LIVEKIT_API_SECRET", "e2e-api-secret-91b2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn entry<'a>(manifest: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    manifest["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the manifest: {manifest}"))
}

fn create_then_agent_init_fetches_over_https_and_the_command_sees_exactly_the_secrets(db: Db) {
    let svc = start("create", db);
    let work = scratch("create-work");
    std::fs::write(work.join("extra.env"), "FROM_FILE='file value # kept'\n").unwrap();
    let mut args = base_inputs();
    args.extend(["--secrets-file".into(), "extra.env".into()]);
    let token = svc.create(&work, &strs(&args));
    assert_eq!(
        agent_env(&svc, &work),
        expected_env(&[("FROM_FILE", "file value # kept")])
    );
    // The listing names each secret with its kind and dates, never a value.
    let out = svc.cli(&work, "secrets", &["--token-file", "token"]);
    assert_ok(&out, "secrets");
    let listing = String::from_utf8(out.stdout.clone()).unwrap();
    for name in ["OPENAI_API_KEY", "MULTI", "UNICODE", "EMPTY", "FROM_FILE"] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&format!("{name}\tenv\t"))),
            "{listing}"
        );
    }
    for value in ["sk-e2e-openai", "line one", "file value", "e2e-api-secret"] {
        assert!(!listing.contains(value), "{listing}");
    }
    assert_no_leak(&out, &[&token, ADMIN_KEY]);
    // The service saw ciphertext only: its log names the token's ID, never
    // a value, the token, its KEY or the admin key.
    let log = svc.log();
    let key = token.rsplit('.').next().unwrap();
    for s in [
        "sk-e2e-openai-7f3a",
        "e2e-api-secret-91b2",
        "file value",
        &token,
        key,
        ADMIN_KEY,
    ] {
        assert!(!log.contains(s), "the server's log holds a secret string");
    }
    // `list` shows the token with version 1.
    let id = Token::parse(&token).unwrap().id_b64();
    let out = svc.cli(&work, "list", &[]);
    assert_ok(&out, "list");
    let listing = String::from_utf8(out.stdout).unwrap();
    let row: Vec<&str> = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{listing}"))
        .split('\t')
        .collect();
    assert_eq!((row[1], row[3]), ("1", "5"), "{listing}");
}

fn update_secrets_then_a_new_agent_init_sees_the_update_with_the_right_dates(db: Db) {
    let svc = start("update", db);
    let work = scratch("update-work");
    let mut args = base_inputs();
    args.extend(["--secrets".into(), "GONE=soon".into()]);
    svc.create(&work, &strs(&args));
    let before = manifest(&svc, &work);
    assert_eq!(before["version"], 1);
    // Dates have one-second resolution: make "now" differ from the creation.
    std::thread::sleep(Duration::from_millis(1100));
    let out = svc.cli(
        &work,
        "update-secrets",
        &[
            "--token-file",
            "token",
            "--secrets",
            "OPENAI_API_KEY=sk-e2e-rotated-22c1",
            "--secrets",
            "UNICODE=h\u{e9}llo \u{2603}",
            "--secrets",
            "ADDED=new",
            "--remove",
            "GONE",
        ],
    );
    assert_ok(&out, "update-secrets");
    assert!(
        out.stdout.is_empty(),
        "update-secrets prints nothing on stdout"
    );
    assert_no_leak(&out, &["sk-e2e-rotated", "sk-e2e-openai", ADMIN_KEY]);
    let env = agent_env(&svc, &work);
    let mut want = expected_env(&[("OPENAI_API_KEY", "sk-e2e-rotated-22c1"), ("ADDED", "new")]);
    want.remove("GONE");
    assert_eq!(env, want);

    let after = manifest(&svc, &work);
    assert_eq!(after["version"], 2);
    let (b, a) = (
        entry(&before, "OPENAI_API_KEY"),
        entry(&after, "OPENAI_API_KEY"),
    );
    assert_eq!(a["created_at"], b["created_at"], "changed: created_at kept");
    assert_ne!(
        a["updated_at"], b["updated_at"],
        "changed: updated_at is new"
    );
    for same in ["UNICODE", "MULTI", "EMPTY"] {
        assert_eq!(
            entry(&after, same),
            entry(&before, same),
            "{same}: given unchanged or not given, both dates kept"
        );
    }
    let added = entry(&after, "ADDED");
    assert_eq!(added["created_at"], added["updated_at"]);
    assert_eq!(added["created_at"], a["updated_at"]);
    assert!(after["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["name"] != "GONE"));

    // agent-init's own listing of the new bundle shows the same dates.
    let out = agent(&svc, &work, &["--list"]);
    assert_ok(&out, "agent-init --list");
    let listing = String::from_utf8(out.stdout).unwrap();
    for name in ["OPENAI_API_KEY", "UNICODE", "ADDED"] {
        let updated = entry(&after, name)["updated_at"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(&format!("{name}\t")) && l.contains(&updated)),
            "{name} {updated}: {listing}"
        );
    }
}

fn revoke_then_agent_init_exits_77_and_starts_nothing(db: Db) {
    let (svc, work, token) = created("revoke", db);
    let id = Token::parse(&token).unwrap().id_b64();
    assert_eq!(agent_env(&svc, &work), expected_env(&[]));
    let out = svc.cli(&work, "revoke", &[&id]);
    assert_ok(&out, "revoke");
    let marker = work.join("started");
    let out = agent(
        &svc,
        &work,
        &["/bin/sh", "-c", "touch \"$0\"", marker.to_str().unwrap()],
    );
    assert_exit(&out, 77, "agent-init with a revoked token");
    assert!(!marker.exists(), "the command must not start");
    // The bundle is gone and the token cannot be updated or shown as live.
    let out = svc.cli(
        &work,
        "update-secrets",
        &["--token-file", "token", "--secrets", "A=b"],
    );
    assert_exit(&out, 77, "update-secrets of a revoked token");
}

/// A raw §4 fetch: (status, ETag, body).
fn fetch(
    svc: &Secrets,
    token: &Token,
    if_none_match: Option<&str>,
) -> (u16, Option<String>, Vec<u8>) {
    let pem = std::fs::read(&svc.ca).unwrap();
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c.to_owned()),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build(),
        )
        .build()
        .into();
    let mut req = agent
        .get(format!("{}/v1/bundle", svc.url))
        .header("Authorization", token.authorization().expose());
    if let Some(tag) = if_none_match {
        req = req.header("If-None-Match", tag);
    }
    let mut resp = req.call().unwrap();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (resp.status().as_u16(), etag, body)
}

fn a_matching_if_none_match_gets_304_until_update_secrets_changes_the_bundle(db: Db) {
    let (svc, work, token) = created("etag", db);
    let token = Token::parse(&token).unwrap();
    let (status, etag, body) = fetch(&svc, &token, None);
    assert_eq!(status, 200);
    let etag = etag.expect("a 200 carries an ETag");
    assert!(agent_init::protocol::bundle::open(&token, &body).is_ok());
    let (status, _, body) = fetch(&svc, &token, Some(&etag));
    assert_eq!(status, 304);
    assert!(body.is_empty(), "a 304 has no body");
    let out = svc.cli(
        &work,
        "update-secrets",
        &["--token-file", "token", "--secrets", "NEW=1"],
    );
    assert_ok(&out, "update-secrets");
    let (status, new_etag, body) = fetch(&svc, &token, Some(&etag));
    assert_eq!(status, 200, "the old ETag no longer matches");
    assert_ne!(new_etag.as_deref(), Some(etag.as_str()));
    let plain = agent_init::protocol::bundle::open(&token, &body).unwrap();
    let s = agent_init::protocol::secrets::parse(plain.expose()).unwrap();
    assert!(s.secrets.iter().any(|x| x.name == "NEW"));
}

fn concurrent_update_secrets_on_one_token_lose_no_update(db: Db) {
    let (svc, work, _) = created("race", db);
    const N: usize = 4;
    let children: Vec<Child> = (0..N)
        .map(|i| {
            let s = format!("RACE_{i}=value-{i}");
            svc.cli_command(
                &work,
                "update-secrets",
                &["--token-file", "token", "--secrets", &s],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        assert_ok(
            &c.wait_with_output().unwrap(),
            "a concurrent update-secrets",
        );
    }
    let extra: Vec<(String, String)> = (0..N)
        .map(|i| (format!("RACE_{i}"), format!("value-{i}")))
        .collect();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(agent_env(&svc, &work), expected_env(&extra));
    assert_eq!(
        manifest(&svc, &work)["version"],
        1 + N as u64,
        "one version per update"
    );
}

fn refusals_have_the_exit_code_of_their_class_and_leak_nothing(db: Db) {
    let (svc, work, token) = created("refusals", db);
    let id = Token::parse(&token).unwrap().id_b64();
    // A wrong admin key: 77.
    let wrong = work.join("wrong-key");
    std::fs::write(&wrong, "not-the-admin-key\n").unwrap();
    let out = bare_cli()
        .env("AGENT_SECRETS_URL", &svc.url)
        .env("AGENT_SECRETS_ADMIN_KEY_FILE", &wrong)
        .env("AGENT_SECRETS_CA_FILE", &svc.ca)
        .args(["list"])
        .output()
        .unwrap();
    assert_exit(&out, 77, "a wrong admin key");
    assert_no_leak(&out, &["not-the-admin-key"]);
    // An unknown ID: 77. A malformed one, or a whole token, on the command line: 64, not echoed.
    let out = svc.cli(&work, "secrets", &["AAAAAAAAAAAAAAAAAAAAAA"]);
    assert_exit(&out, 77, "an unknown ID");
    let out = svc.cli(&work, "revoke", &[&token]);
    assert_exit(&out, 64, "a whole token as the ID");
    assert_no_leak(&out, &[&token]);
    // The service's certificate without --ca-file: 78.
    let out = bare_cli()
        .args(["secrets", &id, "--service", &svc.url, "--admin-key-file"])
        .arg(&svc.key_file)
        .output()
        .unwrap();
    assert_exit(&out, 78, "no --ca-file");
    // http:// to a host that is not loopback: 78, before any request.
    let out = bare_cli()
        .args([
            "list",
            "--service",
            "http://secrets.example.com",
            "--admin-key-file",
        ])
        .arg(&svc.key_file)
        .output()
        .unwrap();
    assert_exit(&out, 78, "http:// to a host that is not loopback");
    // The same flag twice is a usage error.
    let out = svc.cli(&work, "list", &["--service", &svc.url]);
    assert_exit(&out, 64, "--service twice");
    // create with nothing to create: 64; the token is never made or printed.
    let empty = scratch("refusals-empty");
    let out = svc.cli(&empty, "create", &[]);
    assert_exit(&out, 64, "create with nothing to create");
    assert!(out.stdout.is_empty());
}

fn bad_inputs_get_agent_init_seals_own_messages_and_exit_codes(db: Db) {
    let svc = start("inputs", db);
    let work = scratch("inputs-work");
    std::fs::write(
        work.join("bad.env"),
        "GOOD=1\nthis line is not an assignment\n",
    )
    .unwrap();
    std::fs::write(
        work.join("big.env"),
        format!("BIG={}\n", "v".repeat(16 * 1024 + 1)),
    )
    .unwrap();
    let cases: &[&[&str]] = &[
        &["--secrets-file", "bad.env"],
        &["--secrets-file", "big.env"],
        &["--secrets-file", "missing.env"],
        &["--secrets", "A-B=value-not-shown"],
        &["--secrets", "NOEQUALS"],
    ];
    for case in cases {
        let seal = Command::new(agent_init())
            .env_clear()
            .env("PATH", PATH)
            .current_dir(&work)
            .arg("seal")
            .args(*case)
            .args(["--out", "sealed.json"])
            .output()
            .unwrap();
        let ours = svc.cli(&work, "create", case);
        assert_ne!(ours.status.code(), Some(0), "{case:?}");
        assert_eq!(ours.status.code(), seal.status.code(), "{case:?}");
        let reason = |o: &Output, prefix: &str| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches(prefix)
                .replace("agent-init seal --help", "HELP")
                .replace("agent-init --help", "HELP")
                .replace("agent-secrets create --help", "HELP")
                .to_string()
        };
        assert_eq!(
            reason(&ours, "agent-secrets: error: "),
            reason(&seal, "agent-init: error: "),
            "{case:?}"
        );
        assert!(ours.stdout.is_empty(), "{case:?}: no token on failure");
        assert_no_leak(&ours, &["value-not-shown", "vvvvvvvv"]);
    }
}

fn secret_mounts_are_sealed_as_file_secrets_named_after_the_file(db: Db) {
    let svc = start("mount", db);
    let work = scratch("mount-work");
    let content: Vec<u8> = (0..=255u8).chain(*b"-----END KEY-----\n").collect();
    std::fs::write(work.join("service-account.json"), &content).unwrap();
    let mut args = base_inputs();
    args.extend(
        [
            "--secrets",
            "A=1",
            "--secret-mount",
            "GOOGLE_APPLICATION_CREDENTIALS=service-account.json",
        ]
        .map(String::from),
    );
    let token = Token::parse(&svc.create(&work, &strs(&args))).unwrap();
    let m = manifest(&svc, &work);
    let f = entry(&m, "service-account.json");
    assert_eq!(f["kind"], "file");
    assert_eq!(f["env"], "GOOGLE_APPLICATION_CREDENTIALS");
    assert_eq!(entry(&m, "A")["kind"], "env");
    let (status, _, body) = fetch(&svc, &token, None);
    assert_eq!(status, 200);
    let plain = agent_init::protocol::bundle::open(&token, &body).unwrap();
    let s = agent_init::protocol::secrets::parse(plain.expose()).unwrap();
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.files[0].content.expose(), &content[..], "the exact bytes");
    assert_eq!(
        s.files[0].env.as_deref(),
        Some("GOOGLE_APPLICATION_CREDENTIALS")
    );
    // agent-init delivers it: the command reads the exact bytes at the path
    // its variable names.
    let out = agent_command(&svc, &work)
        .env("AGENT_INIT_SECRETS_DIR", work.join("secrets"))
        .args(["/bin/sh", "-c", "cat \"$GOOGLE_APPLICATION_CREDENTIALS\""])
        .output()
        .unwrap();
    assert_ok(&out, "agent-init with a file secret");
    assert_eq!(out.stdout, content);
    // A file over 1 MiB is refused (65) by the same rule agent-init applies.
    std::fs::write(work.join("big.bin"), vec![0u8; (1 << 20) + 1]).unwrap();
    let out = svc.cli(&work, "create", &["--secret-mount", "big.bin"]);
    assert_exit(&out, 65, "a file over 1 MiB");
    assert!(out.stdout.is_empty());
}

/// Plain `http://` is for a service whose name RESOLVES to loopback, not one
/// whose name merely looks like it (PROTOCOL.md §4; agent-init's own rule and
/// resolver, shared). Here `/etc/hosts` maps `localhost` to 192.0.2.10
/// (TEST-NET-1) in a private mount and network namespace: the CLI must refuse
/// with 78 at resolution, before it connects or sends the admin key, rather
/// than try that address (which, retried until the deadline, ends in 69).
#[test]
#[ignore = "needs root: unshare --mount --net"]
fn http_to_a_name_that_resolves_elsewhere_is_refused_before_anything_is_sent() {
    let work = scratch("resolves-elsewhere");
    let key = work.join("admin-key");
    std::fs::write(&key, format!("{ADMIN_KEY}\n")).unwrap();
    let hosts = work.join("hosts");
    std::fs::write(&hosts, "192.0.2.10 localhost\n").unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(&hosts)
        .arg(agent_secrets())
        .args([
            "list",
            "--service",
            "http://localhost:8077",
            "--timeout",
            "10",
        ])
        .arg("--admin-key-file")
        .arg(&key)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("--service (AGENT_SECRETS_URL)"), "{err}");
    assert!(err.contains("not loopback"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(
        !err.contains("attempt 1 failed"),
        "no connection was tried: {err}"
    );
    assert_no_leak(&out, &[ADMIN_KEY]);
}

on_both_databases! {
    create_then_agent_init_fetches_over_https_and_the_command_sees_exactly_the_secrets => create_then_agent_init_fetches_over_https_and_the_command_sees_exactly_the_secrets_on_sqlite, create_then_agent_init_fetches_over_https_and_the_command_sees_exactly_the_secrets_on_postgres;
    update_secrets_then_a_new_agent_init_sees_the_update_with_the_right_dates => update_secrets_then_a_new_agent_init_sees_the_update_with_the_right_dates_on_sqlite, update_secrets_then_a_new_agent_init_sees_the_update_with_the_right_dates_on_postgres;
    revoke_then_agent_init_exits_77_and_starts_nothing => revoke_then_agent_init_exits_77_and_starts_nothing_on_sqlite, revoke_then_agent_init_exits_77_and_starts_nothing_on_postgres;
    a_matching_if_none_match_gets_304_until_update_secrets_changes_the_bundle => a_matching_if_none_match_gets_304_until_update_secrets_changes_the_bundle_on_sqlite, a_matching_if_none_match_gets_304_until_update_secrets_changes_the_bundle_on_postgres;
    concurrent_update_secrets_on_one_token_lose_no_update => concurrent_update_secrets_on_one_token_lose_no_update_on_sqlite, concurrent_update_secrets_on_one_token_lose_no_update_on_postgres;
    refusals_have_the_exit_code_of_their_class_and_leak_nothing => refusals_have_the_exit_code_of_their_class_and_leak_nothing_on_sqlite, refusals_have_the_exit_code_of_their_class_and_leak_nothing_on_postgres;
    bad_inputs_get_agent_init_seals_own_messages_and_exit_codes => bad_inputs_get_agent_init_seals_own_messages_and_exit_codes_on_sqlite, bad_inputs_get_agent_init_seals_own_messages_and_exit_codes_on_postgres;
    secret_mounts_are_sealed_as_file_secrets_named_after_the_file => secret_mounts_are_sealed_as_file_secrets_named_after_the_file_on_sqlite, secret_mounts_are_sealed_as_file_secrets_named_after_the_file_on_postgres;
}
