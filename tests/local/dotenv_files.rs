//! Which dotenv files a run reads: `.env` then `.env.local`, or only
//! `--secrets-file`; none with a token, and no default one with
//! `PYTHON_DOTENV_DISABLED`. The LiveKit values in them, and the warnings
//! about them.

use super::*;

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
    let (out, env) = ran(&c, with_known_answer_bundle(&c));
    assert!(env.iter().all(|v| !v.contains("dotenv")), "{env:?}");
    assert!(
        env.contains("LIVEKIT_URL=wss://example.livekit.cloud"),
        "{env:?}"
    );
    assert_says(&out, ".env, .env.local");
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
