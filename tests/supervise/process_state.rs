//! Process state: cwd, inherited file descriptors, signal mask and
//! dispositions, core limit, log lines, non-dumpable.

use super::*;

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn agent_init_moves_to_root_and_closes_inherited_fds_while_the_child_keeps_both() {
    for mode in MODES {
        let dir = fs::canonicalize(support::scratch("cwd-fds")).unwrap();
        let extra = dir.join("held-open");
        fs::write(&extra, b"x").unwrap();
        let opener = format!("exec \"$@\" 5<{}", extra.display());
        let argv = agent_argv_via(
            mode,
            &["sh", "-c", &opener, "sh"],
            &["--supervise"],
            &["sleep", "600"],
        );
        let mut cmd = command(&argv);
        cmd.current_dir(&dir);
        let mut agent = Agent::start(mode, cmd);
        let child = agent.command_pid("sleep");
        agent.wait_idle();
        let fds = |p: i32| -> Vec<i32> {
            let mut v: Vec<i32> = fs::read_dir(format!("/proc/{p}/fd"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
                .collect();
            v.sort();
            v
        };
        let cwd = |p: i32| fs::read_link(format!("/proc/{p}/cwd")).unwrap();
        assert_eq!(
            cwd(agent.raw()),
            Path::new("/"),
            "{mode:?}: agent-init pins no directory"
        );
        assert_eq!(
            fds(agent.raw()),
            [0, 1, 2],
            "{mode:?}: agent-init holds no inherited fd"
        );
        assert_eq!(
            cwd(child),
            dir,
            "{mode:?}: the child keeps the working directory"
        );
        assert!(fds(child).contains(&5), "{mode:?}: the child keeps fd 5");
        assert_eq!(agent.stop(), Some(143));
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_command_never_finds_agent_init_in_the_start_directory() {
    // dumb-init's test_working_directories: the command looks at once. A
    // large environment makes agent-init's wiping after the spawn long, so
    // that a move to / after the spawn loses the race in most runs.
    need("readlink");
    let dir = fs::canonicalize(support::scratch("cwd-race")).unwrap();
    let bin = support::bin().into_os_string().into_string().unwrap();
    let script = format!("exec '{bin}' --supervise -- readlink /proc/$$/cwd");
    let filler = "x".repeat(100_000);
    const RUNS: usize = 50;
    let mut seen = BTreeMap::new();
    for _ in 0..RUNS {
        let mut cmd = command(&os(&["sh", "-c", &script]));
        cmd.current_dir(&dir).stdout(Stdio::piped());
        for k in 0..5 {
            cmd.env(format!("FILLER_{k}"), &filler);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        *seen
            .entry(String::from_utf8_lossy(&out.stdout).trim().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("/".to_string(), RUNS)]),
        "where the command found agent-init, in {RUNS} runs"
    );
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_command_starts_in_the_directory_agent_init_was_started_in_even_by_a_relative_path() {
    for mode in MODES {
        let dir = fs::canonicalize(support::scratch("cwd-relative")).unwrap();
        let out = dir.join("out");
        fs::write(dir.join("where.sh"), "#!/bin/sh\npwd > \"$1\"\n").unwrap();
        fs::set_permissions(
            dir.join("where.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let argv = agent_argv(
            mode,
            &["--supervise"],
            &["./where.sh", &out.to_string_lossy()],
        );
        let mut cmd = command(&argv);
        cmd.current_dir(&dir);
        assert!(run(cmd, "where.sh").success(), "{mode:?}");
        assert_eq!(
            fs::read_to_string(&out).unwrap().trim(),
            dir.to_string_lossy(),
            "{mode:?}"
        );
    }
}

#[test]
fn at_the_default_log_level_supervise_mode_prints_one_starting_line() {
    let mut cmd = command(&agent_argv(Subreaper, &["--supervise"], &["true"]));
    cmd.env_remove("AGENT_INIT_LOG")
        .env("LIVEKIT_URL", "wss://lk.example")
        .env("LIVEKIT_API_KEY", "key")
        .env("LIVEKIT_API_SECRET", "secret")
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "agent-init: starting true (supervised)\n"
    );
}

#[test]
fn a_failed_pipe_in_supervise_mode_is_a_local_failure_70_and_starts_nothing() {
    // With only descriptors 0 to 2 allowed, agent-init cannot open the pipe
    // that reports the child's execve; with two more, not the descriptor of
    // its working directory. Its own failures, not the command's.
    need("prlimit");
    for (nofile, step) in [(3, "create a pipe"), (5, "open the working directory")] {
        let dir = support::scratch("nofile");
        let marker = dir.join("started");
        let script = format!("touch '{}'", marker.display());
        let mut argv = os(&["prlimit", &format!("--nofile={nofile}:{nofile}")]);
        argv.extend(agent_argv(
            Subreaper,
            &["--supervise"],
            &["sh", "-c", &script],
        ));
        let mut cmd = command(&argv);
        cmd.stderr(Stdio::piped());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{nofile}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "agent-init: error: cannot start the command: {step} failed: Too many open files\n"
            ),
            "{nofile}"
        );
        assert!(!marker.exists(), "{nofile}: the command never started");
    }
}

/// Starts agent-init (in `mode`, with `flags`) with the given ignored and
/// blocked signals and soft core limit, and has it run
/// `cat /proc/self/status /proc/self/limits`. Returns the SigIgn and SigBlk
/// agent-init started with, and what cat showed.
fn child_signal_state(
    mode: Mode,
    flags: &[&str],
    ignored: &[i32],
    blocked: &[i32],
    core: Option<u64>,
) -> (String, String) {
    let list = |v: &[i32]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let core = core.map_or("-".to_string(), |c| c.to_string());
    let py = python().to_string_lossy().into_owned();
    let report = support::scratch("signal-state").join("inherited");
    let argv = agent_argv_via(
        mode,
        &[
            &py,
            &helper("with_signal_state.py"),
            &list(ignored),
            &list(blocked),
            &core,
            report.to_str().unwrap(),
        ],
        flags,
        &["cat", "/proc/self/status", "/proc/self/limits"],
    );
    let (st, out, err) = output_guarded(command(&argv), "cat /proc/self/status");
    assert_eq!(st.code(), Some(0), "{mode:?} {flags:?}: {out}{err}");
    (fs::read_to_string(&report).unwrap(), out)
}

fn core_soft_limit(status: &str) -> String {
    let line = status
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().to_string()
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn the_child_inherits_agent_inits_signal_mask_dispositions_and_core_limit() {
    // tini's sigconf test, plus SIGPIPE (std would set it ignored), SIGCHLD
    // (agent-init resets it for itself) and the four signals with early
    // handlers (SIGINT ignored here), in exec and supervise mode.
    // Signals 32 and 33 are glibc's own: a parent that starts agent-init
    // with posix_spawn may leave them ignored, and they pass through.
    let standard = bits(&(1..=31).collect::<Vec<_>>());
    let ignored = [2, 11, 10, 13, 17, 22]; // INT SEGV USR1 PIPE CHLD TTOU
    let blocked = [4, 12, 15, 21]; // ILL USR2 TERM TTIN
    for mode in MODES {
        for flags in [
            &[][..],
            &["--supervise"],
            &["--supervise", "--signal-child"],
        ] {
            let (had, st) = child_signal_state(mode, flags, &ignored, &blocked, Some(4096));
            assert_eq!(sigmask(&had, "SigIgn") & standard, bits(&ignored));
            assert_eq!(sigmask(&had, "SigBlk"), bits(&blocked));
            assert_eq!(
                sigmask(&st, "SigIgn"),
                sigmask(&had, "SigIgn"),
                "{mode:?} {flags:?}: SigIgn"
            );
            assert_eq!(
                sigmask(&st, "SigBlk"),
                bits(&blocked),
                "{mode:?} {flags:?}: SigBlk"
            );
            assert_eq!(
                core_soft_limit(&st),
                "4096",
                "{mode:?} {flags:?}: core limit"
            );

            let (had, st) = child_signal_state(mode, flags, &[], &[], Some(0));
            assert_eq!(sigmask(&had, "SigIgn") & standard, 0);
            assert_eq!(
                sigmask(&st, "SigIgn"),
                sigmask(&had, "SigIgn"),
                "{mode:?} {flags:?}: nothing ignored, SIGPIPE included"
            );
            assert_eq!(sigmask(&st, "SigBlk"), 0, "{mode:?} {flags:?}: empty mask");
            assert_eq!(core_soft_limit(&st), "0", "{mode:?} {flags:?}: core limit");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn agent_init_stays_non_dumpable_while_supervising() {
    // Without CAP_SYS_PTRACE, root may open /proc/PID/mem of a dumpable
    // process with no more capabilities than itself, and not of a
    // non-dumpable one. Both sides drop CAP_SYS_PTRACE; the child (dumpable,
    // like any freshly exec'd program) is the control.
    need("setpriv");
    let no_ptrace = ["setpriv", "--bounding-set", "-sys_ptrace"];
    for mode in MODES {
        let argv = agent_argv_via(mode, &no_ptrace, &["--supervise"], &["sleep", "600"]);
        let mut agent = Agent::start(mode, command(&argv));
        let child = agent.command_pid("sleep");
        agent.wait_idle();
        let can_open_mem = |pid: i32| {
            let script = format!("exec 3</proc/{pid}/mem");
            let mut probe: Vec<&str> = no_ptrace.to_vec();
            probe.extend(["sh", "-c", &script]);
            let mut c = command(&os(&probe));
            c.stderr(Stdio::null());
            run(c, "open /proc/PID/mem").success()
        };
        assert!(
            can_open_mem(child),
            "{mode:?}: control: the dumpable child's memory opens"
        );
        assert!(
            !can_open_mem(agent.raw()),
            "{mode:?}: agent-init is non-dumpable"
        );
        assert_eq!(agent.stop(), Some(143));
    }
}
