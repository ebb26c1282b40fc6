//! Each example worker, exec'd or supervised by agent-init, registers with
//! the bundle's credentials, a job process reads the file secret, and on
//! SIGTERM it drains and exits with its own status.

use super::*;
use support::bundle::CREDENTIALS_FILE;

/// A job process of the worker (a descendant of its main process, `worker`)
/// read the credentials file through GOOGLE_APPLICATION_CREDENTIALS, and
/// what it read has exactly the SHA-256 of the bundle's decoded content.
fn assert_credentials_read_in_a_job_process(h: &Harness, agent: &Agent, worker: i32) {
    let id = h.token().id_b64();
    let (line, pid, ppid) = support::wait_for(
        PATIENCE,
        Duration::from_millis(100),
        || bundle::prewarm_read(&agent.log(), &id),
        || format!("no job process read the credentials:\n{}", agent.log()),
    );
    let (pid, ppid) = (pid as i32, ppid as i32);
    assert_ne!(
        pid, worker,
        "read in a job process, not the worker itself: {line}"
    );
    // Its parent is the worker or a process the worker started for its
    // pool (Python's multiprocessing forkserver): a descendant either way.
    // (Walked up through /proc/PID/stat: a threaded worker's children are
    // not all in its main thread's `children` list.)
    let mut chain = vec![pid, ppid];
    let mut p = ppid;
    while p != worker && p > 1 {
        p = support::procfs::stat(p).map_or(0, |s| s.ppid);
        chain.push(p);
    }
    assert_eq!(
        p, worker,
        "the job process descends from the worker ({chain:?}): {line}"
    );
}

/// The worker of `lang` in `mode`: agent-init fetched the bundle with the
/// token, the worker registered with the bundle's credentials, a job process
/// read the file secret; on SIGTERM the worker drains and exits with its own
/// status, nothing secret was printed, and the file is left in place (exec
/// mode: agent-init became the worker, nothing is left to remove it) or
/// removed once the worker exited (supervise mode).
fn worker_registers_reads_the_file_and_drains(lang: Lang, mode: Mode) {
    let (h, standin, server) = e2e(&format!("e2e-{}-{}", lang.name(), mode.name()), None);
    let mut agent = Agent::start(&h, lang, mode.flags(), lang.any_port());
    assert_fetched_with_the_token(&h, &server);
    standin.assert_registered(&lang.agent_name());
    lang.wait_until_running(&standin, &agent);
    assert_credentials_read_in_a_job_process(&h, &agent, mode.worker(&agent));
    let file = files_dir(&h).join(CREDENTIALS_FILE);
    assert!(file.exists(), "the file is there while the worker runs");

    let mark = standin.mark();
    // In supervise mode agent-init forwards it to the worker's whole group,
    // its job processes too (they ignore it: the worker shuts them down).
    let status = agent.stop();
    let log = agent.log();
    standin.assert_drained(mark, &log);
    assert_eq!(
        status.code(),
        Some(lang.drained_status()),
        "the worker's own status after a drain: {log}"
    );
    h.forbidden.assert_not_in("the output", &log);
    match mode {
        Mode::Exec => assert!(file.exists(), "exec mode leaves the file secret in place"),
        Mode::Supervise => assert!(
            !files_dir(&h).exists(),
            "supervise mode removed the file secrets when the worker exited"
        ),
    }
}

crate::ignored_tests! { "needs the LiveKit frameworks (scripts/test.sh installs them)"; worker_registers_reads_the_file_and_drains:
    python_agent_registers_with_the_bundles_credentials_and_drains_on_sigterm(Lang::Python, Mode::Exec);
    python_agent_under_supervise_drains_when_its_process_group_gets_sigterm(Lang::Python, Mode::Supervise);
    node_agent_registers_with_the_bundles_credentials_and_drains_on_sigterm(Lang::Node, Mode::Exec);
    node_agent_under_supervise_reads_the_credentials_file_in_its_job_process_and_it_is_gone_after_exit(Lang::Node, Mode::Supervise);
}
