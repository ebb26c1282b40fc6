//! What the command receives from a bundle fetched over HTTPS: every byte of
//! every value, the precedence of the platform's values and the secrets, the
//! names never passed on, the token file, and a file:// URL.

use super::*;

#[test]
fn bundle_from_https_reaches_the_command_byte_for_byte() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let mut f = fixture("byte-for-byte", &server.url(), &ca);
    // Every knob is set, at the most talkative level, and none reaches the command.
    f.set("AGENT_INIT_LOG", "debug")
        .set("AGENT_INIT_MAX_BUNDLE", "1048576")
        .set("AGENT_INIT_ANYTHING_ELSE", "x")
        .set("KEPT", "inherited=value\nwith newline");
    let argv_file = f.dir.join("argv");
    let mut args = f.capture();
    // The capture script also records its own command line.
    args[2] = format!(
        "{}\nopen({:?}, 'wb').write(open('/proc/self/cmdline', 'rb').read())",
        args[2].to_str().unwrap(),
        argv_file.to_str().unwrap()
    )
    .into();
    let out = f.run_with(&args);
    let env = f.assert_succeeded(&out);
    assert_environment(
        &env,
        &expected_environment(&[("KEPT", "inherited=value\nwith newline")]),
    );

    let argv = std::fs::read(&argv_file).unwrap();
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| a.as_encoded_bytes().iter().copied().chain([0]))
        .collect();
    assert_eq!(argv, want, "the command's argv is exactly the one given");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/v1/secrets");
    assert_eq!(r.header("Authorization"), bundle::vector_authorization());
    assert_eq!(r.header("Accept"), "application/json");
    assert_eq!(
        r.header("User-Agent"),
        concat!("agent-init/", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn livekit_values_and_secrets_merge_in_the_documented_precedence() {
    // Bundle: a secret that shadows an inherited variable, a LIVEKIT_URL among
    // the secrets (dropped), and a livekit member with only the API key.
    let plain = bundle::plaintext(
        &[
            ("SHARED", "from-bundle-secret"),
            ("LIVEKIT_URL", "wss://from-bundle-secrets-list"),
        ],
        &[("LIVEKIT_API_KEY", "key-from-bundle-livekit")],
    );
    let sealed = bundle::seal(&bundle::vector_token(), &plain);
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = fixture("precedence", &server.url(), &ca);
    f.set("SHARED", "from-agent-init-env")
        .set("ONLY_INHERITED", "kept")
        .set("LIVEKIT_URL", "wss://from-agent-init-env")
        .set("LIVEKIT_API_KEY", "key-from-agent-init-env")
        .set("LIVEKIT_API_SECRET", "secret-from-agent-init-env")
        .forbid(&["from-bundle-secret", "wss://from-bundle-secrets-list"]);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(
        &env,
        &environment(&[
            ("PATH", PATH),
            ("SHARED", "from-bundle-secret"),
            ("ONLY_INHERITED", "kept"),
            ("LIVEKIT_URL", "wss://from-agent-init-env"),
            ("LIVEKIT_API_KEY", "key-from-bundle-livekit"),
            ("LIVEKIT_API_SECRET", "secret-from-agent-init-env"),
        ]),
    );
}

#[test]
fn livekit_name_among_the_secrets_is_dropped_with_a_warning_naming_it() {
    let s = secrets();
    let mut list = pairs(&s);
    list.push(("LIVEKIT_API_SECRET", "shadowing-secret-value"));
    let sealed = bundle::seal(&bundle::vector_token(), &bundle::plaintext(&list, &LIVEKIT));
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = fixture("livekit-dropped", &server.url(), &ca);
    f.forbid(&["shadowing-secret-value"]);
    let out = run_ordinary(&f);
    let what = "a warning names the dropped secret";
    assert_a_line_has(
        &out,
        "agent-init: warning: bundle secret LIVEKIT_API_SECRET ",
        "ignored: the platform provides it and its value stands",
        what,
    );
}

#[test]
fn bootstrap_names_among_the_secrets_never_reach_the_command_and_are_named_in_a_warning() {
    let s = secrets();
    let mut list = pairs(&s);
    list.push(("AGENT_INIT_LOG", "stripped-secret-value-1"));
    list.push(("LIVEKIT_SECRETS_URL", "stripped-secret-value-2"));
    let sealed = bundle::seal(&bundle::vector_token(), &bundle::plaintext(&list, &LIVEKIT));
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = fixture("bootstrap-dropped", &server.url(), &ca);
    f.forbid(&["stripped-secret-value-1", "stripped-secret-value-2"]);
    let out = run_ordinary(&f);
    for name in ["AGENT_INIT_LOG", "LIVEKIT_SECRETS_URL"] {
        assert_a_line_has(
            &out,
            &format!("agent-init: warning: bundle secret {name} "),
            "will not reach the command: agent-init never passes that name on",
            &format!("a warning names {name}"),
        );
    }
}

#[test]
fn token_file_with_a_trailing_newline_works_and_is_not_passed_on() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let mut f = fixture("token-file", &server.url(), &ca);
    let token_file = f.dir.join("token");
    std::fs::write(&token_file, format!("{}\n", bundle::vector_token_text())).unwrap();
    f.unset("LIVEKIT_BOOTSTRAP_TOKEN")
        .set("LIVEKIT_BOOTSTRAP_TOKEN_FILE", &token_file);
    run_ordinary(&f);
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

#[test]
fn file_url_path_is_percent_decoded() {
    let ca = Ca::new("agent-init test CA");
    let dir = support::scratch("file-url-decoded");
    std::fs::write(dir.join("my bundle.json"), good_bundle()).unwrap();
    let url = format!("file://{}/my%20bundle%2Ejson", dir.display());
    let f = fixture("file-url-decoded", &url, &ca);
    run_ordinary(&f);
    let _ = std::fs::remove_dir_all(&dir);
}
