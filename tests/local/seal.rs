//! Round trips between `agent-init seal`, the library and the protocol's
//! construction, and where seal (like a run) takes its token from.

use super::*;

#[test]
fn the_protocol_construction_used_here_reproduces_the_known_answer_vector() {
    let v = vector();
    let plain = open_per_protocol(v["token"].as_str().unwrap(), &v["bundle"]);
    assert_eq!(plain, v["plaintext"].as_str().unwrap().as_bytes());
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
    let (_, env) = ran(&c, with_known_answer_bundle(&c));
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
