//! Reaping: orphaned grandchildren, many short-lived children, and an
//! inherited SIGCHLD ignore.

use super::*;

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_hundred_orphaned_grandchildren_are_all_reaped() {
    for mode in MODES {
        let dir = support::scratch("orphans");
        let ready = dir.join("ready");
        let script = format!(
            "( for i in $(seq 100); do sleep 600 & done ); : > {}; exec sleep 600",
            ready.display()
        );
        let mut agent = Agent::start(
            mode,
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", &script])),
        );
        until("the orphans", || ready.exists());
        let main = agent.command_pid("sleep");
        // The subshell has exited, so its 100 children are orphans: the
        // kernel gave them to agent-init (PID 1, or the nearest subreaper).
        let orphans: Vec<i32> = wait_for("100 orphans adopted by agent-init", || {
            let c: Vec<i32> = children(agent.raw())
                .into_iter()
                .filter(|&p| p != main)
                .collect();
            (c.len() >= 100).then_some(c)
        });
        assert_eq!(orphans.len(), 100, "{mode:?}");
        // Their deaths raise SIGCHLDs that coalesce.
        for &p in &orphans {
            kill(Pid::from_raw(p), Signal::SIGTERM).unwrap();
        }
        until("agent-init to reap every orphan", || {
            children(agent.raw()) == [main]
        });
        for &p in &orphans {
            assert!(stat(p).is_none(), "{mode:?}: orphan {p} left behind");
        }
        assert!(agent.running());
        assert_eq!(agent.stop(), Some(143), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn hundreds_of_short_lived_children_never_hang_agent_init() {
    for mode in MODES {
        // 500 children, each leaving an orphan that dies at about the same
        // time as the next child: SIGCHLDs coalesce all the way.
        let script =
            "i=0; while [ $i -lt 500 ]; do sh -c 'sleep 0.001 & exit 0'; i=$((i+1)); done; exit 42";
        let st = run(
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", script])),
            "500 short-lived children",
        );
        assert_eq!(st.code(), Some(42), "{mode:?}");
        // catatonit #4: the main child and an orphan end together, one SIGCHLD.
        for _ in 0..100 {
            let script = "sh -c 'sleep 0.01 & kill -9 $$'; sleep 0.0087; exit 3";
            let mut cmd = command(&agent_argv(mode, &["--supervise"], &["sh", "-c", script]));
            cmd.stderr(Stdio::null()); // sh reports the killed child
            let st = run(cmd, "a main child ending with an orphan");
            assert_eq!(st.code(), Some(3), "{mode:?}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn an_inherited_sigchld_ignore_neither_hangs_supervise_mode_nor_hides_the_status() {
    // With SIGCHLD ignored the kernel reaps children itself and their status
    // is lost: agent-init must reset it for itself (and only for itself).
    let py = python().to_string_lossy().into_owned();
    for mode in MODES {
        let report = support::scratch("sigchld-ignored").join("inherited");
        let argv = agent_argv_via(
            mode,
            &[
                &py,
                &helper("with_signal_state.py"),
                "17",
                "",
                "-",
                report.to_str().unwrap(),
            ],
            &["--supervise"],
            // Not sh: dash resets SIGCHLD for itself.
            &[
                &py,
                "-c",
                "import sys; print(open('/proc/self/status').read()); sys.exit(7)",
            ],
        );
        let mut cmd = command(&argv);
        cmd.stdout(Stdio::piped());
        let out = {
            let mut child = cmd.spawn().unwrap();
            let st = wait_guarded(&mut child, "SIGCHLD ignored by the parent");
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            (st, s)
        };
        assert_eq!(out.0.code(), Some(7), "{mode:?}");
        let inherited = sigmask(&fs::read_to_string(&report).unwrap(), "SigIgn");
        assert_ne!(
            inherited & bits(&[17]),
            0,
            "{mode:?}: SIGCHLD arrived ignored"
        );
        assert_ne!(
            sigmask(&out.1, "SigIgn") & bits(&[17]),
            0,
            "{mode:?}: the child still inherits SIGCHLD ignored"
        );
    }
}
