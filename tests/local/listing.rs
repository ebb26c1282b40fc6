//! `--list` and `--check`: never a value, never the command.

use super::*;

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

/// Runs `flag` (`--list` or `--check`) over every local source in `c` and
/// asserts it passed, ran nothing and printed none of [`VALUES`].
fn run_list_check(c: &Harness, flag: &str) -> Output {
    let out = c
        .agent()
        .env("INHERITED_VALUE", "zq-inherited-value-5e")
        .args([flag, "--secrets", "FLAG_VALUE=zq-flag-value-c0de"])
        .args(c.capture())
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!c.marker.exists(), "{flag} must not run the command");
    assert_no_leak(&out, VALUES);
    out
}

#[test]
fn list_prints_each_name_and_origin_never_a_value_and_runs_nothing() {
    let c = list_check_case("list");
    let out = run_list_check(&c, "--list");
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
    let out = with_known_answer_bundle(&c).args(["--list"]).output();
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
