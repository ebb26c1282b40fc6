//! `--watch`: the bundle changes under a supervised agent, and agent-init
//! rolls it (`restart`, `exit`, `overlap`), refuses bad updates without
//! touching it, and keeps signals meaning what they mean during a roll.
//! The agents here are small scripts that log what happens to them; the
//! real LiveKit workers under `--watch` are in tests/agents.rs.
//!
//! Every wait is a hang guard, never a timing assertion.

mod support;

use agent_init::protocol::token::Token;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::server::{Reply, Server};

const PATIENCE: Duration = Duration::from_secs(120);

/// An agent: logs `start PID FOO PORT CRED SHA256(CRED's file)`, serves
/// 200 on `AGENT_HTTP_PORT` (when set) after `READY_DELAY` seconds, and on
/// SIGTERM logs `term PID`, drains for `DRAIN` seconds, logs `drained PID
/// SHA256(CRED's file)` (`-` when it is gone) and exits 0.
const AGENT: &str = r#"
import hashlib, http.server, os, signal, sys, threading, time
log = os.environ["AGENT_LOG"]
cred = os.environ.get("CRED", "-")
def sha():
    try:
        with open(cred, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return "-"
def note(*w):
    with open(log, "a") as f:
        f.write(" ".join(str(x) for x in w) + "\n")
def term(n, f):
    note("term", os.getpid())
    time.sleep(float(os.environ.get("DRAIN", "0")))
    note("drained", os.getpid(), sha())
    os._exit(0)
signal.signal(signal.SIGTERM, term)
note("start", os.getpid(), os.environ.get("FOO", "-"), os.environ.get("AGENT_HTTP_PORT", "-"), cred, sha())
port = os.environ.get("AGENT_HTTP_PORT")
if port:
    time.sleep(float(os.environ.get("READY_DELAY", "0")))
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"OK")
        def log_message(self, *a):
            pass
    s = http.server.HTTPServer(("127.0.0.1", int(port)), H)
    note("listening", os.getpid(), port)
    threading.Thread(target=s.serve_forever, daemon=True).start()
while True:
    time.sleep(1)
"#;

/// A scratch directory with a token file, a bundle and the agent script.
struct Bundle {
    dir: PathBuf,
    token: Token,
}

impl Bundle {
    fn new(name: &str) -> Bundle {
        let dir = support::scratch(name);
        let token = Token::generate().unwrap();
        std::fs::write(dir.join("token"), token.encode().expose()).unwrap();
        std::fs::write(dir.join("agent.py"), AGENT).unwrap();
        let b = Bundle { dir, token };
        b.write("one");
        b
    }

    fn path(&self) -> PathBuf {
        self.dir.join("bundle.json")
    }

    /// Replaces the bundle (atomically, as a ConfigMap update does) with one
    /// whose FOO is `foo`, sealed by `agent-init seal`.
    fn write(&self, value: &str) {
        self.write_with(value, "");
    }

    /// As [`Bundle::write`], with `extra` dotenv lines.
    fn write_with(&self, value: &str, extra: &str) {
        self.seal(
            &format!("LIVEKIT_URL=ws://127.0.0.1:1\nLIVEKIT_API_KEY=APIk\nLIVEKIT_API_SECRET=s-{value}\nFOO={value}\n{extra}"),
            None,
        );
    }

    /// As [`Bundle::write`], with the file secret `cred.json` holding
    /// `content`, its path in `CRED`.
    fn write_file(&self, value: &str, content: &[u8]) {
        self.seal(
            &format!("LIVEKIT_URL=ws://127.0.0.1:1\nLIVEKIT_API_KEY=APIk\nLIVEKIT_API_SECRET=s-{value}\nFOO={value}\n"),
            Some(content),
        );
    }

