//! `podman stop`: SIGTERM reaches the agent, which drains, and the container
//! exits with the agent's own code; behind a shell that keeps SIGTERM to
//! itself only supervise mode gets it there.

use super::*;

/// The probe behind a shell that never passes SIGTERM on (it has a handler,
/// `:`, and runs it only once the agent is gone) and exits with the
/// agent's status.
const SHELL_KEEPING_SIGTERM: [&str; 3] = ["sh", "-c", "trap : TERM; python agent.py start"];

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn podman_stop_drains_the_agent_and_the_container_exits_with_the_agents_code() {
    let h = sealed("stop-exec");
    let c = start_probe(&h, &images().python, &[]);
    assert_eq!(started(&h)["pid"], 1);
    assert_stop_drains(&h, &c);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn podman_stop_under_supervise_drains_the_agent_behind_a_shell_that_does_not_forward_sigterm() {
    let mut h = sealed("stop-supervise");
    Mode::Supervise.set(&mut h);
    // agent-init signals the whole process group, so the agent hears
    // SIGTERM all the same.
    let c = start_probe(&h, &images().python, &SHELL_KEEPING_SIGTERM);
    let started = started(&h);
    assert_ne!(
        started["ppid"], 1,
        "the shell sits between agent-init and the agent"
    );
    assert_eq!(started["pid1"][0], "/usr/local/bin/agent-init");
    assert_stop_drains(&h, &c);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn without_supervise_a_shell_that_does_not_forward_sigterm_leaves_the_agent_undrained() {
    // The counterpart of the test above, and the reason for --supervise: in
    // exec mode the shell is PID 1, keeps SIGTERM to itself, and the runtime
    // kills everything when the grace period ends.
    let h = sealed("stop-shell");
    let c = start_probe(&h, &images().python, &SHELL_KEEPING_SIGTERM);
    let code = c.stop(2);
    assert!(!has(&h, "drain-started"), "the agent never heard SIGTERM");
    assert_eq!(code, 137, "SIGKILL at the end of the grace period");
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn node_image_runs_node_as_pid_1_with_the_bundles_environment_and_drains_on_podman_stop() {
    let h = sealed("node");
    let c = start_probe(&h, &images().node, &[]);
    let started = started(&h);
    assert_eq!(started["pid"], 1, "exec mode: node is PID 1");
    assert_eq!(
        started["pid1"],
        serde_json::json!(["node", "dist/agent.js", "start"])
    );
    assert_eq!(started["uid"], 10001);
    assert_eq!(started["cwd"], "/app");
    assert_bundles_environment(&h, Lang::Node, &[]);
    assert_stop_drains(&h, &c);
}
