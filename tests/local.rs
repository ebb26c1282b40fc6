//! Local development: dotenv files, `--secrets`, their precedence,
//! `--list`, `--check` and `agent-init seal`, through the real binary.
//!
//! Each precedence test asserts the command's exact initial environment,
//! captured byte for byte from `/proc/self/environ`.

mod support;

use agent_init::protocol::bundle;
use agent_init::protocol::token::Token;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
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

// ---------------------------------------------------------------------------
// Precedence, one row per test: --secrets > inherited > files (later > earlier)

#[test]
fn secrets_flags_beat_inherited_variables_and_files() {
    let c = Harness::new("flags-win");
    c.file("a.env", "SHARED=from-file\nONLY_FILE=f\n");
    let (_, env) = ran(
        &c,
        c.agent()
            .env("SHARED", "from-env")
            .env("ONLY_ENV", "e")
            .args(["--secrets-file", "a.env", "--secrets", "SHARED=from-flag"])
            .args(["--secrets=ONLY_FLAG=x=y"]),
    );
    assert_eq!(
        env,
        with_path(&[
            "SHARED=from-flag",
            "ONLY_FILE=f",
            "ONLY_ENV=e",
            "ONLY_FLAG=x=y"
        ])
    );
}

#[test]
fn inherited_variables_beat_dotenv_files_like_docker_run_e_over_a_mounted_file() {
    let c = Harness::new("inherited-wins");
    c.file(".env.local", "A=from-file\nB=from-file\nC=${A}\n");
    let (_, env) = ran(&c, c.agent().env("A", "from-env"));
    // `${A}` sees what the command gets for A, as load_dotenv does.
    assert_eq!(env, with_path(&["A=from-env", "B=from-file", "C=from-env"]));
}

#[test]
fn later_secrets_files_beat_earlier_ones_and_interpolation_follows_the_same_order() {
    let c = Harness::new("later-file-wins");
    c.file("one.env", "A=one\nB=one\nC=one\n");
    c.file("two.env", "B=two\nFROM_EARLIER=${C}\nFROM_SAME=${B}\n");
    let (_, env) = ran(
        &c,
        c.agent()
            .args(["--secrets-file", "one.env", "--secrets-file", "two.env"]),
    );
    assert_eq!(
        env,
        with_path(&[
            "A=one",
            "B=two",
            "C=one",
            "FROM_EARLIER=one",
            "FROM_SAME=two"
        ])
    );
}

#[test]
fn without_secrets_file_dot_env_then_dot_env_local_are_read_from_the_working_directory() {
    let c = Harness::new("default-files");
    c.file(".env", "A=env\nB=env\n");
    c.file(".env.local", "B=local\nC=\"multi\nline\"\n");
    c.file(".env.production", "D=never-read\n");
    let (_, env) = ran(&c, c.agent());
    assert_eq!(env, with_path(&["A=env", "B=local", "C=multi\nline"]));
}

#[test]
fn a_missing_default_file_is_skipped() {
    let c = Harness::new("only-local");
    c.file(".env.local", "ONLY=local\n");
    let (_, env) = ran(&c, c.agent());
    assert_eq!(env, with_path(&["ONLY=local"]));
}

#[test]
fn a_named_pipe_dot_env_local_is_read_like_a_file() {
    // A secret manager can hand the file over through a FIFO; python-dotenv reads those too.
    let c = Harness::new("fifo");
    let fifo = c.dir.join(".env.local");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    // Opening for writing blocks until agent-init opens the pipe to read.
    let writer = std::thread::spawn(move || std::fs::write(fifo, "FROM_PIPE=piped\n").unwrap());
    let (_, env) = ran(&c, c.agent());
    writer.join().unwrap();
    assert_eq!(env, with_path(&["FROM_PIPE=piped"]));
}

#[test]
fn secrets_file_flag_replaces_the_default_files() {
    let c = Harness::new("explicit-file");
    c.file(".env", "FROM_DEFAULT=1\n");
    c.file("other.env", "FROM_OTHER=2\n");
    let (_, env) = ran(&c, c.agent().args(["--secrets-file", "other.env"]));
    assert_eq!(env, with_path(&["FROM_OTHER=2"]));
}

#[test]
fn livekit_values_from_files_are_the_platform_values() {
    let c = Harness::new("livekit-from-file");
    c.file(
        ".env.local",
        "LIVEKIT_URL=wss://dev.livekit.cloud\nLIVEKIT_API_KEY=APIdev\nLIVEKIT_API_SECRET=devsecret\nOPENAI_API_KEY=sk-dev\n",
    );
    let (out, env) = ran(&c, c.agent());
    assert_eq!(
        env,
        with_path(&[
            "LIVEKIT_URL=wss://dev.livekit.cloud",
            "LIVEKIT_API_KEY=APIdev",
            "LIVEKIT_API_SECRET=devsecret",
            "OPENAI_API_KEY=sk-dev",
        ])
    );
    assert!(!stderr(&out).contains("not set"), "{}", stderr(&out));
}

