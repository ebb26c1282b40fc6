//! Exit status: the command's own code, 126/127 for a command that cannot
//! start, and 128 + N for a forwarded signal with its default action.

use super::*;

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn exit_status_is_the_commands_own_for_every_code_0_to_255() {
    for mode in MODES {
        for code in 0..=255 {
            let script = format!("exit {code}");
            let argv = agent_argv(mode, &["--supervise"], &["sh", "-c", &script]);
            let st = run(command(&argv), &format!("exit {code} ({mode:?})"));
            assert_eq!(st.code(), Some(code), "{mode:?}: sh -c 'exit {code}'");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_command_that_cannot_start_is_127_or_126_and_agent_init_does_not_hang() {
    for mode in MODES {
        for (cmd, code, why) in [
            ("/nonexistent/agent", 127, "No such file or directory"),
            ("/etc", 126, "Permission denied"),
        ] {
            let c = command(&agent_argv(mode, &["--supervise"], &[cmd]));
            let (st, _, err) = output_guarded(c, "spawn failure");
            assert_eq!(st.code(), Some(code), "{mode:?}: {cmd}: {err}");
            assert!(err.contains(&format!("{cmd}: {why}")), "{mode:?}: {err}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn forwarded_signals_with_default_action_give_128_plus_n() {
    let table = [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
        (Signal::SIGQUIT, 131),
        (Signal::SIGUSR1, 138),
        (Signal::SIGUSR2, 140),
    ];
    let dir = support::scratch("default-action");
    for mode in MODES {
        for flags in [&["--supervise"][..], &["--supervise", "--signal-child"]] {
            for (sig, code) in table {
                // `sleep` keeps every default action; the cwd takes any core file.
                let mut cmd = command(&agent_argv(mode, flags, &["sleep", "600"]));
                cmd.current_dir(&dir);
                let mut agent = Agent::start(mode, cmd);
                // Sent before the child runs, the signal would end agent-init
                // through its early handler, with the same code.
                agent.command_pid("sleep");
                agent.wait_idle();
                agent.signal(sig as i32);
                assert_eq!(agent.wait().code(), Some(code), "{mode:?} {flags:?} {sig}");
            }
        }
    }
}
