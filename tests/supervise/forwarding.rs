//! Signal forwarding: every catchable signal once, job control, faults never
//! forwarded, process groups and `--signal-child`.

use super::*;

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn every_catchable_signal_reaches_a_handling_child_exactly_once_and_sigchld_never() {
    for mode in MODES {
        let (rec, mut agent) = recording(mode, "every-signal");

        let mut forwarded = Vec::new();
        for n in 1..=31 {
            if n == Signal::SIGKILL as i32 || n == Signal::SIGSTOP as i32 {
                continue; // cannot be caught, so cannot be forwarded
            }
            if FAULTS.contains(&n) {
                continue; // see fault_signals_* below
            }
            if JOB_STOPS.contains(&n) {
                continue; // agent-init stops itself: see job_control_* below
            }
            agent.signal(n);
            if n != Signal::SIGCHLD as i32 {
                rec.wait_count(n, 1);
                forwarded.push(n);
            }
        }
        // A barrier: agent-init forwards in order, so anything it sent
        // before this (a duplicate, a SIGCHLD) reached the child before it.
        let rtmin = nix::libc::SIGRTMIN();
        agent.signal(rtmin);
        rec.wait_count(rtmin, 1);

        let counts = rec.counts();
        for n in &forwarded {
            assert_eq!(counts.get(n), Some(&1), "{mode:?}: signal {n} arrives once");
        }
        assert_eq!(
            counts.get(&(Signal::SIGCHLD as i32)),
            None,
            "{mode:?}: SIGCHLD is never forwarded"
        );
        assert_eq!(forwarded.len(), 18, "{mode:?}: {forwarded:?}");
        assert!(agent.running(), "{mode:?}: agent-init survives them all");
        rec.stop();
        assert_eq!(agent.wait().code(), Some(0), "{mode:?}");
    }
}