#[test]
fn missing_livekit_values_locally_are_a_warning_naming_them_not_a_failure() {
    let c = Harness::new("livekit-missing");
    c.file(".env.local", "LIVEKIT_URL=wss://dev.livekit.cloud\n");
    let (out, _) = ran(&c, c.agent());
    assert_says(&out, "LIVEKIT_API_KEY, LIVEKIT_API_SECRET not set");
}

#[test]
fn with_a_token_dotenv_files_are_not_read_and_a_warning_names_them() {
    let c = Harness::new("token-ignores-env");
    c.file(".env", "FROM_DOTENV=zq-should-not-appear\n");
    c.file(".env.local", "LIVEKIT_URL=wss://from-dotenv\n");
    let v = vector();
    let b = c.file("bundle.json", v["bundle"].to_string());
    let (out, env) = ran(
        &c,
        c.agent()
            .env("LIVEKIT_BOOTSTRAP_TOKEN", v["token"].as_str().unwrap())
            .env("LIVEKIT_SECRETS_URL", file_url(&b)),
    );
    assert!(env.iter().all(|v| !v.contains("dotenv")), "{env:?}");
    assert!(
        env.contains("LIVEKIT_URL=wss://example.livekit.cloud"),
        "{env:?}"
    );
    assert_says(&out, ".env, .env.local");
}

// ---------------------------------------------------------------------------
// Round trips between `agent-init seal`, the library and the protocol's construction

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

