//! The real LiveKit workers of `examples/` in the images: the Python image
//! with the example agent and its installed packages mounted in (the host's
//! venv, the same Python 3.11 ABI), the Node image with the example agent,
//! its node_modules and the host's Node 20 (@livekit/agents needs it; the
//! Debian base has 18). No LiveKit server is reachable (--network=none): the
//! workers keep trying to connect, and meanwhile start their idle job
//! processes, whose prewarm reads the credentials file (examples/*/agent.*).

use super::file_secrets::{
    assert_left_as_the_mode_says, hardened, host_files_dir, host_shm, sealed_with_file,
};
use super::*;
use support::bundle::CREDENTIALS_FILE;

/// The host's installed example agents (scripts/test.sh installs them).
fn example_agent(dir: &str, needs: &str, how: &str) -> PathBuf {
    let dir = repo().join("examples").join(dir);
    assert!(
        dir.join(needs).exists(),
        "{} is missing: run `bash scripts/test.sh` (it runs `{how}`)",
        dir.join(needs).display()
    );
    dir
}

/// `podman run` flags and command that run the real worker of `lang`.
fn real_worker(lang: Lang) -> (Vec<String>, Vec<&'static str>) {
    match lang {
        Lang::Python => {
            let dir = example_agent(
                "python-agent",
                ".venv/lib/python3.11/site-packages/livekit/agents",
                "pip install -r requirements.txt in examples/python-agent/.venv",
            );
            let flags = vec![
                "-v".into(),
                format!(
                    "{}:/app/.venv/lib/python3.11/site-packages:ro",
                    dir.join(".venv/lib/python3.11/site-packages").display()
                ),
                "-v".into(),
                format!("{}:/app/agent.py:ro", dir.join("agent.py").display()),
                // Python's multiprocessing (the worker's job processes)
                // needs a temporary directory: under a read-only root the
                // README tells the user to add this.
                "--tmpfs".into(),
                "/tmp".into(),
            ];
            let cmd = vec!["python", "agent.py", "start", "--drain-timeout", "30"];
            (flags, cmd)
        }
        Lang::Node => {
            let dir = example_agent(
                "node-agent",
                "dist/agent.js",
                "pnpm install and pnpm build in examples/node-agent",
            );
            assert!(dir.join("node_modules/@livekit/agents").exists());
            let node = check(
                Command::new("sh").args(["-c", "readlink -f \"$(command -v node)\""]),
                "finding the host's node",
            );
            let node = String::from_utf8_lossy(&node.stdout).trim().to_string();
            let flags = vec![
                "-v".into(),
                format!("{node}:/usr/local/bin/node:ro"),
                "-v".into(),
                format!("{}:/app:ro", dir.display()),
                "-e".into(),
                "AGENT_DRAIN_TIMEOUT=30".into(),
                "-e".into(),
                "AGENT_IDLE_PROCESSES=1".into(),
                "-e".into(),
                "LOG_LEVEL=debug".into(),
            ];
            (flags, vec!["node", "dist/agent.js", "start"])
        }
    }
}

/// The worker's main process inside the container: PID 1 in exec mode, the
/// child of agent-init in supervise mode (agent-init is PID 1 and starts the
/// worker first: the next PID).
fn worker_pid(mode: Mode) -> i64 {
    match mode {
        Mode::Exec => 1,
        Mode::Supervise => 2,
    }
}

/// Waits for a job process's prewarm line in `container`'s logs, which
/// names exactly the sealed SHA-256, and checks it came from a process the
/// worker started, not the worker's main one.
fn assert_a_job_process_read_the_file(container: &Container, h: &Harness, worker: i64) {
    let id = h.token().id_b64();
    let (line, pid, ppid) = support::wait_for(
        PATIENCE * 2,
        Duration::from_millis(250),
        || bundle::prewarm_read(&container.logs(), &id),
        || {
            format!(
                "no job process read the credentials; logs:\n{}",
                container.logs()
            )
        },
    );
    assert_ne!(pid, worker, "read in a job process, not the worker: {line}");
    assert!(ppid >= worker, "a job process the worker started: {line}");
}

/// The real worker of `lang` in its image, hardened, in `mode`: a job
/// process reads the credentials file while the worker runs; after `podman
/// stop` the file is left or removed as `mode` says, and nothing secret was
/// logged.
fn real_worker_reads_the_file_secret(lang: Lang, mode: Mode) {
    // One real worker at a time: @livekit/agents gives a job process 10 s
    // to start, which two workers starting together on a busy 2-core
    // machine can miss.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("real-{}-{}", lang.name(), mode.name());
    let mut h = sealed_with_file(&name);
    mode.set(&mut h);
    let (worker_flags, cmd) = real_worker(lang);
    let mut flags = hardened();
    flags.extend(self::flags(&h));
    flags.extend(host_shm(&mut h));
    flags.extend(worker_flags);
    let c = Container::start(&name, &flags, lang.image(images()), &cmd);
    assert_a_job_process_read_the_file(&c, &h, worker_pid(mode));
    assert!(
        host_files_dir(&h).join(CREDENTIALS_FILE).exists(),
        "the file is there while the worker runs"
    );
    c.stop(60);
    // The workers log the URL they fail to reach: not a secret, and not
    // forbidden.
    let logs = c.logs();
    h.forbidden.assert_not_in("the logs", &logs);
    assert_left_as_the_mode_says(&h, mode);
}

crate::ignored_tests! { "needs root, podman and the example agents (scripts/test.sh installs them)"; real_worker_reads_the_file_secret:
    real_python_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_exec(Lang::Python, Mode::Exec);
    real_python_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_supervise(Lang::Python, Mode::Supervise);
    real_node_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_exec(Lang::Node, Mode::Exec);
    real_node_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_supervise(Lang::Node, Mode::Supervise);
}
