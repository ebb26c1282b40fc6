//! The one fixture of the integration suites: one agent-init run's scratch
//! directory, the marker its command creates when it starts, the file that
//! command writes its exact environment to, agent-init's environment, and
//! what must never be printed. Suites build their own constructors on it
//! (a production run with a token and a server, a local run with dotenv
//! files) and check a run with [`Harness::assert_failed`] (PROTOCOL.md §8)
//! or [`Harness::assert_succeeded`].

use super::forbidden::Forbidden;
use super::running::Running;
use super::{bin, capture_command, read_captured, scratch, Run, PATH};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Harness {
    /// agent-init's working directory.
    pub dir: PathBuf,
    /// Created by the capture command when it starts. It and [`Harness::out`]
    /// live outside the working directory, so they never look like files
    /// agent-init could read.
    pub marker: PathBuf,
    /// The capture command's environment block, byte for byte.
    pub out: PathBuf,
    /// agent-init's environment, over `PATH` only.
    pub env: Vec<(String, OsString)>,
    /// Strings no output of the run may contain.
    pub forbidden: Forbidden,
    side: PathBuf,
    keep: bool,
    /// More directories the run made, removed when it goes.
    also: Vec<PathBuf>,
}

impl Harness {
    /// A fresh scratch directory and an environment of `PATH` only.
    pub fn new(name: &str) -> Harness {
        let dir = scratch(name);
        let side = scratch(&format!("{name}-side"));
        Harness {
            marker: side.join("started"),
            out: side.join("environ"),
            dir,
            side,
            env: Vec::new(),
            forbidden: Forbidden::new(),
            keep: false,
            also: Vec::new(),
        }
    }

