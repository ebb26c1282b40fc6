//! An agent-init the test started and keeps talking to ([`Harness::start`]):
//! its output collected line by line as it comes, waits that are hang
//! guards (never timing assertions), signals, and a drop that leaves no
//! process of the run behind.
//!
//! [`Harness::start`]: super::Harness::start

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a wait on a started run may last before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Lines of one output stream, shared with the thread that reads them.
type Lines = Arc<Mutex<Vec<String>>>;

/// A started agent-init.
pub struct Running {
    pub child: Child,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
    /// The run's working directory: what still runs in it when the test
    /// ends is the run's.
    dir: PathBuf,
}

impl Running {
    /// Takes over `child` (stdout and stderr piped), started in `dir`.
    pub fn new(mut child: Child, dir: PathBuf) -> Running {
        let (stdout, stderr) = (Lines::default(), Lines::default());
        let readers = vec![
            collect(child.stdout.take(), &stdout),
            collect(child.stderr.take(), &stderr),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
            dir,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// agent-init's stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// agent-init's stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until `n` stderr lines contain `needle`; fails after
    /// [`PATIENCE`] naming `what`.
    pub fn wait_line(&self, what: &str, needle: &str, n: usize) {
        super::wait_until(
            PATIENCE,
            || self.stderr().iter().filter(|l| l.contains(needle)).count() >= n,
            || {
                format!(
                    "waited in vain for {what} ({needle:?}): {:#?}",
                    self.stderr()
                )
            },
        );
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    pub fn sigterm(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Whether agent-init still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for agent-init to exit and for its output to be read (as long
    /// as nothing else holds the pipes); its exit code, -1 for a signal.
    pub fn wait(&mut self) -> i32 {
        let mut status = None;
        let (child, stderr) = (&mut self.child, &self.stderr);
        super::wait_until(
            PATIENCE,
            || {
                status = child.try_wait().unwrap();
                status.is_some()
            },
            || format!("agent-init did not exit: {:#?}", stderr.lock().unwrap()),
        );
        let t0 = Instant::now();
        while !self.readers.iter().all(JoinHandle::is_finished)
            && t0.elapsed() < Duration::from_millis(200)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        status.and_then(|s| s.code()).unwrap_or(-1)
    }
}

impl Drop for Running {
    /// Kills agent-init, then every process still running in the run's
    /// directory with its group (a SIGKILLed supervisor that is not PID 1
    /// leaves its children to init): a failed or finished test leaves no
    /// agent behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in in_directory(&self.dir) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Reads `pipe` into `lines` on a thread of its own.
fn collect(pipe: Option<impl Read + Send + 'static>, lines: &Lines) -> JoinHandle<()> {
    let lines = Arc::clone(lines);
    std::thread::spawn(move || {
        if let Some(pipe) = pipe {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        }
    })
}

/// The processes whose working directory is `dir`.
fn in_directory(dir: &std::path::Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .as_deref()
                == Some(dir)
        })
        .collect()
}
