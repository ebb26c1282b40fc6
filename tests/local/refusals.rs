//! Refused files and arguments in a run: the exit code, the file and line or
//! the name at fault, never a value, and nothing started.

use super::*;

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
