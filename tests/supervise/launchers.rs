//! Stopping through a launcher (`pnpm start`, `sh -c`): the agent's drain is
//! not cut short, and a command exiting on its own ends agent-init at once.

use super::*;

/// A program that logs `ready`, and on SIGTERM logs `draining`, takes a
/// moment, logs `drained` and exits 0: an agent that drains its jobs.
const DRAINER: &str = "
import signal, sys, time
log = sys.argv[1]
def note(s):
    with open(log, 'a') as f:
        f.write(s + '\\n')
def stop(n, f):
    note('draining')
    time.sleep(0.3)
    note('drained')
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note('ready')
while True:
    time.sleep(1)
";

/// agent-init in `mode` with `flags` running `sh -c '[DRAINER] & wait'`:
/// once the drainer is ready and agent-init idle, a SIGTERM to agent-init;
/// its exit code, and the drainer's log.
fn stop_through_sh(mode: Mode, flags: &[&str], name: &str) -> (Option<i32>, String) {
    let py = python().to_string_lossy().into_owned();
    let log = support::scratch(name).join("log");
    let script = format!("'{py}' -c \"$1\" '{}' & wait", log.display());
    let argv = agent_argv(mode, flags, &["sh", "-c", &script, "sh", DRAINER]);
    let mut agent = Agent::start(mode, command(&argv));
    until("the agent to start", || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
    });
    agent.wait_idle();
    agent.signal(Signal::SIGTERM as i32);
    let code = agent.wait().code();
    (code, fs::read_to_string(&log).unwrap())
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_launcher_killed_by_sigterm_does_not_cut_its_agents_drain_short() {
    // `sh` dies of SIGTERM inside `wait` at once, as pnpm does; the agent in
    // its group drains. agent-init exits with sh's status, only once the
    // group is empty: the drain is complete when it exits.
    for mode in MODES {
        let (code, l) = stop_through_sh(mode, &["--supervise"], "launcher");
        assert_eq!(code, Some(143), "{mode:?}: sh's own status");
        assert!(
            l.contains("drained"),
            "{mode:?}: the agent finished draining: {l}"
        );
    }
    // The control: with --signal-child only sh is signalled, and agent-init
    // exits with it at once (as PID 1, taking the agent with it).
    let (code, l) = stop_through_sh(Pid1, &["--supervise", "--signal-child"], "launcher-child");
    assert_eq!(code, Some(143));
    assert!(!l.contains("draining"), "the agent was not signalled: {l}");
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn a_command_exiting_on_its_own_ends_agent_init_at_once_as_tini_does() {
    // A process left in the command's group does not hold agent-init up when
    // no stop is under way (a crashed agent must restart, not linger).
    for mode in MODES {
        let dir = support::scratch("exit-at-once");
        let pidfile = dir.join("pid");
        let script = format!("sleep 600 & echo $! > {}; exit 4", pidfile.display());
        let st = run(
            command(&agent_argv(mode, &["--supervise"], &["sh", "-c", &script])),
            "a command that leaves a process behind",
        );
        if let Ok(p) = fs::read_to_string(&pidfile) {
            if mode == Subreaper {
                let _ = kill(Pid::from_raw(p.trim().parse().unwrap()), Signal::SIGKILL);
            }
        }
        assert_eq!(st.code(), Some(4), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn pnpm_start_under_supervise_lets_the_agent_drain_and_exec_does_not() {
    need("node");
    need("pnpm");
    let agent_js = "
const fs = require('fs');
const note = (s) => fs.appendFileSync(process.env.DRAIN_LOG, s + '\\n');
process.on('SIGTERM', () => {
  note('draining');
  setTimeout(() => { note('drained'); process.exit(0); }, 300);
});
note('ready');
setInterval(() => {}, 1000);
";
    // (mode, flags, whether the drain completes)
    let cases: [(Mode, &[&str], bool); 3] = [
        (Pid1, &["--supervise"], true),
        (Subreaper, &["--supervise"], true),
        // In exec mode pnpm is PID 1 and exits at once on SIGTERM: the
        // kernel ends the agent mid-drain. This is why supervise exists.
        (Pid1, &[], false),
    ];
    for (mode, flags, drains) in cases {
        let dir = support::scratch("pnpm");
        fs::write(
            dir.join("package.json"),
            r#"{"name": "drain", "version": "1.0.0", "private": true, "scripts": {"start": "node agent.js"}}"#,
        )
        .unwrap();
        fs::write(dir.join("agent.js"), agent_js).unwrap();
        let log = dir.join("log");
        let mut cmd = command(&agent_argv(mode, flags, &["pnpm", "start"]));
        cmd.current_dir(&dir)
            .env("HOME", &dir)
            .env("DRAIN_LOG", &log)
            .env("npm_config_update_notifier", "false");
        let mut agent = Agent::start(mode, cmd);
        until("the node agent to start", || {
            fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
        });
        agent.signal(Signal::SIGTERM as i32);
        let st = agent.wait();
        let l = fs::read_to_string(&log).unwrap();
        assert!(
            l.contains("draining"),
            "{mode:?} {flags:?}: SIGTERM reached node: {l}"
        );
        assert_eq!(
            l.contains("drained"),
            drains,
            "{mode:?} {flags:?}: {st}: {l}"
        );
        if drains {
            assert_eq!(st.code(), Some(143), "{mode:?}: pnpm's own status");
        }
    }
}
