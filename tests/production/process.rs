//! agent-init as a process: the token gone from /proc/PID/environ while it
//! fetches, PID 1 of a new PID namespace, the termination log, and exec mode
//! keeping its PID for the command.

use super::*;

#[test]
#[ignore = "needs root: reads /proc/PID/environ of the non-dumpable agent-init"]
fn token_is_gone_from_proc_environ_while_the_fetch_waits() {
    let (ca, server) = serve(vec![Reply::hang()]);
    let f = fixture("environ", &server.url(), &ca);
    let child = f.spawn();
    server.wait_for_requests(1);
    let environ = support::procfs::environ(child.id() as i32);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = finish(child);
    f.assert_failed(&out, 143);

    let text = String::from_utf8_lossy(&environ);
    // The right block: the variable's name stays, with the secrets URL beside it.
    assert!(text.contains("LIVEKIT_BOOTSTRAP_TOKEN="), "{text}");
    assert!(text.contains(&server.url()), "{text}");
    let token = bundle::vector_token_text();
    let key = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&token),
        "the token is still in /proc/PID/environ"
    );
    assert!(
        !text.contains(key),
        "the token's KEY is still in /proc/PID/environ"
    );
}

/// The pid (in this namespace) of the process whose parent is `parent`.
fn child_of(parent: u32) -> u32 {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            if status
                .lines()
                .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&parent.to_string()))
            {
                return pid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no child of {parent} appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root: unshare --pid"]
fn sigterm_ends_agent_init_as_pid_1_of_a_new_pid_namespace() {
    support::needs_root("unshare --pid");
    let (ca, server) = serve(vec![Reply::hang()]);
    let f = fixture("pid1", &server.url(), &ca);
    let unshare = f
        .under("unshare", &["--pid", "--fork", "--mount-proc"])
        .spawn()
        .expect("unshare runs");
    let pid = child_of(unshare.id());
    server.wait_for_requests(1);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid line");
    assert_eq!(
        nspid.split_whitespace().last(),
        Some("1"),
        "agent-init is PID 1 in its namespace: {nspid}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        support::bin().canonicalize().unwrap()
    );
    // The kernel drops a signal to a namespace's PID 1 that has no handler:
    // only agent-init's own handler can end it here.
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let out = finish(unshare);
    f.assert_failed(&out, 143);
}

#[test]
#[ignore = "needs root: a private mount namespace"]
fn failure_reason_is_written_to_dev_termination_log() {
    support::needs_root("a private mount namespace");
    let (ca, server) = serve(vec![Reply::status(401)]);
    let f = fixture("termination-log", &server.url(), &ca);
    let (out, reason) = f.run_with_termination_log(&f.capture());
    f.assert_failed(&out, 77);
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");
    assert!(
        reason.starts_with("agent-init: ") && reason.contains("401"),
        "{reason:?}"
    );
    f.forbidden.assert_not_in("the termination log", &reason);
}

#[test]
fn exec_mode_keeps_agent_init_pid_for_the_command() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let f = fixture("same-pid", &server.url(), &ca);
    let pid_file = f.dir.join("pid");
    let args: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        "echo $$ > \"$0\"".into(),
        pid_file.clone().into(),
    ];
    let child = f.command(support::bin(), &args).spawn().unwrap();
    let pid = child.id();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    f.forbidden.assert_not_printed(&out);
    let printed = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        printed.trim(),
        pid.to_string(),
        "the command is agent-init's process"
    );
}
