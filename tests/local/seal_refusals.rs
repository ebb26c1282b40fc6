//! What `agent-init seal` refuses: a malformed token, a bad dotenv file, an
//! `--out` that is not a regular file, a stdout it cannot print the token
//! to. A refused seal writes nothing and leaves an old bundle untouched.

use super::*;

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
    let args = [
        "seal",
        "--secrets",
        "A=zq-new-value",
        "--overwrite",
        "--out",
        "b.json",
    ];
    // Closed stdout (`>&-`), and a full disk behind stdout.
    let closed = std::process::Command::new("sh")
        .args(["-c", r#"exec "$@" >&-"#, "sh"])
        .arg(support::bin())
        .args(args)
        .current_dir(&c.dir)
        .env_clear()
        .output()
        .unwrap();
    let full = c
        .agent()
        .args(args)
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