#[test]
fn the_protocol_construction_used_here_reproduces_the_known_answer_vector() {
    let v = vector();
    let plain = open_per_protocol(v["token"].as_str().unwrap(), &v["bundle"]);
    assert_eq!(plain, v["plaintext"].as_str().unwrap().as_bytes());
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

#[test]
fn a_bundle_from_agent_init_seal_opens_with_the_protocol_construction_and_the_library() {
    use std::os::unix::fs::PermissionsExt;
    let c = Harness::new("seal-opens");
    c.file(
        "in.env",
        "OPENAI_API_KEY=zq-sealed-openai\nMULTI=\"zq line one\nline two\"\nLIVEKIT_URL=wss://sealed.livekit.cloud\nLIVEKIT_API_KEY=APIsealed\nLIVEKIT_API_SECRET=zq-sealed-api-secret\n",
    );
    let (token, out) = seal(
        &c,
        &[
            "--secrets-file",
            "in.env",
            "--secrets",
            "EXTRA=zq-from-flag",
            "--out",
            "b.json",
        ],
    );
    assert_no_leak(
        &out,
        &[
            "zq-sealed-openai",
            "zq line one",
            "zq-sealed-api-secret",
            "zq-from-flag",
        ],
    );
    // The token is printed once, on stdout, and never on stderr.
    assert!(!stderr(&out).contains(&token));

    let path = c.dir.join("b.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut left: Vec<String> = std::fs::read_dir(&c.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["b.json", "in.env"],
        "no temporary file is left behind"
    );

    let sealed = read_json(&path);
    let plain = open_per_protocol(&token, &sealed);
    let via_lib = bundle::open(
        &Token::parse(&token).unwrap(),
        sealed.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(via_lib.expose(), &plain[..]);

    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let secrets: Vec<(String, String)> = doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            for t in ["created_at", "updated_at"] {
                let t = s[t].as_str().unwrap();
                assert!(t.len() == 20 && t.ends_with('Z'), "{t}");
            }
            (
                s["name"].as_str().unwrap().to_string(),
                s["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut secrets = secrets;
    secrets.sort();
    assert_eq!(
        secrets,
        [
            ("EXTRA".to_string(), "zq-from-flag".to_string()),
            ("MULTI".to_string(), "zq line one\nline two".to_string()),
            ("OPENAI_API_KEY".to_string(), "zq-sealed-openai".to_string()),
        ]
    );
    assert_eq!(
        doc["livekit"],
        serde_json::json!({"url": "wss://sealed.livekit.cloud", "api_key": "APIsealed", "api_secret": "zq-sealed-api-secret"})
    );
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

#[test]
fn seal_interpolation_sees_only_what_it_seals_never_the_inherited_environment() {
    let c = Harness::new("seal-interp");
    c.file("in.env", "A=from-file\nB=${A}\nC=${FLAG}\nD=${EARLIER}\n");
    c.file("earlier.env", "EARLIER=from-earlier\n");
    let (token, _) = seal(
        &c,
        &[
            "--secrets-file",
            "earlier.env",
            "--secrets-file",
            "in.env",
            "--secrets",
            "FLAG=from-flag",
            "--out",
            "b.json",
        ],
    );
    // A from the sealer's shell is neither sealed nor seen: B agrees with the A
    // the bundle holds, as production will open it.
    assert_sealed(
        &c,
        &token,
        "b.json",
        &[
            ("A", "from-file"),
            ("B", "from-file"),
            ("C", "from-flag"),
            ("D", "from-earlier"),
            ("EARLIER", "from-earlier"),
            ("FLAG", "from-flag"),
        ],
    );
    // Run again with A and WHO in the shell: a ${WHO} that only the shell
    // knows is refused with FILE:LINE and the name, and nothing is written.
    c.file("shell.env", "GREETING=hello ${WHO}\nX=${UNSET:-fallback}\n");
    let out = c
        .agent()
        .env("WHO", "zq-shell-value")
        .env("A", "zq-inherited-a")
        .args(["seal", "--secrets-file", "shell.env", "--out", "shell.json"])
        .output();
    assert_exit_says(&out, 65, "shell.env:1: GREETING: ${WHO} is not sealed");
    assert!(stdout(&out).is_empty(), "no token for a bundle not written");
    assert!(!c.dir.join("shell.json").exists());
    assert_no_leak(&out, &["zq-shell-value", "zq-inherited-a", "hello"]);
    // A default does not make an unsealed name sealed.
    c.file("default.env", "X=${UNSET:-zq-fallback}\n");
    let out = c
        .agent()
        .args(["seal", "--secrets-file", "default.env", "--out", "d.json"])
        .output();
    assert_exit_says(&out, 65, "default.env:1: X: ${UNSET} is not sealed");
}

#[test]
fn the_known_answer_bundle_runs_through_the_binary_from_a_file_url() {
    let c = Harness::new("vector-runs");
    let v = vector();
    let b = c.file("bundle.json", v["bundle"].to_string());
    let (_, env) = ran(
        &c,
        c.agent()
            .env("LIVEKIT_BOOTSTRAP_TOKEN", v["token"].as_str().unwrap())
            .env("LIVEKIT_SECRETS_URL", file_url(&b)),
    );
    assert_eq!(
        env,
        with_path(&[
            "OPENAI_API_KEY=sk-test-1234",
            "MULTI_LINE=line one\nline two",
            "UNICODE_VALUE=h\u{e9}llo \u{2603}",
            "EMPTY=",
            "LIVEKIT_URL=wss://example.livekit.cloud",
            "LIVEKIT_API_KEY=APIexample",
            "LIVEKIT_API_SECRET=example-api-secret",
        ])
    );
}

#[test]
fn a_bundle_sealed_by_the_library_runs_through_the_binary_from_a_file_url() {
    let c = Harness::new("lib-sealed-runs");
    let token = Token::generate().unwrap();
    let plain = r#"{"secrets":[{"name":"LIB_SECRET","value":"from the library"}],"livekit":{"url":"wss://lib","api_key":"k","api_secret":"s"}}"#;
    let b = c.file(
        "bundle.json",
        bundle::seal(&token, plain.as_bytes()).unwrap(),
    );
    let (_, env) = ran(
        &c,
        c.agent()
            .env("LIVEKIT_BOOTSTRAP_TOKEN", token.encode().expose())
            .env("LIVEKIT_SECRETS_URL", file_url(&b))
            .env("KEPT", "inherited"),
    );
    assert_eq!(
        env,
        with_path(&[
            "KEPT=inherited",
            "LIB_SECRET=from the library",
            "LIVEKIT_URL=wss://lib",
            "LIVEKIT_API_KEY=k",
            "LIVEKIT_API_SECRET=s",
        ])
    );
}

#[test]
fn resealing_with_token_gives_a_bundle_the_same_token_opens() {
    let c = Harness::new("reseal");
    let (token, _) = seal(&c, &["--secrets", "ROTATED=old", "--out", "first.json"]);
    let (again, _) = seal(
        &c,
        &[
            "--secrets",
            "ROTATED=new",
            "--secrets",
            "LIVEKIT_URL=wss://u",
            "--secrets",
            "LIVEKIT_API_KEY=k",
            "--secrets",
            "LIVEKIT_API_SECRET=s",
            "--token",
            &token,
            "--out",
            "second.json",
        ],
    );
    assert_eq!(again, token, "seal --token prints the token it was given");
    let t = Token::parse(&token).unwrap();
    for (file, value) in [("first.json", "old"), ("second.json", "new")] {
        let plain = bundle::open(&t, read_json(&c.dir.join(file)).to_string().as_bytes()).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(plain.expose()).unwrap();
        assert_eq!(doc["secrets"][0]["value"], value, "{file}");
    }
    // And the production path runs it.
    let run = c
        .agent()
        .env("LIVEKIT_BOOTSTRAP_TOKEN", &token)
        .env("LIVEKIT_SECRETS_URL", file_url(&c.dir.join("second.json")));
    let (_, env) = ran(&c, run);
    assert_eq!(
        env,
        with_path(&[
            "ROTATED=new",
            "LIVEKIT_URL=wss://u",
            "LIVEKIT_API_KEY=k",
            "LIVEKIT_API_SECRET=s",
        ])
    );
}

#[test]
fn seal_with_a_malformed_token_exits_78_and_writes_nothing() {
    let c = Harness::new("seal-bad-token");
    let out = c
        .agent()
        .args(["seal"])
        .args([
            "--secrets",
            "A=b",
            "--token",
            "lkbt1.nope",
            "--out",
            "b.json",
        ])
        .output();
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(!c.dir.join("b.json").exists());
}

#[test]
fn seal_refuses_a_bad_dotenv_file_with_65_and_writes_nothing() {
    let c = Harness::new("seal-refused");
    c.file("in.env", "GOOD=zq-good-value\nzq-pasted-secret-line\n");
    let out = c
        .agent()
        .args(["seal"])
        .args(["--secrets-file", "in.env", "--out", "b.json"])
        .output();
    assert_exit_says(&out, 65, "in.env:2:");
    assert!(stdout(&out).is_empty(), "no token for a bundle not written");
    assert!(!c.dir.join("b.json").exists());
    assert_no_leak(&out, &["zq-good-value", "zq-pasted-secret-line"]);
}

/// Files in `dir` other than `keep`: a temporary left behind shows here.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

#[test]
fn seal_refuses_an_out_that_is_a_named_pipe_or_a_symbolic_link_and_leaves_it_alone() {
    use std::os::unix::fs::FileTypeExt;
    let c = Harness::new("seal-out-kind");
    nix::unistd::mkfifo(
        &c.dir.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    c.file("target.json", "keep me");
    std::os::unix::fs::symlink("target.json", c.dir.join("link")).unwrap();
    for (out_path, kind) in [("pipe", "a named pipe"), ("link", "a symbolic link")] {
        let out = c
            .agent()
            .args(["seal", "--secrets", "A=zq-out-kind", "--out", out_path])
            .output();
        assert_eq!(out.status.code(), Some(78), "{out_path}: {}", stderr(&out));
        assert_says(
            &out,
            &format!("--out {out_path} is {kind}, not a regular file"),
        );
        assert!(stdout(&out).is_empty(), "no token for a bundle not written");
        assert_no_leak(&out, &["zq-out-kind"]);
    }
    let meta = |p: &str| std::fs::symlink_metadata(c.dir.join(p)).unwrap();
    assert!(meta("pipe").file_type().is_fifo());
    assert!(meta("link").file_type().is_symlink());
    assert_eq!(
        std::fs::read_to_string(c.dir.join("target.json")).unwrap(),
        "keep me"
    );
    assert_eq!(
        others(&c.dir, &["pipe", "link", "target.json"]),
        Vec::<String>::new()
    );
    // A regular file is still replaced, atomically (without a token, only with --overwrite).
    let (token, _) = seal(
        &c,
        &["--secrets", "A=new", "--overwrite", "--out", "target.json"],
    );
    assert_sealed(&c, &token, "target.json", &[("A", "new")]);
}

#[test]
#[ignore = "needs root: a private mount namespace"]
fn seal_refuses_dev_null_and_dev_stdout_in_a_private_dev() {
    support::needs_root("a private mount namespace");
    let c = Harness::new("seal-dev");
    // A private /dev on a tmpfs, so the real one is never at risk.
    let script = r#"
        mount -t tmpfs tmpfs /dev || exit 99
        mknod -m 666 /dev/null c 1 3 || exit 98
        ln -s /proc/self/fd/1 /dev/stdout || exit 97
        "$1" seal --secrets A=b --out /dev/null > /tmp/ignored-token-1; echo "null=$?"
        "$1" seal --secrets A=b --out /dev/stdout > /dev/null; echo "stdout=$?"
        [ -c /dev/null ] && echo null-is-a-device
        [ -L /dev/stdout ] && echo stdout-is-a-link
    "#;
    let out = c
        .in_private_mount(script, &[support::bin().into()])
        .output()
        .expect("unshare runs");
    let report = stdout(&out);
    assert_eq!(
        report.lines().collect::<Vec<_>>(),
        [
            "null=78",
            "stdout=78",
            "null-is-a-device",
            "stdout-is-a-link"
        ],
        "{report}\n{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--out /dev/null is a device, not a regular file"));
    assert!(stderr(&out).contains("--out /dev/stdout is a symbolic link, not a regular file"));
}

#[test]
fn seal_that_cannot_print_its_token_fails_and_leaves_the_old_bundle_untouched() {
    let c = Harness::new("seal-stdout");
    let (token, _) = seal(&c, &["--secrets", "A=old", "--out", "b.json"]);
    let before = std::fs::read(c.dir.join("b.json")).unwrap();
    // Closed stdout (`>&-`), and a full disk behind stdout.
    let closed = std::process::Command::new("sh")
        .args(["-c", r#"exec "$@" >&-"#, "sh"])
        .arg(support::bin())
        .args([
            "seal",
            "--secrets",
            "A=zq-new-value",
            "--overwrite",
            "--out",
            "b.json",
        ])
        .current_dir(&c.dir)
        .env_clear()
        .output()
        .unwrap();
    let full = c
        .agent()
        .args([
            "seal",
            "--secrets",
            "A=zq-new-value",
            "--overwrite",
            "--out",
            "b.json",
        ])
        .cmd
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    for (what, out) in [("closed", &closed), ("full", &full)] {
        assert_eq!(out.status.code(), Some(70), "{what}: {}", stderr(out));
        assert!(
            stderr(out).contains("cannot write the token to stdout"),
            "{what}: {}",
            stderr(out)
        );
        assert!(
            stderr(out).contains("b.json was not written"),
            "{}",
            stderr(out)
        );
        assert_no_leak(out, &["zq-new-value"]);
        assert_eq!(
            std::fs::read(c.dir.join("b.json")).unwrap(),
            before,
            "{what}"
        );
        assert_eq!(others(&c.dir, &["b.json"]), Vec::<String>::new(), "{what}");
    }
    assert_sealed(&c, &token, "b.json", &[("A", "old")]);
}

#[test]
fn seal_takes_its_token_from_a_file_or_the_environment_like_a_run() {
    use std::os::unix::fs::PermissionsExt;
    let c = Harness::new("seal-token-file");
    let (token, _) = seal(&c, &["--secrets", "A=first", "--out", "b.json"]);
    let file = c.file("agent.token", format!("{token}\n"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (again, out) = seal(
        &c,
        &[
            "--secrets",
            "A=second",
            "--token-file",
            "agent.token",
            "--out",
            "b.json",
        ],
    );
    assert_eq!(again, token);
    assert!(!stderr(&out).contains("other users"), "{}", stderr(&out));
    assert_sealed(&c, &token, "b.json", &[("A", "second")]);
    for (var, value) in [
        ("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "agent.token".to_string()),
        ("LIVEKIT_BOOTSTRAP_TOKEN", token.clone()),
    ] {
        let out = c
            .agent()
            .env(var, &value)
            // Seal ignores the secrets URL: it writes a bundle, it fetches none.
            .env("LIVEKIT_SECRETS_URL", "https://127.0.0.1:1/v1/secrets")
            .args(["seal", "--secrets", "A=third", "--out", "b.json"])
            .output();
        assert_eq!(out.status.code(), Some(0), "{var}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{token}\n"), "{var}");
        assert!(!stderr(&out).contains(&token), "{var}");
        assert_sealed(&c, &token, "b.json", &[("A", "third")]);
    }
}

#[test]
fn seal_wipes_a_token_flag_from_its_command_line_at_once() {
    let c = Harness::new("seal-cmdline");
    let (token, _) = seal(&c, &["--secrets", "A=b", "--out", "b.json"]);
    let fifo = c.dir.join("in.env");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The FIFO holds seal inside its run until this test writes to it.
    let child = c
        .agent()
        .args(["seal", "--token", &token, "--secrets", "S=zq-flag-secret"])
        .args(["--secrets-file", "in.env", "--out", "b.json"])
        .cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cmdline = format!("/proc/{}/cmdline", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = String::new();
    while std::time::Instant::now() < deadline {
        seen = String::from_utf8_lossy(&std::fs::read(&cmdline).unwrap()).into_owned();
        if !seen.contains(&token) && !seen.contains("zq-flag-secret") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&fifo, "FROM_PIPE=1\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!seen.contains(&token), "the token stayed in {cmdline}");
    assert!(
        !seen.contains("zq-flag-secret"),
        "a --secrets value stayed in {cmdline}"
    );
    assert!(seen.contains("--token") && seen.contains("S="), "{seen:?}");
    assert_eq!(stdout(&out), format!("{token}\n"));
}

#[test]
fn a_token_file_other_users_can_read_or_write_is_warned_about_and_group_read_is_not() {
    use std::os::unix::fs::PermissionsExt;
    let c = Harness::new("token-mode");
    let (token, _) = seal(&c, &["--secrets", "A=b", "--out", "b.json"]);
    let file = c.file("agent.token", &token);
    for (mode, warning) in [
        (0o644, Some("readable by other users (mode 0644)")),
        (
            0o666,
            Some("readable and writable by other users (mode 0666)"),
        ),
        (0o602, Some("writable by other users (mode 0602)")),
        (0o640, None),
        (0o400, None),
    ] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = c
            .agent()
            .env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", &file)
            .env("LIVEKIT_SECRETS_URL", file_url(&c.dir.join("b.json")))
            .args(["--list"])
            .output();
        let sealed = c
            .agent()
            .args([
                "seal",
                "--secrets",
                "A=c",
                "--token-file",
                "agent.token",
                "--out",
                "b.json",
            ])
            .output();
        for out in [&run, &sealed] {
            assert_eq!(out.status.code(), Some(0), "{mode:o}: {}", stderr(out));
            match warning {
                Some(w) => assert!(stderr(out).contains(w), "{mode:o}: {}", stderr(out)),
                None => assert!(
                    !stderr(out).contains("other users"),
                    "{mode:o}: {}",
                    stderr(out)
                ),
            }
            assert!(!stderr(out).contains(&token));
        }
    }
}

#[test]
fn a_wrapped_base64_value_is_warned_about_by_file_and_line_and_list_never_shows_the_piece() {
    let c = Harness::new("wrapped");
    let first = "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50IiwicHJpdmF0ZV9rZXki";
    let piece = "OiJTRUNSRVRQUklWQVRFS0VZTUFURVJJQUwifQ";
    c.file(
        "wrapped.env",
        format!("GOOGLE_CREDENTIALS={first}\n{piece}==\nAFTER=ok\nPADDED=abc\nbQ=\nEQUALS==\n"),
    );
    let out = c
        .agent()
        .args(["--secrets-file", "wrapped.env", "--list"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    // Line 2 follows a cut value and is only padding; line 6 is only `=`.
    // Line 5 (`bQ=`) follows a short value, so it is a variable like any other.
    for line in [2, 6] {
        assert!(
            err.contains(&format!(
                "wrapped.env:{line}: this line looks like the end of a value wrapped"
            )),
            "{err}"
        );
    }
    assert_eq!(
        err.matches("looks like the end of a value").count(),
        2,
        "{err}"
    );
    assert_no_leak(&out, &[first, piece, "OiJTRUNS"]);
    let lines: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        set(&[
            "PATH\tinherited",
            "GOOGLE_CREDENTIALS\tfile wrapped.env",
            "AFTER\tfile wrapped.env",
            "PADDED\tfile wrapped.env",
            "bQ\tfile wrapped.env",
        ])
    );
    // The command gets what python-dotenv would give it.
    let (_, env) = ran(&c, c.agent().args(["--secrets-file", "wrapped.env"]));
    assert_eq!(
        env,
        with_path(&[
            &format!("GOOGLE_CREDENTIALS={first}"),
            &format!("{piece}=="),
            "AFTER=ok",
            "PADDED=abc",
            "bQ=",
            "EQUALS==",
        ])
    );
}

#[test]
fn a_dotenv_expansion_bomb_is_refused_with_65_before_it_allocates() {
    let c = Harness::new("bomb");
    // 1.2 MB of `${A}` over a 16,000-byte A: 4.8 GB if it were built.
    c.file(
        "bomb.env",
        format!("A={}\nB={}\n", "x".repeat(16_000), "${A}".repeat(300_000)),
    );
    let out = std::process::Command::new("prlimit")
        .arg(format!("--as={}", 512 << 20))
        .arg(support::bin())
        .args(["--secrets-file", "bomb.env", "--list"])
        .current_dir(&c.dir)
        .env_clear()
        .output()
        .expect("prlimit runs");
    assert_exit_says(
        &out,
        65,
        "bomb.env:2: B: value is over the limit of 16384 bytes",
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_variable_twice_in_the_environment_is_read_as_its_first_entry_by_agent_init_and_the_child() {
    let c = Harness::new("duplicates");
    // Only execve itself can hand a process two entries of one name.
    let exec = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
def arr(items):
    a = (ctypes.c_char_p * (len(items) + 1))(*[i.encode() for i in items])
    a[len(items)] = None
    return a
argv = sys.argv[1:]
env = ["PATH=/usr/local/bin:/usr/bin:/bin", "DUP=first", "DUP=second",
       "AGENT_INIT_REQUIRE=DUP", "AGENT_INIT_REQUIRE=NOT_SET_ANYWHERE"]
libc.execve(argv[0].encode(), arr(argv), arr(env))
sys.exit("execve failed: %d" % ctypes.get_errno())
"#;
    let mut args: Vec<OsString> = vec!["-c".into(), exec.into(), support::bin().into()];
    args.extend(c.capture());
    let out = std::process::Command::new("python3")
        .args(&args)
        .current_dir(&c.dir)
        .output()
        .unwrap();
    // The first AGENT_INIT_REQUIRE (DUP) is the one read, so the run passes.
    assert_ran(&out, &c);
    assert_eq!(child_env(&c), with_path(&["DUP=first"]));
}

#[test]
fn python_dotenv_disabled_turns_off_the_default_files_but_not_an_explicit_one() {
    let c = Harness::new("dotenv-disabled");
    c.file(".env", "FROM_DOT_ENV=1\n");
    c.file(".env.local", "FROM_DOT_ENV_LOCAL=1\n");
    c.file("explicit.env", "FROM_EXPLICIT=1\n");
    let list = |value: Option<&str>, explicit: bool| -> BTreeSet<String> {
        let mut run = c.agent();
        if let Some(v) = value {
            run = run.env("PYTHON_DOTENV_DISABLED", v);
        }
        if explicit {
            run = run.args(["--secrets-file", "explicit.env"]);
        }
        let out = run.args(["--list"]).output();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .filter(|n| n.starts_with("FROM_"))
            .collect()
    };
    for on in ["1", "true", "TRUE", "t", "Yes", "y"] {
        assert_eq!(list(Some(on), false), set(&[]), "{on}");
        assert_eq!(list(Some(on), true), set(&["FROM_EXPLICIT"]), "{on}");
    }
    for off in ["0", "false", "no", "", "on", " 1"] {
        assert_eq!(
            list(Some(off), false),
            set(&["FROM_DOT_ENV", "FROM_DOT_ENV_LOCAL"]),
            "{off:?}"
        );
    }
    assert_eq!(
        list(None, false),
        set(&["FROM_DOT_ENV", "FROM_DOT_ENV_LOCAL"])
    );
}

#[test]
#[ignore = "needs root: a private mount namespace"]
fn a_misplaced_name_value_command_shows_only_its_name_also_in_the_termination_log() {
    support::needs_root("a private mount namespace");
    let c = Harness::new("misplaced");
    let args: Vec<OsString> = ["OPENAI_API_KEY=sk-zq-misplaced-value", "python3", "-c", "1"]
        .iter()
        .map(OsString::from)
        .collect();
    let (out, log) = c.run_with_termination_log(&args);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    for text in [stderr(&out), log] {
        assert!(
            text.contains("OPENAI_API_KEY=...: command not found"),
            "{text:?}"
        );
        assert!(!text.contains("sk-zq-misplaced-value"), "{text:?}");
    }
}

// ---------------------------------------------------------------------------
// --list and --check: never a value, never the command

/// Distinctive values from every local source; none may appear in any output.
const VALUES: &[&str] = &[
    "zq-file-value-7f3a",
    "zq-multi-line-first",
    "zq-local-override-91",
    "zq-flag-value-c0de",
    "zq-inherited-value-5e",
    "h\u{e9}llo-zq-\u{2603}",
    "zq-livekit-secret-0a",
];

fn list_check_case(name: &str) -> Harness {
    let c = Harness::new(name);
    c.file(
        ".env",
        "FILE_VALUE=zq-file-value-7f3a\nMULTI=\"zq-multi-line-first\nsecond\"\nOVERRIDDEN=first\nLIVEKIT_URL=wss://x\nLIVEKIT_API_KEY=k\nLIVEKIT_API_SECRET=zq-livekit-secret-0a\n",
    );
    c.file(
        ".env.local",
        "OVERRIDDEN=zq-local-override-91\nUNICODE=h\u{e9}llo-zq-\u{2603}\n",
    );
    c
}

fn run_list_check(c: &Harness, flag: &str) -> Output {
    c.agent()
        .env("INHERITED_VALUE", "zq-inherited-value-5e")
        .args([flag, "--secrets", "FLAG_VALUE=zq-flag-value-c0de"])
        .args(c.capture())
        .output()
}

#[test]
fn list_prints_each_name_and_origin_never_a_value_and_runs_nothing() {
    let c = list_check_case("list");
    let out = run_list_check(&c, "--list");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!c.marker.exists(), "--list must not run the command");
    assert_no_leak(&out, VALUES);
    let lines: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        set(&[
            "PATH\tinherited",
            "INHERITED_VALUE\tinherited",
            "FLAG_VALUE\tflag --secrets",
            "FILE_VALUE\tfile .env",
            "MULTI\tfile .env",
            "OVERRIDDEN\tfile .env.local",
            "UNICODE\tfile .env.local",
            "LIVEKIT_URL\tfile .env",
            "LIVEKIT_API_KEY\tfile .env",
            "LIVEKIT_API_SECRET\tfile .env",
        ])
    );
}

#[test]
fn list_shows_bundle_origins_and_updated_at_in_production() {
    let c = Harness::new("list-bundle");
    let v = vector();
    let b = c.file("bundle.json", v["bundle"].to_string());
    let out = c
        .agent()
        .env("LIVEKIT_BOOTSTRAP_TOKEN", v["token"].as_str().unwrap())
        .env("LIVEKIT_SECRETS_URL", file_url(&b))
        .args(["--list"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_leak(
        &out,
        &[
            "sk-test-1234",
            "line one",
            "example-api-secret",
            "APIexample",
        ],
    );
    let lines: BTreeSet<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        set(&[
            "PATH\tinherited",
            "OPENAI_API_KEY\tbundle\t2026-11-20T08:30:00Z",
            "MULTI_LINE\tbundle\t2026-11-20T08:30:00Z",
            "UNICODE_VALUE\tbundle\t2026-11-20T08:30:00Z",
            "EMPTY\tbundle\t2026-11-20T08:30:00Z",
            "LIVEKIT_URL\tbundle (livekit)",
            "LIVEKIT_API_KEY\tbundle (livekit)",
            "LIVEKIT_API_SECRET\tbundle (livekit)",
        ])
    );
}

#[test]
fn check_prints_a_one_line_summary_never_a_value_and_runs_nothing() {
    let c = list_check_case("check");
    let out = run_list_check(&c, "--check");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!c.marker.exists(), "--check must not run the command");
    assert_no_leak(&out, VALUES);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("agent-init: check passed: 10 variables (0 from the bundle, 0 platform, 7 from files, 1 from flags, 2 inherited); command python3 resolves to /"),
        "{err}"
    );
}

#[test]
fn check_prints_its_summary_even_when_logging_is_quiet() {
    let c = list_check_case("check-quiet");
    let out = c
        .agent()
        .env("AGENT_INIT_LOG", "error")
        .args(["--check"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("agent-init: check passed: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_fails_like_a_real_run_when_a_required_name_is_missing() {
    let c = list_check_case("check-require");
    let out = c
        .agent()
        .args(["--check", "--require", "NOT_THERE"])
        .args(c.capture())
        .output();
    assert_failed_cleanly(&out, 78, &c.marker, VALUES);
    assert_says(&out, "NOT_THERE");
}

// ---------------------------------------------------------------------------
// Refused files

#[test]
fn a_line_that_is_not_an_assignment_exits_65_with_file_and_line_and_starts_nothing() {
    let c = Harness::new("refused-line");
    c.file(
        ".env.local",
        "GOOD=zq-good-value\n# a comment\nsk-proj-zq-pasted-secret-value\nLATER=zq-later-value\n",
    );
    let out = refused(
        &c,
        &[],
        65,
        &[
            "zq-good-value",
            "sk-proj-zq-pasted-secret-value",
            "zq-later-value",
        ],
    );
    assert_says(&out, ".env.local:3: ");
}

#[test]
fn a_name_section_6_refuses_exits_65_with_file_and_line_and_starts_nothing() {
    let c = Harness::new("refused-name");
    c.file("x.env", "OK=1\n\nMY-KEY=zq-hyphen-value\n");
    let out = refused(
        &c,
        &["--secrets-file", "x.env"],
        65,
        &["zq-hyphen-value", "MY-KEY"],
    );
    assert_says(&out, "x.env:3: ");
}

#[test]
fn a_missing_secrets_file_exits_78_and_starts_nothing() {
    let c = Harness::new("missing-file");
    let out = refused(&c, &["--secrets-file", "nope.env"], 78, &[]);
    assert_says(&out, "nope.env");
}

#[test]
fn a_secrets_flag_with_a_bad_name_exits_64_without_echoing_it() {
    let c = Harness::new("bad-flag");
    refused(
        &c,
        &["--secrets", "zq-bad.name=zq-flag-secret"],
        64,
        &["zq-flag-secret", "zq-bad.name"],
    );
}

// ---------------------------------------------------------------------------
// --help and --version

/// Every `"--flag"` literal in config.rs and every `AGENT_INIT_*`/`LIVEKIT_*`
/// literal anywhere in src/: what agent-init reads.
fn names_in_sources() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests name made-up flags and variables.
        let text = text.split("#[cfg(test)]").next().unwrap();
        let is_config = f.ends_with("src/config.rs");
        for (i, _) in text.match_indices('"') {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if !rest[end..].starts_with('"') {
                continue;
            }
            let lit = &rest[..end];
            let env_var = (lit.starts_with("AGENT_INIT_") || lit.starts_with("LIVEKIT_"))
                && lit.len() > "LIVEKIT_".len()
                && !lit.ends_with('_');
            let flag = is_config && lit.starts_with("--") && lit.len() > 2;
            if env_var || flag {
                names.insert(lit.to_string());
            }
        }
    }
    names
}

#[test]
fn help_names_every_flag_and_environment_variable_agent_init_reads() {
    let dir = scratch("help");
    let out = Run::new(&dir).args(["--help"]).output();
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    let names = names_in_sources();
    for must in [
        "--secrets-file",
        "--secrets",
        "--list",
        "--check",
        "--out",
        "--token",
        "LIVEKIT_BOOTSTRAP_TOKEN",
    ] {
        assert!(
            names.contains(must),
            "the source scan missed {must}: {names:?}"
        );
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !help.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "--help does not name {missing:?}");
    for short in ["-h", "-V", "seal"] {
        assert!(help.contains(short), "{short}");
    }
    let out = Run::new(&dir).args(["seal", "--help"]).output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), help);
}

#[test]
fn version_prints_the_package_version() {
    let dir = scratch("version");
    let out = Run::new(&dir).args(["--version"]).output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("agent-init {}\n", env!("CARGO_PKG_VERSION"))
    );
}
