//! What the agent in the Python image receives: exactly the bundle's
//! variables over the container's own, in exec and supervise mode; a mounted
//! `.env.local` in local mode; `--env-file` and `-e` unchanged.

use super::*;

/// A `.env.local` as `lk app env -w` writes one.
const ENV_LOCAL: &str = "# written by `lk app env -w`\n\
    LIVEKIT_URL=wss://local.example.livekit.cloud\n\
    LIVEKIT_API_KEY=APIlocal\n\
    LIVEKIT_API_SECRET=\"local secret\"\n\
    export OPENAI_API_KEY=sk-local-1\n\
    LOG_LEVEL=info\n";

/// A file for `podman run --env-file`.
const ENV_FILE: &str = "LIVEKIT_URL=wss://env-file.example.livekit.cloud\n\
    LIVEKIT_API_KEY=APIenvfile\n\
    LIVEKIT_API_SECRET=env-file-secret\n";

/// Runs the Python probe once with `h`'s flags and `extra`; it exits 0.
fn run_python_once(h: &Harness, extra: &[&str]) {
    let mut flags = flags(h);
    flags.extend(strings(extra));
    let o = run(&flags, &images().python, &Lang::Python.once());
    exited(h, &o, 0);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_runs_the_agent_as_pid_1_and_uid_10001_with_exactly_the_bundles_environment() {
    let mut h = sealed("exec-env");
    h.set("LIVEKIT_AGENT_NAME", "from-the-platform");
    h.set("AGENT_INIT_LOG", "debug");
    run_python_once(&h, &[]);

    let started = started(&h);
    assert_eq!(started["pid"], 1, "exec mode: the agent is PID 1");
    assert_eq!(started["pid1"], serde_json::json!(Lang::Python.once()));
    assert_eq!(started["uid"], 10001);
    assert_eq!(started["gid"], 10001);
    assert_eq!(started["cwd"], "/app");
    assert_bundles_environment(
        &h,
        Lang::Python,
        &["-e", "LIVEKIT_AGENT_NAME=from-the-platform"],
    );
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_under_supervise_keeps_agent_init_as_pid_1_and_the_same_environment() {
    let mut h = sealed("supervise-env");
    token_from_file(&mut h);
    Mode::Supervise.set(&mut h);
    run_python_once(&h, &[]);

    let started = started(&h);
    assert_ne!(started["pid"], 1, "supervise mode: the agent is not PID 1");
    assert_eq!(started["ppid"], 1, "its parent is PID 1");
    assert_eq!(
        started["pid1"],
        serde_json::json!([
            "/usr/local/bin/agent-init",
            "--",
            "python",
            "agent.py",
            "--once"
        ])
    );
    assert_eq!(started["uid"], 10001);
    assert_bundles_environment(&h, Lang::Python, &[]);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_in_local_mode_adds_a_mounted_env_local_under_the_containers_own_variables() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = probe("env-local");
    let file = h.file(".env.local", ENV_LOCAL);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A variable the container sets beats the file (python-dotenv's
    // `load_dotenv` does not override either).
    h.set("LOG_LEVEL", "debug");
    run_python_once(
        &h,
        &["-v", &format!("{}:/app/.env.local:ro", file.display())],
    );

    let mut expected = baseline_env(Lang::Python, &["-e", "LOG_LEVEL=debug"]);
    for v in [
        "LIVEKIT_URL=wss://local.example.livekit.cloud",
        "LIVEKIT_API_KEY=APIlocal",
        "LIVEKIT_API_SECRET=local secret",
        "OPENAI_API_KEY=sk-local-1",
    ] {
        expected.insert(v.as_bytes().to_vec());
    }
    assert_env_eq(&environ(&h), &expected);
    assert_eq!(started(&h)["pid"], 1);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_passes_env_file_and_e_variables_through_unchanged() {
    let mut h = probe("env-file");
    let env_file = h.file("agent.env", ENV_FILE);
    let env_file = env_file.display().to_string();
    let given = ["--env-file", &env_file, "-e", "OPENAI_API_KEY=sk-from-e"];
    // agent-init's own knobs are consumed, never passed on.
    h.set("AGENT_INIT_LOG", "debug");
    run_python_once(&h, &given);

    let expected = baseline_env(Lang::Python, &given);
    assert!(expected.contains(&b"OPENAI_API_KEY=sk-from-e"[..]));
    assert_env_eq(&environ(&h), &expected);
}
