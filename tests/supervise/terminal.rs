//! A terminal: Ctrl-C reaches the agent once, and bash under agent-init has
//! job control.

use super::*;

/// A pseudo-terminal whose output a thread collects.
struct Pty {
    master: fs::File,
    slave: PathBuf,
    output: Arc<Mutex<Vec<u8>>>,
    closed: std::sync::mpsc::Receiver<()>,
}

impl Pty {
    fn open() -> Pty {
        use nix::fcntl::OFlag;
        let m = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .expect("posix_openpt");
        nix::pty::grantpt(&m).unwrap();
        nix::pty::unlockpt(&m).unwrap();
        let slave = PathBuf::from(nix::pty::ptsname_r(&m).unwrap());
        let master = fs::File::from(std::os::fd::OwnedFd::from(m));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut r, out) = (master.try_clone().unwrap(), output.clone());
        let (tx, closed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process holds the slave.
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(());
        });
        Pty {
            master,
            slave,
            output,
            closed,
        }
    }

    /// `argv` as the session leader of this terminal, its controlling
    /// terminal on stdin, stdout and stderr, as `docker run -it` does.
    fn command(&self, argv: Vec<OsString>) -> Command {
        need("setsid");
        let mut c = command(&wrapped(&["setsid", "--ctty"], argv));
        let open = || {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(&self.slave)
                .unwrap()
        };
        c.stdin(open()).stdout(open()).stderr(open());
        c
    }

    fn write(&self, bytes: &[u8]) {
        (&self.master).write_all(bytes).unwrap();
    }

    /// Everything written so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Everything written, once every process has closed the terminal.
    fn all_text(&self) -> String {
        self.closed
            .recv_timeout(PATIENCE)
            .expect("the terminal closes once its processes are gone");
        self.text()
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn ctrl_c_on_a_terminal_reaches_the_agent_exactly_once() {
    for mode in MODES {
        for flags in [&["--supervise"][..], &["--supervise", "--signal-child"]] {
            let pty = Pty::open();
            let rec = Recorder::new("ctrl-c");
            let mut agent = Agent::start(
                mode,
                pty.command(agent_argv(mode, flags, &strs(&rec.argv()))),
            );
            rec.wait_ready();
            agent.wait_idle();
            let child = agent.command_pid(&python_comm());
            let c = stat(child).unwrap();
            let a = stat(agent.raw()).unwrap();
            assert_eq!(
                c.tpgid, c.pgrp,
                "{mode:?} {flags:?}: the child's group holds the terminal's foreground"
            );
            assert_ne!(
                a.pgrp, c.pgrp,
                "{mode:?} {flags:?}: agent-init is outside the foreground group, so the terminal does not signal it too"
            );

            pty.write(b"\x03");
            let int = Signal::SIGINT as i32;
            rec.wait_count(int, 1);
            agent.signal(Signal::SIGUSR1 as i32); // barrier
            rec.wait_count(Signal::SIGUSR1 as i32, 1);
            assert_eq!(
                rec.count(int),
                1,
                "{mode:?} {flags:?}: one SIGINT per Ctrl-C"
            );
            rec.stop();
            assert_eq!(agent.wait().code(), Some(0), "{mode:?} {flags:?}");
        }
    }
}

#[test]
#[ignore = "needs root: agent-init as PID 1 of a new PID namespace, and /proc of the non-dumpable agent-init"]
fn bash_under_agent_init_on_a_terminal_has_job_control() {
    need("bash");
    for mode in MODES {
        // Non-interactive, as in `CMD ["bash", "-mc", ...]`.
        let pty = Pty::open();
        let script = "set -o | grep -w monitor; sleep 0.1 & jobs; wait; exit 5";
        let mut agent = Agent::start(
            mode,
            pty.command(agent_argv(
                mode,
                &["--supervise"],
                &["bash", "--norc", "--noprofile", "-mc", script],
            )),
        );
        assert_eq!(agent.wait().code(), Some(5), "{mode:?}: {}", pty.text());
        let out = pty.all_text();
        let monitor = out.lines().find(|l| l.starts_with("monitor")).unwrap_or("");
        assert!(monitor.trim_end().ends_with("on"), "{mode:?}: {out}");
        assert!(out.contains("[1]+"), "{mode:?}: jobs lists the job: {out}");
        assert!(!out.contains("job control"), "{mode:?}: {out}");
        assert!(!out.contains("terminal process group"), "{mode:?}: {out}");

        // Interactive, as in `docker run -it IMAGE bash`.
        let pty = Pty::open();
        let mut agent = Agent::start(
            mode,
            pty.command(agent_argv(
                mode,
                &["--supervise"],
                &["bash", "--norc", "--noprofile", "-i"],
            )),
        );
        pty.write(b"echo \"flags:$-:end\"; exit 6\n");
        assert_eq!(agent.wait().code(), Some(6), "{mode:?}: {}", pty.text());
        let out = pty.all_text();
        let flags = out
            .lines()
            .filter_map(|l| l.split("flags:").nth(1))
            .find(|f| !f.starts_with('$'))
            .unwrap_or_else(|| panic!("{mode:?}: no flags line: {out}"));
        assert!(
            flags.split(":end").next().unwrap().contains('m'),
            "{mode:?}: {out}"
        );
        assert!(!out.contains("job control"), "{mode:?}: {out}");
        assert!(!out.contains("terminal process group"), "{mode:?}: {out}");
    }
}