    /// Sets (or replaces) a variable of agent-init's environment.
    pub fn set(&mut self, name: &str, value: impl Into<OsString>) -> &mut Harness {
        self.unset(name);
        self.env.push((name.to_string(), value.into()));
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Harness {
        self.env.retain(|(n, _)| n != name);
        self
    }

    /// Adds strings that must not appear in agent-init's output.
    pub fn forbid(&mut self, values: &[&str]) -> &mut Harness {
        for v in values {
            self.forbidden.add(*v);
        }
        self
    }

    /// Writes `content` to `name` in the working directory.
    pub fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Keeps the directories after the run (for a look at a failure that
    /// did not panic).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// The command that records it started and captures its environment.
    pub fn capture(&self) -> Vec<OsString> {
        capture_command(&self.marker, &self.out)
    }

    /// `program args…` with agent-init's environment, in the working
    /// directory, output captured, and the early signals at their default
    /// action whatever the test runner inherited.
    // The test crates' one `unsafe`: `pre_exec` (Cargo.toml denies `unsafe_code`).
    #[allow(unsafe_code)]
    pub fn command(&self, program: impl AsRef<OsStr>, args: &[OsString]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", PATH)
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the closure only calls sigaction,
        // which is async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                use nix::sys::signal::{signal, SigHandler, Signal};
                for sig in [
                    Signal::SIGTERM,
                    Signal::SIGINT,
                    Signal::SIGHUP,
                    Signal::SIGQUIT,
                ] {
                    signal(sig, SigHandler::SigDfl)?;
                }
                Ok(())
            });
        }
        cmd
    }

    /// agent-init with this environment, as a [`Run`] to add to.
    pub fn agent(&self) -> Run {
        Run {
            cmd: self.command(bin(), &[]),
        }
    }

    /// Runs agent-init with `args`.
    pub fn run_with(&self, args: &[OsString]) -> Output {
        self.command(bin(), args).output().expect("agent-init runs")
    }

    /// Runs agent-init with the capture command.
    pub fn run(&self) -> Output {
        self.run_with(&self.capture())
    }

    /// Starts agent-init with the capture command, without waiting.
    pub fn spawn(&self) -> Child {
        self.command(bin(), &self.capture())
            .spawn()
            .expect("agent-init starts")
    }

    /// Starts agent-init with `args`, without waiting, its output
    /// collected line by line.
    pub fn start<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let child = self
            .command(bin(), &[])
            .args(args)
            .spawn()
            .expect("agent-init starts");
        Running::new(child, self.dir.clone())
    }

    /// Runs `agent-init seal args…` in the working directory.
    pub fn seal(&self, args: &[&str]) -> Output {
        self.agent().args(["seal"]).args(args).output()
    }

    /// `tool args… agent-init capture…`: agent-init with the capture
    /// command under a wrapper that execs it (prlimit, strace, unshare), with
    /// this run's environment and directory.
    pub fn under(&self, tool: &str, args: &[&str]) -> Command {
        let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        argv.push(bin().into());
        argv.extend(self.capture());
        self.command(super::system_tool(tool), &argv)
    }

    /// `sh -c script sh args…` in a private mount namespace (root; with
    /// this run's environment and directory), so that the script may mount
    /// over `/dev` and the like without touching the real ones.
    pub fn in_private_mount(&self, script: &str, args: &[OsString]) -> Command {
        let mut argv: Vec<OsString> = [
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        argv.extend(args.iter().cloned());
        self.command(super::system_tool("unshare"), &argv)
    }

    /// Runs agent-init with `args` in a private mount namespace (root)
    /// whose `/dev` is a fresh tmpfs holding an empty `termination-log`;
    /// returns the output and what agent-init wrote there.
    pub fn run_with_termination_log(&self, args: &[OsString]) -> (Output, String) {
        let copy = self.side.join("termination-log");
        let script = r#"
            copy=$1; shift
            mount -t tmpfs tmpfs /dev || exit 99
            : > /dev/termination-log
            "$@"
            code=$?
            cat /dev/termination-log > "$copy"
            exit $code
        "#;
        let mut argv: Vec<OsString> = vec![copy.clone().into(), bin().into()];
        argv.extend(args.iter().cloned());
        let out = self
            .in_private_mount(script, &argv)
            .output()
            .expect("unshare runs");
        let log = std::fs::read_to_string(&copy).unwrap_or_else(|e| {
            panic!(
                "no termination log ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, log)
    }

    /// Whether the command started.
    pub fn started(&self) -> bool {
        self.marker.exists()
    }

    /// The failure invariants: exit `code`, the command never started,
    /// every stderr line prefixed, nothing forbidden printed.
    pub fn assert_failed(&self, out: &Output, code: i32) {
        super::assert_failed_at(out, code, &self.marker, &self.forbidden);
    }

    /// The success invariants: exit 0, the command ran, nothing forbidden
    /// printed; returns the command's environment, sorted.
    pub fn assert_succeeded(&self, out: &Output) -> Vec<Vec<u8>> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "exit status; stderr: {stderr}");
        assert!(self.started(), "the command ran; stderr: {stderr}");
        self.forbidden.assert_not_printed(out);
        let mut env = self.captured();
        env.sort();
        env
    }

    /// The command's environment, in its order.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        read_captured(&self.out)
    }

    /// The directory beside the working one that holds [`Harness::marker`]
    /// and [`Harness::out`] (a container test mounts it where its agent
    /// writes them).
    pub fn side(&self) -> &Path {
        &self.side
    }

    /// Removes the directory `path` (a files directory agent-init made on
    /// /dev/shm, say) when the harness goes, even after a failure: such a
    /// directory holds secrets, in memory.
    pub fn remove_too(&mut self, path: impl Into<PathBuf>) {
        self.also.push(path.into());
    }
}

impl Drop for Harness {
    /// Removes the run's directories (a chroot holds a copy of the binary),
    /// but keeps them when the test failed, for a look; removes those of
    /// [`Harness::remove_too`] in any case.
    fn drop(&mut self) {
        if !self.keep && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_dir_all(&self.side);
        }
        for p in &self.also {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// `NAME=VALUE` byte strings, one a line; a long one shortened to its head
/// and length.
pub fn show_environment(env: &[Vec<u8>]) -> String {
    env.iter()
        .map(|v| {
            let s = String::from_utf8_lossy(v);
            if s.len() > 80 {
                let head: String = s.chars().take(80).collect();
                format!("{head}… ({} bytes)", v.len())
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts two whole environments are equal, showing both when not.
pub fn assert_environment(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert!(
        got == want,
        "the command's environment differs\n--- got:\n{}\n--- want:\n{}",
        show_environment(got),
        show_environment(want)
    );
}