/// What a parent waiting with `WUNTRACED | WCONTINUED` sees of `pid` next:
/// `Some(true)` stopped, `Some(false)` continued, polling until
/// [`PATIENCE`] (a parent that blocks in waitpid would hang instead).
fn wait_stopped_or_continued(pid: Pid) -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED | WaitPidFlag::WNOHANG;
    wait_for(
        "agent-init to stop or continue (waitpid WUNTRACED)",
        || match waitpid(pid, Some(flags)).expect("waitpid") {
            WaitStatus::Stopped(_, sig) => {
                assert_eq!(sig, Signal::SIGSTOP, "agent-init stops itself with SIGSTOP");
                Some(true)
            }
            WaitStatus::Continued(_) => Some(false),
            WaitStatus::StillAlive => None,
            other => panic!("agent-init neither stopped nor continued: {other:?}"),
        },
    )
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn job_control_sigtstp_sigttin_and_sigttou_stop_agent_init_and_its_child_and_sigcont_resumes_both()
{
    // dumb-init's test_shell_background_support: a shell that sends one of
    // these (Ctrl-Z, a background job touching the terminal) waits with
    // WUNTRACED until its job stops. The child keeps every default action,
    // so it stops too.
    let argv = agent_argv(Subreaper, &["--supervise"], &["sleep", "600"]);
    let mut agent = Agent::start(Subreaper, command(&argv));
    let child = agent.command_pid("sleep");
    agent.wait_idle();
    let state = |p: i32| stat(p).unwrap().state;
    for n in JOB_STOPS {
        assert!(
            matches!(state(agent.raw()), 'S' | 'R'),
            "signal {n}: agent-init runs"
        );
        agent.signal(n);
        assert!(
            wait_stopped_or_continued(agent.pid),
            "signal {n}: agent-init stops"
        );
        until(&format!("signal {n}: the child to stop"), || {
            state(child) == 'T'
        });
        assert_eq!(state(agent.raw()), 'T', "signal {n}");

        agent.signal(Signal::SIGCONT as i32);
        assert!(
            !wait_stopped_or_continued(agent.pid),
            "signal {n}: agent-init continues"
        );
        // The child continues once agent-init has forwarded SIGCONT.
        until(&format!("signal {n}: the child to continue"), || {
            matches!(state(child), 'S' | 'R')
        });
        agent.wait_idle();
    }
    assert_eq!(agent.stop(), Some(143));
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn job_control_signals_and_sigcont_are_forwarded_once_and_pid1_keeps_running() {
    // dumb-init's test_prints_signals: a child that handles the signals gets
    // each once, and the SIGCONT that resumes agent-init once. As PID 1 the
    // kernel drops the stop agent-init sends itself, so it keeps running.
    for mode in MODES {
        let (rec, mut agent) = recording(mode, "job-control");
        let cont = Signal::SIGCONT as i32;
        for (k, n) in JOB_STOPS.into_iter().enumerate() {
            agent.signal(n);
            rec.wait_count(n, 1);
            if mode == Subreaper {
                assert!(wait_stopped_or_continued(agent.pid), "signal {n}: stopped");
            } else {
                agent.wait_idle();
                assert_ne!(
                    stat(agent.raw()).unwrap().state,
                    'T',
                    "signal {n}: PID 1 runs"
                );
            }
            agent.signal(cont);
            rec.wait_count(cont, k + 1);
            if mode == Subreaper {
                assert!(
                    !wait_stopped_or_continued(agent.pid),
                    "signal {n}: continued"
                );
            }
        }
        let counts = rec.counts();
        for n in JOB_STOPS {
            assert_eq!(
                counts.get(&n),
                Some(&1),
                "{mode:?}: signal {n} arrives once"
            );
        }
        assert_eq!(
            counts.get(&cont),
            Some(&3),
            "{mode:?}: each SIGCONT arrives once"
        );
        rec.stop();
        assert_eq!(agent.wait().code(), Some(0), "{mode:?}");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn fault_signals_are_never_forwarded_dropped_by_pid1_and_deadly_otherwise() {
    // tini's behaviour: the faults are left unblocked at their default
    // action, so a real fault kills agent-init. Sent with kill, the kernel
    // drops them for a namespace's PID 1 (it has no handler), and they kill
    // agent-init when it is not PID 1.
    let (rec, mut agent) = recording(Pid1, "faults-pid1");
    for n in FAULTS {
        agent.signal(n);
    }
    agent.signal(Signal::SIGUSR1 as i32); // barrier
    rec.wait_count(Signal::SIGUSR1 as i32, 1);
    for n in FAULTS {
        assert_eq!(rec.count(n), 0, "PID 1 forwarded fault signal {n}");
    }
    assert!(
        agent.running(),
        "PID 1 survives fault signals sent with kill"
    );
    rec.stop();
    assert_eq!(agent.wait().code(), Some(0));

    for n in FAULTS {
        let (rec, mut agent) = recording(Subreaper, "faults-subreaper");
        agent.signal(n);
        let st = agent.wait();
        assert_eq!(st.signal(), Some(n), "agent-init dies of fault signal {n}");
        assert!(
            !st.core_dumped(),
            "agent-init (non-dumpable) leaves no core"
        );
        assert_eq!(rec.count(n), 0, "fault signal {n} was forwarded");
        rec.stop(); // the orphaned recorder exits on its own
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn sigterm_leaves_no_process_of_a_pipeline_behind_in_group_mode() {
    for mode in MODES {
        let (survivors, code) = pipeline(mode, &["--supervise"]);
        let names: Vec<String> = survivors.iter().map(|&(p, _)| comm(p)).collect();
        for (p, _) in &survivors {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        assert_eq!(code, Some(143), "{mode:?}: sh ends by SIGTERM");
        assert!(survivors.is_empty(), "{mode:?}: {names:?} survived");
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn with_signal_child_only_the_child_gets_sigterm_and_the_pipeline_survives() {
    // The negative control of the test above: what group mode is for.
    let (survivors, code) = pipeline(Subreaper, &["--supervise", "--signal-child"]);
    let names: Vec<String> = survivors.iter().map(|&(p, _)| comm(p)).collect();
    for (p, _) in &survivors {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    assert_eq!(code, Some(143));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["tail", "tail", "yes", "yes"], "{names:?}");
}

/// Runs dumb-init's pipeline, `sh -c 'yes | tail & yes | tail >&2'`, under
/// agent-init, SIGTERMs agent-init once all five processes run; returns the
/// ones still alive after agent-init exited (after waiting for the deaths
/// in group mode) and agent-init's status. (In the variant
/// `yes >&2 | tail`, the last tail reads an empty pipe and ends at once.)
fn pipeline(mode: Mode, flags: &[&str]) -> (Vec<(i32, u64)>, Option<i32>) {
    let argv = agent_argv(mode, flags, &["sh", "-c", "yes | tail & yes | tail >&2"]);
    let mut cmd = command(&argv);
    cmd.stderr(Stdio::null());
    let mut agent = Agent::start(mode, cmd);
    let procs = wait_for("the pipeline's five processes", || {
        let d = descendants(agent.raw());
        let n = |c: &str| d.iter().filter(|&&p| comm(p) == c).count();
        (n("yes") == 2 && n("tail") == 2 && n("sh") >= 1).then_some(d)
    });
    let procs: Vec<(i32, u64)> = procs
        .into_iter()
        .filter_map(|p| stat(p).map(|s| (p, s.starttime)))
        .collect();
    agent.wait_idle();
    agent.signal(Signal::SIGTERM as i32);
    let code = agent.wait().code();
    if !flags.contains(&"--signal-child") {
        // Signalled, they die soon; the caller kills what a failure leaves.
        let deadline = Instant::now() + PATIENCE;
        while procs.iter().any(|&(p, t)| alive(p, t)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let survivors = procs.into_iter().filter(|&(p, t)| alive(p, t)).collect();
    (survivors, code)
}