    /// Replaces the bundle with `dotenv` (and the file secret `cred.json`
    /// for `CRED`), sealed by `agent-init seal`.
    fn seal(&self, dotenv: &str, file: Option<&[u8]>) {
        let env = self.dir.join("secrets.env");
        std::fs::write(&env, dotenv).unwrap();
        let tmp = self.dir.join("bundle.tmp");
        let mut run = support::Run::new(&self.dir);
        run = run
            .args(["seal".as_ref(), "--secrets-file".as_ref(), env.as_os_str()])
            .args(["--out".as_ref(), tmp.as_os_str()])
            .args(["--token", self.token.encode().expose()]);
        if let Some(content) = file {
            let mounted = self.dir.join("cred.json");
            std::fs::write(&mounted, content).unwrap();
            run = run.args(["--secret-mount", &format!("CRED={}", mounted.display())]);
        }
        let out = run.output();
        assert!(out.status.success(), "seal: {out:?}");
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    /// Replaces the bundle with raw bytes.
    fn write_raw(&self, body: &str) {
        let tmp = self.dir.join("bundle.tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    fn log(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.join("agent.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').map(String::from).collect())
            .collect()
    }

    fn events(&self, what: &str) -> Vec<Vec<String>> {
        self.log().into_iter().filter(|e| e[0] == what).collect()
    }

    fn wait(&self, what: &str, pred: impl Fn(&[Vec<String>]) -> bool) {
        let t0 = Instant::now();
        while !pred(&self.log()) {
            assert!(
                t0.elapsed() < PATIENCE,
                "waited in vain for {what}: {:?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// agent-init under test, its stderr collected.
struct Init {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The bundle's directory: the agents' working directory and log.
    dir: PathBuf,
}

impl Init {
    fn start(b: &Bundle, flags: &[&str], env: &[(&str, &str)]) -> Init {
        Init::start_url(b, &format!("file://{}", b.path().display()), flags, env)
    }

    fn start_url(b: &Bundle, url: &str, flags: &[&str], env: &[(&str, &str)]) -> Init {
        let mut cmd = Command::new(support::bin());
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", b.dir.join("token"))
            .env("LIVEKIT_SECRETS_URL", url)
            .env("AGENT_LOG", b.dir.join("agent.log"))
            .envs(env.iter().copied())
            .current_dir(&b.dir)
            .args(["--supervise", "--watch", "5"])
            .args(flags)
            .args(["--", "python3", "agent.py"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        Init {
            child,
            stderr,
            dir: b.dir.clone(),
        }
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_line(&self, what: &str, needle: &str, n: usize) {
        let t0 = Instant::now();
        while self.stderr().iter().filter(|l| l.contains(needle)).count() < n {
            assert!(
                t0.elapsed() < PATIENCE,
                "waited in vain for {what} ({needle:?}): {:#?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn sigterm(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
    }

    fn wait(&mut self) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return st.code().unwrap_or(-1);
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "agent-init did not exit: {:#?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Init {
    /// Kills agent-init, then every agent generation it started that still
    /// runs (a SIGKILLed supervisor that is not PID 1 leaves its children
    /// to init): a failed or finished test leaves no worker behind. A PID
    /// is killed only while its working directory is this test's.
    fn drop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        for pid in log
            .lines()
            .filter_map(|l| l.strip_prefix("start "))
            .filter_map(|rest| rest.split(' ').next()?.parse::<i32>().ok())
        {
            if std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .as_deref()
                == Some(&self.dir)
            {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

fn pids_started(b: &Bundle) -> Vec<String> {
    b.events("start")
        .into_iter()
        .map(|e| e[1].clone())
        .collect()
}

#[test]
fn a_new_file_bundle_restarts_the_agent_once_with_the_new_environment() {
    let b = Bundle::new("watch-restart");
    let mut init = Init::start(&b, &[], &[("DRAIN", "1")]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    b.write("two");
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    let starts = b.events("start");
    assert_eq!(starts[0][2], "one");
    assert_eq!(starts[1][2], "two", "the new generation has the new FOO");
    let log = b.log();
    let first = &starts[0][1];
    let terms: Vec<_> = log.iter().filter(|e| e[0] == "term").collect();
    assert_eq!(terms.len(), 1, "exactly one SIGTERM: {log:?}");
    assert_eq!(&terms[0][1], first);
    let drained = log.iter().position(|e| e[0] == "drained").unwrap();
    let second = log.iter().rposition(|e| e[0] == "start").unwrap();
    assert!(
        drained < second,
        "restart drains first, then starts: {log:?}"
    );
    // Each step is logged with the bundle's version.
    let err = init.stderr();
    assert!(
        err.iter()
            .any(|l| l.contains("roll to bundle sha256:") && l.contains("SIGTERM to generation 0")),
        "{err:#?}"
    );
    assert!(err
        .iter()
        .any(|l| l.contains("generation 1 (bundle sha256:")));
    init.sigterm();
    assert_eq!(init.wait(), 0, "the agent's own status after its drain");
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A secrets directory of the test's own on the shared-memory tmpfs.
fn secrets_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(format!(
        "/dev/shm/agent-init-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The file names under `dir`, recursively, relative to it.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn file_secrets_roll_with_restart_the_new_generation_reads_the_new_file_and_they_go_at_the_end() {
    let b = Bundle::new("watch-files-restart");
    let dir = secrets_dir("restart");
    let (one, two) = (
        b"{\"key\": \"one\"}".as_slice(),
        b"{\"key\": \"two\"}".as_slice(),
    );
    b.write_file("one", one);
    let ds = dir.display().to_string();
    let mut init = Init::start(&b, &[], &[("DRAIN", "1"), ("AGENT_INIT_SECRETS_DIR", &ds)]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    let path = dir.join("cred.json").display().to_string();
    let first = b.events("start")[0].clone();
    assert_eq!(
        (first[4].as_str(), first[5].as_str()),
        (path.as_str(), sha256_hex(one).as_str())
    );
    // A bad update with a new file writes nothing: here its LIVEKIT_API_SECRET is missing.
    b.seal(
        "LIVEKIT_URL=ws://127.0.0.1:1\nLIVEKIT_API_KEY=APIk\nFOO=one\n",
        Some(b"never written"),
    );
    init.wait_line("the refusal", "the agent keeps running", 1);
    assert_eq!(tree(&dir), ["cred.json"]);
    assert_eq!(std::fs::read(dir.join("cred.json")).unwrap(), one);
    // Only the file changes (FOO stays "one"): that is an update too.
    b.write_file("one", two);
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    let second = b.events("start")[1].clone();
    assert_eq!(second[4], path, "restart keeps the path");
    assert_eq!(
        second[5],
        sha256_hex(two),
        "the new generation reads the new content"
    );
    let drained = b.events("drained");
    assert_eq!(drained.len(), 1);
    assert_eq!(
        drained[0][2],
        sha256_hex(one),
        "the old generation kept its file for its whole drain"
    );
    assert_eq!(b.events("term").len(), 1, "one roll: {:?}", b.log());
    // The old content is gone: one file, the new one.
    assert_eq!(tree(&dir), ["cred.json"]);
    assert_eq!(std::fs::read(dir.join("cred.json")).unwrap(), two);
    init.sigterm();
    assert_eq!(init.wait(), 0, "{:#?}", init.stderr());
    assert!(!dir.exists(), "agent-init removed the files when it exited");
}

#[test]
fn file_secrets_under_overlap_go_in_a_directory_per_generation_removed_once_it_drains() {
    let b = Bundle::new("watch-files-overlap");
    let dir = secrets_dir("overlap");
    let (one, two) = (
        b"-----BEGIN one-----".as_slice(),
        b"-----BEGIN two-----".as_slice(),
    );
    b.write_file("one", one);
    let ds = dir.display().to_string();
    let port = free_pair();
    let p = port.to_string();
    let mut init = Init::start(
        &b,
        &["--on-update", "overlap", "--health-port", &p],
        &[("DRAIN", "2"), ("AGENT_INIT_SECRETS_DIR", &ds)],
    );
    b.wait("the first generation listening", |l| {
        l.iter().any(|e| e[0] == "listening")
    });
    let first = b.events("start")[0].clone();
    assert_eq!(first[4], dir.join("0/cred.json").display().to_string());
    assert_eq!(first[5], sha256_hex(one));
    b.write_file("two", two);
    b.wait("the old generation's drain", |l| {
        l.iter().any(|e| e[0] == "drained")
    });
    let second = b.events("start")[1].clone();
    assert_eq!(second[4], dir.join("1/cred.json").display().to_string());
    assert_eq!(
        second[5],
        sha256_hex(two),
        "the new generation reads the new content"
    );
    assert_eq!(
        b.events("drained")[0][2],
        sha256_hex(one),
        "the old generation kept its own file while both ran and it drained"
    );
    // Once it has drained, its directory goes; the serving one's stays.
    init.wait_line("the drained generation", "has drained", 1);
    let t0 = Instant::now();
    while dir.join("0").exists() {
        assert!(t0.elapsed() < PATIENCE, "{:?}", tree(&dir));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(tree(&dir), ["1", "1/cred.json"]);
    init.sigterm();
    assert_eq!(init.wait(), 0, "{:#?}", init.stderr());
    assert!(!dir.exists(), "agent-init removed the files when it exited");
}

#[test]
fn a_bad_update_changes_nothing_and_says_why_in_one_line_each_check() {
    let b = Bundle::new("watch-bad");
    let init = Init::start(&b, &[], &[]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    let other = Token::generate().unwrap();
    let wrong_token = support::bundle::seal(
        &other,
        &support::bundle::plaintext(&[("FOO", "x")], &support::bundle::LIVEKIT),
    );
    let no_secret = support::bundle::seal(
        &b.token,
        &support::bundle::plaintext(&[("FOO", "x")], &support::bundle::LIVEKIT[..2]),
    );
    let bad_name = support::bundle::seal(
        &b.token,
        &support::bundle::plaintext(&[("FOO-BAR", "x")], &support::bundle::LIVEKIT),
    );
    for (body, why) in [
        ("{\"format\":", "not a JSON object"),
        (wrong_token.as_str(), "does not authenticate"),
        (no_secret.as_str(), "LIVEKIT_API_SECRET"),
        (bad_name.as_str(), "secret #1: name has a character"),
    ] {
        let before = init
            .stderr()
            .iter()
            .filter(|l| l.contains("the agent keeps running"))
            .count();
        b.write_raw(body);
        init.wait_line("the refusal", "the agent keeps running", before + 1);
        let line = init
            .stderr()
            .into_iter()
            .rfind(|l| l.contains("the agent keeps running"))
            .unwrap();
        assert!(line.contains(why), "{why}: {line}");
        assert!(
            line.starts_with("agent-init: error: watch: bundle sha256:"),
            "{line}"
        );
    }
    assert_eq!(pids_started(&b).len(), 1, "never restarted: {:?}", b.log());
    assert!(b.events("term").is_empty());
    support::Forbidden::new()
        .token(&b.token)
        .assert_not_in("stderr", &init.stderr().join("\n"));
    // The next good bundle rolls as usual.
    b.write("two");
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
}

#[test]
fn a_token_in_the_environment_is_refused_with_78_and_nothing_starts() {
    let b = Bundle::new("watch-env-token");
    let out = support::Run::new(&b.dir)
        .env("LIVEKIT_BOOTSTRAP_TOKEN", b.token.encode().expose())
        .env(
            "LIVEKIT_SECRETS_URL",
            format!("file://{}", b.path().display()),
        )
        .env("AGENT_LOG", b.dir.join("agent.log"))
        .args(["--supervise", "--watch", "5", "--", "python3", "agent.py"])
        .output();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(b.log().is_empty(), "nothing started");
}

#[test]
fn exit_policy_drains_the_agent_then_exits_75() {
    let b = Bundle::new("watch-exit");
    let mut init = Init::start(&b, &["--on-update", "exit"], &[("DRAIN", "1")]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    b.write("two");
    assert_eq!(init.wait(), 75, "{:#?}", init.stderr());
    let log = b.log();
    assert_eq!(b.events("start").len(), 1, "no new generation: {log:?}");
    assert_eq!(b.events("term").len(), 1);
    assert_eq!(b.events("drained").len(), 1, "the drain finished first");
}

#[test]
fn a_drain_past_the_drain_timeout_is_cut_by_sigkill() {
    let b = Bundle::new("watch-kill");
    let init = Init::start(&b, &["--drain-timeout", "1"], &[("DRAIN", "600")]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    b.write("two");
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    assert!(b.events("drained").is_empty(), "the drain was cut");
    assert!(init
        .stderr()
        .iter()
        .any(|l| l.contains("still runs after --drain-timeout; SIGKILL")));
}

#[test]
fn sigterm_during_a_drain_reaches_the_agent_once_and_nothing_restarts() {
    let b = Bundle::new("watch-stop-mid-drain");
    let mut init = Init::start(&b, &[], &[("DRAIN", "3")]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    b.write("two");
    b.wait("the roll's SIGTERM", |l| l.iter().any(|e| e[0] == "term"));
    init.sigterm();
    assert_eq!(init.wait(), 0, "the draining agent's own status");
    assert_eq!(b.events("term").len(), 1, "one SIGTERM: {:?}", b.log());
    assert_eq!(b.events("start").len(), 1, "no new generation");
    assert_eq!(b.events("drained").len(), 1, "its drain completed");
}

fn free_pair() -> u16 {
    // Two adjacent free ports (the generations take turns on N and N+1).
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn overlap_starts_the_new_generation_first_and_stops_the_old_one_once_it_answers_200() {
    let b = Bundle::new("watch-overlap");
    let port = free_pair();
    let p = port.to_string();
    let init = Init::start(
        &b,
        &["--on-update", "overlap", "--health-port", &p],
        &[("READY_DELAY", "2")],
    );
    b.wait("the first generation listening", |l| {
        l.iter().any(|e| e[0] == "listening")
    });
    b.write("two");
    b.wait("the old generation's SIGTERM", |l| {
        l.iter().any(|e| e[0] == "term")
    });
    let log = b.log();
    let starts = b.events("start");
    assert_eq!(starts.len(), 2, "{log:?}");
    assert_eq!(starts[0][3], p, "generation 0 on N");
    assert_eq!(starts[1][3], (port + 1).to_string(), "generation 1 on N+1");
    let listening_new = log
        .iter()
        .position(|e| e[0] == "listening" && e[1] == starts[1][1])
        .expect("the new generation listened");
    let term = log.iter().position(|e| e[0] == "term").unwrap();
    assert!(
        listening_new < term,
        "ready before the old one stops: {log:?}"
    );
    assert_eq!(log[term][1], starts[0][1], "the old one is stopped");
    assert_eq!(b.events("term").len(), 1);
    assert!(init
        .stderr()
        .iter()
        .any(|l| l.contains(&format!("answers 200 on port {}", port + 1))));
    // And `agent-init health` sees whichever generation serves.
    let out = support::Run::new(&b.dir)
        .args(["health", "--port", &p, "--port", &(port + 1).to_string()])
        .output();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn sigterm_while_the_new_overlap_generation_starts_stops_both_once() {
    let b = Bundle::new("watch-overlap-stop");
    let port = free_pair();
    let p = port.to_string();
    let mut init = Init::start(&b, &["--on-update", "overlap", "--health-port", &p], &[]);
    b.wait("the first generation listening", |l| {
        l.iter().any(|e| e[0] == "listening")
    });
    // The new generation takes 60 s to answer: the stop lands before.
    b.write_with("two", "READY_DELAY=60\n");
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    init.sigterm();
    let code = init.wait();
    assert_eq!(code, 0, "{:#?}", init.stderr());
    let log = b.log();
    let starts = b.events("start");
    assert!(
        b.events("listening").len() == 1,
        "the new one never got ready: {log:?}"
    );
    for s in &starts {
        let terms = log
            .iter()
            .filter(|e| e[0] == "term" && e[1] == s[1])
            .count();
        assert_eq!(
            terms, 1,
            "each generation got the stop exactly once: {log:?}"
        );
    }
    assert_eq!(
        b.events("drained").len(),
        2,
        "both were gone before agent-init exited"
    );
}

#[test]
fn sigterm_during_a_check_that_hangs_reaches_the_agent_without_waiting_for_the_check() {
    // The check runs beside the signal loop: a `docker stop` (10 s grace by
    // default) while the service hangs is forwarded at once, not after the
    // check's 10 s deadline, which would leave the agent no time to drain.
    let b = Bundle::new("watch-stop-mid-check");
    let plain = support::bundle::plaintext(&[("FOO", "one")], &support::bundle::LIVEKIT);
    let server = Server::start_plain(vec![
        Reply::ok(support::bundle::seal(&b.token, &plain)).header("ETag", "\"v1\""),
        Reply::hang(),
    ]);
    let mut init = Init::start_url(&b, &server.url(), &[], &[]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    // The first check is under way, and its answer never comes.
    server.wait_for_requests(2);
    init.sigterm();
    assert_eq!(
        init.wait(),
        0,
        "the agent's own status: {:#?}",
        init.stderr()
    );
    let err = init.stderr();
    let stop = err
        .iter()
        .position(|l| l.contains("SIGTERM received: stopping"))
        .unwrap_or_else(|| panic!("{err:#?}"));
    assert!(
        !err.iter().any(|l| l.contains("cannot check the bundle")),
        "the stop (line {stop}) waited for the hung check to give up: {err:#?}"
    );
    assert_eq!(b.events("term").len(), 1, "one SIGTERM: {:?}", b.log());
    assert_eq!(b.events("drained").len(), 1);
    assert_eq!(server.requests().len(), 2, "no other check began");
}

#[test]
fn over_https_the_check_sends_if_none_match_and_a_304_rolls_nothing() {
    let b = Bundle::new("watch-etag");
    let plain = |foo: &str| support::bundle::plaintext(&[("FOO", foo)], &support::bundle::LIVEKIT);
    let one = support::bundle::seal(&b.token, &plain("one"));
    let two = support::bundle::seal(&b.token, &plain("two"));
    let server = Server::start_plain(vec![
        Reply::ok(one).header("ETag", "\"v1\""),
        Reply::status(304),
        Reply::ok(two).header("ETag", "\"v2\""),
    ]);
    let init = Init::start_url(&b, &server.url(), &[], &[]);
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    let reqs = server.requests();
    assert_eq!(reqs[0].header_values("if-none-match"), Vec::<&str>::new());
    assert_eq!(reqs[1].header("if-none-match"), "\"v1\"");
    assert_eq!(reqs[2].header("if-none-match"), "\"v1\"");
    let starts = b.events("start");
    assert_eq!(
        (starts[0][2].as_str(), starts[1][2].as_str()),
        ("one", "two")
    );
    init.wait_line("the roll", "roll to bundle \"v2\"", 1);
    // Later checks ask for "v2" and the same body changes nothing.
    server.wait_for_requests(4);
    assert_eq!(server.requests()[3].header("if-none-match"), "\"v2\"");
    assert_eq!(b.events("start").len(), 2);
}

/// The secrets `create` seals for the agent script, with `FOO`.
fn service_inputs(value: &str) -> Vec<String> {
    [
        format!("FOO={value}"),
        "LIVEKIT_URL=ws://127.0.0.1:1".into(),
        "LIVEKIT_API_KEY=APIk".into(),
        "LIVEKIT_API_SECRET=s-service".into(),
    ]
    .into_iter()
    .flat_map(|s| ["--secrets".to_string(), s])
    .collect()
}

#[test]
#[ignore = "needs the agent-secrets binary (cargo build -p agent-secrets; scripts/test.sh runs it)"]
fn through_agent_secrets_update_secrets_rolls_exactly_once_and_the_new_generation_sees_it() {
    let b = Bundle::new("watch-service");
    let svc = support::service::Secrets::start(&support::scratch("watch-service-svc"));
    let args = service_inputs("one");
    svc.create(&b.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = svc.ca.display().to_string();
    let mut init = Init::start_url(
        &b,
        &svc.bundle_url(),
        &[],
        &[("AGENT_INIT_CA_FILE", &ca), ("DRAIN", "1")],
    );
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    // The checks ask with If-None-Match, and version 1 is current.
    let t0 = Instant::now();
    while svc.fetches().len() < 3 {
        assert!(t0.elapsed() < PATIENCE, "{:?}", svc.fetches());
        std::thread::sleep(Duration::from_millis(200));
    }
    svc.update(&b.dir, &["--secrets", "FOO=two"]);
    b.wait("the second generation", |l| {
        l.iter().filter(|e| e[0] == "start").count() == 2
    });
    // Two checks after the roll: both find version 2 current.
    let n = svc.fetches().len();
    while svc.fetches().len() < n + 2 {
        assert!(t0.elapsed() < 2 * PATIENCE, "{:?}", svc.fetches());
        std::thread::sleep(Duration::from_millis(200));
    }
    let starts = b.events("start");
    assert_eq!(starts.len(), 2, "exactly one roll: {:?}", b.log());
    assert_eq!(
        (starts[0][2].as_str(), starts[1][2].as_str()),
        ("one", "two")
    );
    assert_eq!(b.events("term").len(), 1, "{:?}", b.log());
    let fetches = svc.fetches();
    let full: Vec<_> = fetches.iter().filter(|f| f.1 == 200).collect();
    assert_eq!(
        full,
        [&("1".to_string(), 200), &("2".to_string(), 200)],
        "one full fetch per version, every other check a 304: {fetches:?}"
    );
    let first_v2 = fetches.iter().position(|f| f.0 == "2").unwrap();
    assert!(
        fetches[1..first_v2]
            .iter()
            .all(|f| *f == ("1".to_string(), 304)),
        "{fetches:?}"
    );
    assert!(
        fetches[first_v2 + 1..]
            .iter()
            .all(|f| *f == ("2".to_string(), 304)),
        "{fetches:?}"
    );
    init.sigterm();
    assert_eq!(init.wait(), 0, "{:#?}", init.stderr());
}

#[test]
#[ignore = "needs the agent-secrets binary (cargo build -p agent-secrets; scripts/test.sh runs it)"]
fn through_agent_secrets_a_revoked_token_is_no_change_and_the_agent_keeps_running() {
    let b = Bundle::new("watch-revoke");
    let svc = support::service::Secrets::start(&support::scratch("watch-revoke-svc"));
    let args = service_inputs("one");
    let token = svc.create(&b.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let ca = svc.ca.display().to_string();
    let mut init = Init::start_url(&b, &svc.bundle_url(), &[], &[("AGENT_INIT_CA_FILE", &ca)]);
    b.wait("the first generation", |l| {
        l.iter().any(|e| e[0] == "start")
    });
    svc.revoke(&b.dir, &Token::parse(&token).unwrap().id_b64());
    // Two checks refused with 401: each is one error line, and nothing else.
    init.wait_line("two refused checks", "(HTTP 401)", 2);
    let t0 = Instant::now();
    while svc.fetches().iter().filter(|f| f.1 == 401).count() < 2 {
        assert!(t0.elapsed() < PATIENCE, "{:?}", svc.fetches());
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = init
        .stderr()
        .into_iter()
        .find(|l| l.contains("(HTTP 401)"))
        .unwrap();
    assert!(
        line.starts_with("agent-init: error: watch: ") && line.contains("the agent keeps running"),
        "{line}"
    );
    assert!(
        init.child.try_wait().unwrap().is_none(),
        "agent-init runs on"
    );
    assert_eq!(b.events("start").len(), 1, "{:?}", b.log());
    assert!(b.events("term").is_empty(), "the agent was not stopped");
    assert!(!init.stderr().join("\n").contains(&token));
    init.sigterm();
    assert_eq!(
        init.wait(),
        0,
        "the agent's own status: {:#?}",
        init.stderr()
    );
}

/// A supervised fleet of `n` agents watching one bundle, each draining for
/// `drain`; returns the most that drained at the same time.
fn fleet(n: usize, spread: &str, drain: f64) -> (usize, Vec<(f64, f64)>) {
    let b = Bundle::new("watch-fleet");
    // A shell agent: lighter than Python, fifty times over.
    let sh = format!(
        "now() {{ date +%s.%N; }}\necho \"start $$ $FOO\" >> \"$AGENT_LOG\"\ntrap 'echo \"term $$ $(now)\" >> \"$AGENT_LOG\"; sleep {drain}; echo \"drained $$ $(now)\" >> \"$AGENT_LOG\"; exit 0' TERM\nwhile :; do sleep 0.2; done\n"
    );
    std::fs::write(b.dir.join("agent.sh"), sh).unwrap();
    let mut inits: Vec<Child> = (0..n)
        .map(|_| {
            Command::new(support::bin())
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", b.dir.join("token"))
                .env(
                    "LIVEKIT_SECRETS_URL",
                    format!("file://{}", b.path().display()),
                )
                .env("AGENT_LOG", b.dir.join("agent.log"))
                .env("AGENT_INIT_LOG", "error")
                .current_dir(&b.dir)
                .args(["--supervise", "--watch", "5", "--rollout-spread", spread])
                .args(["--", "sh", "agent.sh"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    b.wait("every agent to start", |l| {
        l.iter().filter(|e| e[0] == "start").count() == n
    });
    b.write("two");
    b.wait("every agent to roll", |l| {
        l.iter()
            .filter(|e| e[0] == "start" && e[2] == "two")
            .count()
            == n
    });
    let log = b.log();
    let first: Vec<String> = log
        .iter()
        .filter(|e| e[0] == "start" && e[2] == "one")
        .map(|e| e[1].clone())
        .collect();
    let mut spans = Vec::new();
    for pid in &first {
        let t = |what: &str| -> Vec<f64> {
            log.iter()
                .filter(|e| e[0] == what && &e[1] == pid)
                .map(|e| e[2].parse().unwrap())
                .collect()
        };
        let (terms, drained) = (t("term"), t("drained"));
        assert_eq!(terms.len(), 1, "agent {pid} rolled exactly once: {log:?}");
        assert_eq!(drained.len(), 1, "agent {pid} drained once");
        spans.push((terms[0], drained[0]));
    }
    assert_eq!(
        log.iter().filter(|e| e[0] == "start").count(),
        2 * n,
        "no agent rolled twice"
    );
    // A stop for each agent-init: its agent drains, then it exits.
    for c in &inits {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for c in &mut inits {
        let _ = c.wait();
    }
    let mut peak = 0;
    for &(t, _) in &spans {
        let at_once = spans.iter().filter(|&&(a, d)| a <= t && t < d).count();
        peak = peak.max(at_once);
    }
    (peak, spans)
}

#[test]
#[ignore = "slow: two fleets of 50 agents, one rolling over a 30 s spread (about 45 s); scripts/test.sh runs it"]
fn a_fleet_of_fifty_rolls_once_each_and_the_spread_bounds_how_many_drain_at_once() {
    // 50 agents, a 2 s drain, --rollout-spread 30: the rolls start at
    // uniform random times over 30 s (plus each agent's 5-6 s check phase),
    // so about 50 * 2 / 35 = 3 drain at any moment on average, and the peak
    // of 50 such arrivals stays near 8. The control, without a spread:
    // agents started together check together (the jitter is at most a fifth
    // of the interval), so they all see the change, and drain, at once.
    let (peak, spans) = fleet(50, "30", 2.0);
    let first = spans.iter().map(|s| s.0).fold(f64::MAX, f64::min);
    let last = spans.iter().map(|s| s.0).fold(f64::MIN, f64::max);
    let (control, cspans) = fleet(50, "0", 2.0);
    let cfirst = cspans.iter().map(|s| s.0).fold(f64::MAX, f64::min);
    let clast = cspans.iter().map(|s| s.0).fold(f64::MIN, f64::max);
    eprintln!(
        "fleet: 50 agents, 2 s drains: --rollout-spread 30: rolls over {:.1} s, at most {peak} draining at once; --rollout-spread 0: rolls over {:.1} s, at most {control} at once",
        last - first,
        clast - cfirst
    );
    assert!(peak <= 15, "at most {peak} drained at once");
    assert!(
        last - first >= 10.0,
        "the rolls spread out: {:.1} s",
        last - first
    );
    assert!(
        control >= 2 * peak,
        "without a spread more drain at once: {control} vs {peak}"
    );
}

#[test]
fn job_control_stops_reach_the_agent_and_stop_agent_init_too() {
    // As without --watch (dumb-init's job control): a forwarded SIGTSTP
    // stops agent-init after the agent; SIGCONT resumes both.
    let b = Bundle::new("watch-tstp");
    let mut init = Init::start(&b, &[], &[]);
    b.wait("the agent", |l| l.iter().any(|e| e[0] == "start"));
    let agent: i32 = b.events("start")[0][1].parse().unwrap();
    let state = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    };
    let me = nix::unistd::Pid::from_raw(init.child.id() as i32);
    nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGTSTP).unwrap();
    let t0 = Instant::now();
    while !(state(me.as_raw()) == "T" && state(agent) == "T") {
        assert!(
            t0.elapsed() < PATIENCE,
            "both stop: {} {}",
            state(me.as_raw()),
            state(agent)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGCONT).unwrap();
    let t0 = Instant::now();
    while state(me.as_raw()) == "T" || state(agent) == "T" {
        assert!(t0.elapsed() < PATIENCE, "both resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    init.sigterm();
    assert_eq!(init.wait(), 0);
}
