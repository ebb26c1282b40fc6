//! The real LiveKit agents of `examples/`, started by agent-init with their
//! secrets from a real HTTPS secrets server, against a stand-in LiveKit
//! server on loopback.
//!
//! Each test seals a bundle whose `livekit` member names the stand-in
//! (`tests/agents/livekit_standin.py`) and a fresh API key and secret, serves
//! it over TLS from the test secrets server (`support::server`, its CA passed
//! as `AGENT_INIT_CA_FILE`), runs the example agent's `start` under
//! agent-init, and checks from the stand-in's side that the worker
//! authenticated with exactly the credentials the bundle carried and
//! registered. Then SIGTERM: the worker drains (it tells the server it is
//! full, closes, and exits with its own status: 0 for Python, 143 for Node).
//!
//! Required: `bash scripts/test.sh` has installed the agents
//! (examples/python-agent/.venv, examples/node-agent/node_modules and dist).
//! A missing one fails the test with the command that installs it.

mod support;

use agent_init::protocol::token::Token;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::server::{Reply, Server};
use support::tls::Ca;

/// Bound on waiting for an agent or the stand-in; never a timing assertion
/// (a worker's start-up imports take seconds on a busy machine).
const PATIENCE: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python_agent_dir() -> PathBuf {
    repo().join("examples/python-agent")
}

fn node_agent_dir() -> PathBuf {
    repo().join("examples/node-agent")
}

/// The Python of the example agent's virtualenv (it also runs the stand-in,
/// which needs aiohttp and livekit-protocol from it).
fn venv_python() -> PathBuf {
    let p = python_agent_dir().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/test.sh` (it creates the venv and installs requirements.txt)",
        p.display()
    );
    p
}

fn require_node_agent() {
    let dir = node_agent_dir();
    for (path, how) in [
        (
            "node_modules/@livekit/agents",
            "pnpm install --frozen-lockfile",
        ),
        ("dist/agent.js", "pnpm build"),
    ] {
        assert!(
            dir.join(path).exists(),
            "{} is missing: run `bash scripts/test.sh` (it runs `{how}` in examples/node-agent)",
            dir.join(path).display()
        );
    }
    assert!(
        Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "node is required (Debian's nodejs package)"
    );
}

/// Lines of output collected from a child, with a way to wait for one.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn collect(self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lock, cond) = &*self.0;
                lock.lock().unwrap().push(line);
                cond.notify_all();
            }
        })
    }

    fn all(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the lines so far; panics after [`PATIENCE`].
    fn wait(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let (lock, cond) = &*self.0;
        let guard = lock.lock().unwrap();
        let (guard, timeout) = cond
            .wait_timeout_while(guard, PATIENCE, |l| !pred(l))
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "waited in vain for {what}; saw:\n{}",
            guard.join("\n")
        );
    }
}

/// The stand-in LiveKit server, and every event it reported.
struct StandIn {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Lines,
    url: String,
}

impl StandIn {
    fn start(api_key: &str, api_secret: &str) -> StandIn {
        StandIn::start_with(&[(api_key, api_secret)])
    }

    /// A stand-in that accepts each of `credentials` (key, secret).
    fn start_with(credentials: &[(&str, &str)]) -> StandIn {
        let mut cmd = Command::new(venv_python());
        cmd.arg(repo().join("tests/agents/livekit_standin.py"));
        for (key, secret) in credentials {
            cmd.args(["--api-key", key, "--api-secret", secret]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stand-in LiveKit server starts");
        let events = Lines::default();
        events.clone().collect(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        let mut s = StandIn {
            child,
            stdin,
            events,
            url: String::new(),
        };
        s.url = s.wait_event("the stand-in to listen", |e| e["event"] == "listening")["url"]
            .as_str()
            .unwrap()
            .to_string();
        s
    }

    fn parsed(&self) -> Vec<Value> {
        self.events
            .all()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
            .collect()
    }

    /// Waits for the first event matching `pred` and returns it.
    fn wait_event(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let matches = |lines: &[String]| {
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|e| pred(&e))
        };
        self.events.wait(what, matches);
        self.parsed().into_iter().find(|e| pred(e)).unwrap()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // Closing its stdin ends it; kill it if it lingers.
        drop(self.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// agent-init running an agent, in a process group of its own, so the
/// worker's job processes go when the test ends, whatever happened.
struct Agent {
    child: Child,
    output: Lines,
    exited: Option<ExitStatus>,
}

impl Agent {
    fn start(cwd: &Path, env: &[(&str, String)], args: &[&str]) -> Agent {
        let mut cmd = Command::new(support::bin());
        cmd.env_clear()
            .current_dir(cwd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("agent-init starts");
        let output = Lines::default();
        output.clone().collect(child.stdout.take().unwrap());
        output.clone().collect(child.stderr.take().unwrap());
        Agent {
            child,
            output,
            exited: None,
        }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn sigterm(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// Waits for agent-init (or the agent it became) to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                // Let the output threads drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "the agent did not exit after SIGTERM; output:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        self.output.all().join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        if self.exited.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// One end-to-end setup: credentials, the stand-in, a sealed bundle served
/// over HTTPS, and the environment that points agent-init at it.
struct Setup {
    api_key: String,
    api_secret: String,
    standin: StandIn,
    server: Server,
    token: Token,
    dir: PathBuf,
}

const EXAMPLE_SECRET: (&str, &str) = ("EXAMPLE_SECRET", "example-secret-value-e2e");

/// The service-account JSON of the bundle's file secret for token `id`.
fn credentials(id: &str) -> String {
    format!(
        "{{\"type\": \"service_account\", \"client_email\": \"e2e-{id}@example.iam.gserviceaccount.com\", \"private_key\": \"pk-e2e-{id}\"}}"
    )
}

/// Lower-case hex, as sha256sum, Python's hexdigest and Node's digest('hex') print it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Setup {
    /// The stand-in expects `api_secret`; the bundle carries `bundle_secret`.
    fn new(name: &str, bundle_secret: Option<&str>) -> Setup {
        let token = Token::generate().unwrap();
        let id = token.id_b64();
        let api_key = format!("APIe2e{}", &id[..8]);
        let api_secret = format!("e2e-secret-{id}");
        let standin = StandIn::start(&api_key, &api_secret);
        let mut plain: Value = serde_json::from_str(&support::bundle::plaintext(
            &[EXAMPLE_SECRET],
            &[
                ("LIVEKIT_URL", standin.url.as_str()),
                ("LIVEKIT_API_KEY", api_key.as_str()),
                ("LIVEKIT_API_SECRET", bundle_secret.unwrap_or(&api_secret)),
            ],
        ))
        .unwrap();
        // A file secret (PROTOCOL.md §6.1), as `lk agent create --secret-mount` makes one.
        plain["secrets"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "google-credentials.json",
                "kind": "file",
                "value": agent_init::protocol::token::b64u(credentials(&id).as_bytes()),
                "env": "GOOGLE_APPLICATION_CREDENTIALS",
            }));
        let plain = plain.to_string();
        let ca = Ca::new("agent-init e2e CA");
        let server = Server::start(
            &ca.localhost(),
            vec![Reply::ok(support::bundle::seal(&token, &plain))],
        );
        let dir = support::scratch(name);
        ca.write_pem(&dir);
        Setup {
            api_key,
            api_secret,
            standin,
            server,
            token,
            dir,
        }
    }

    /// agent-init's environment: the token, the HTTPS URL, the test CA.
    fn env(&self, path_first: &Path) -> Vec<(&'static str, String)> {
        vec![
            (
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", path_first.display()),
            ),
            ("HOME", self.dir.display().to_string()),
            (
                "LIVEKIT_BOOTSTRAP_TOKEN",
                self.token.encode().expose().to_string(),
            ),
            ("LIVEKIT_SECRETS_URL", self.server.url()),
            (
                "AGENT_INIT_CA_FILE",
                self.dir.join("ca.pem").display().to_string(),
            ),
            // Each test's own directory for the file secrets (tests run in parallel).
            (
                "AGENT_INIT_SECRETS_DIR",
                self.files_dir().display().to_string(),
            ),
        ]
    }

    fn files_dir(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/agent-init-e2e-{}", self.token.id_b64()))
    }

    /// A job process of the worker (a descendant of its main process, `worker`)
    /// read the credentials file through GOOGLE_APPLICATION_CREDENTIALS, and
    /// what it read has exactly the SHA-256 of the bundle's decoded content.
    fn assert_credentials_read_in_a_job_process(&self, agent: &Agent, worker: i32) {
        let email = format!(
            "e2e-{}@example.iam.gserviceaccount.com",
            self.token.id_b64()
        );
        let sha256 = format!(
            "sha256 {}",
            hex(ring::digest::digest(
                &ring::digest::SHA256,
                credentials(&self.token.id_b64()).as_bytes()
            )
            .as_ref())
        );
        let t0 = Instant::now();
        let line = loop {
            let lines = agent.output.all();
            if let Some(l) = lines
                .iter()
                .find(|l| l.contains("prewarm in process") && l.contains(&email))
            {
                assert!(
                    l.contains(&sha256),
                    "the job process read exactly the bundle's bytes ({sha256}): {l}"
                );
                break l.clone();
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "no job process read the credentials:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let at = line.find("prewarm in process").unwrap();
        let after: Vec<i32> = line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        let (pid, ppid) = (after[0], after[1]);
        assert_ne!(
            pid, worker,
            "read in a job process, not the worker itself: {line}"
        );
        // Its parent is the worker or a process the worker started for its
        // pool (Python's multiprocessing forkserver): a descendant either way.
        let parent_of = |pid: i32| -> Option<i32> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
        };
        let mut p = ppid;
        let mut chain = vec![pid, p];
        while p != worker && p > 1 {
            p = parent_of(p).unwrap_or(0);
            chain.push(p);
        }
        assert_eq!(
            p, worker,
            "the job process descends from the worker ({chain:?}): {line}"
        );
        assert!(
            !agent
                .log()
                .contains(&format!("pk-e2e-{}", self.token.id_b64())),
            "the file's content is never printed"
        );
    }

    /// agent-init fetched the bundle once, with this token's Authorization.
    fn assert_fetched_with_the_token(&self) {
        self.server.wait_for_requests(1);
        let req = &self.server.requests()[0];
        assert_eq!(
            req.header("authorization"),
            self.token.authorization().expose(),
            "agent-init authenticated to the secrets server with the token"
        );
    }

    /// The stand-in verified a JWT signed with the bundle's secret and
    /// issued by its key, and the worker registered under `agent_name`.
    fn assert_registered_with_the_bundles_credentials(&self, agent_name: &str) {
        let auth = self
            .standin
            .wait_event("the worker's connection", |e| e["event"] == "auth");
        assert_eq!(auth["ok"], true, "the stand-in accepted the JWT: {auth}");
        assert_eq!(auth["iss"], self.api_key.as_str());
        let reg = self
            .standin
            .wait_event("the worker's registration", |e| e["event"] == "register");
        assert_eq!(reg["agent_name"], agent_name);
    }

    /// Waits until the worker has reported its status once: registered and
    /// running, not starting. (The status itself follows the machine's load.)
    fn wait_until_running(&self) {
        self.standin
            .wait_event("the worker's first status report", |e| {
                e["event"] == "status"
            });
    }

    /// How many events the stand-in has reported so far.
    fn mark(&self) -> usize {
        self.standin.parsed().len()
    }

    /// After SIGTERM (sent when the stand-in had reported `mark` events): the
    /// worker told the server it takes no more jobs (WS_FULL, what a drain
    /// sends first), then closed its connection.
    fn assert_drained(&self, mark: usize, log: &str) {
        self.standin
            .wait_event("the worker to close", |e| e["event"] == "closed");
        let after: Vec<Value> = self.standin.parsed().split_off(mark);
        let full = after
            .iter()
            .position(|e| e["event"] == "status" && e["status"] == "WS_FULL");
        let closed = after.iter().position(|e| e["event"] == "closed");
        assert!(
            full.is_some() && full < closed,
            "a draining worker reports WS_FULL, then goes: {after:?}\n{log}"
        );
        assert!(log.contains("draining worker"), "{log}");
    }

    /// No secret and no token material in anything printed.
    fn assert_nothing_leaked(&self, log: &str) {
        support::Forbidden::new()
            .token(&self.token)
            .value(self.api_secret.clone())
            .value(EXAMPLE_SECRET.1)
            .assert_not_in("the output", log);
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Exec mode leaves the file secrets behind (agent-init became the worker).
        let _ = std::fs::remove_dir_all(self.files_dir());
    }
}

fn start_python(setup: &Setup, supervise: bool) -> Agent {
    start_python_on(setup, supervise, 0)
}

/// The Python worker with its health server on `port` (0: a free one).
fn start_python_on(setup: &Setup, supervise: bool, port: u16) -> Agent {
    let venv_bin = venv_python().parent().unwrap().to_path_buf();
    let mut env = setup.env(&venv_bin);
    // The worker's health server (8081 by default).
    env.push(("AGENT_HTTP_PORT", port.to_string()));
    let mut args = vec![];
    if supervise {
        args.push("--supervise");
    }
    args.extend(["--", "python", "agent.py", "start", "--drain-timeout", "60"]);
    Agent::start(&python_agent_dir(), &env, &args)
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn python_agent_registers_with_the_bundles_credentials_and_drains_on_sigterm() {
    let setup = Setup::new("e2e-python", None);
    let mut agent = start_python(&setup, false);
    setup.assert_fetched_with_the_token();
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-python");
    setup.wait_until_running();
    // Exec mode: the worker is agent-init's own process.
    setup.assert_credentials_read_in_a_job_process(&agent, agent.pid().as_raw());

    let mark = setup.mark();
    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    setup.assert_drained(mark, &log);
    assert_eq!(
        status.code(),
        Some(0),
        "the Python worker's own status after a drain: {log}"
    );
    setup.assert_nothing_leaked(&log);
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn python_agent_under_supervise_drains_when_its_process_group_gets_sigterm() {
    let setup = Setup::new("e2e-python-supervise", None);
    let mut agent = start_python(&setup, true);
    setup.assert_fetched_with_the_token();
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-python");
    setup.wait_until_running();
    // Supervise mode: the worker is agent-init's one child.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid().as_raw()))
            .unwrap();
    let worker: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    setup.assert_credentials_read_in_a_job_process(&agent, worker);

    let mark = setup.mark();
    // agent-init forwards it to the worker's whole group, its job processes
    // too (they ignore it: the worker shuts them down itself).
    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    setup.assert_drained(mark, &log);
    assert_eq!(status.code(), Some(0), "the worker's own status: {log}");
    setup.assert_nothing_leaked(&log);
    assert!(
        !setup.files_dir().exists(),
        "supervise mode removed the file secrets"
    );
}

/// `agent-init health --port PORT`: its exit status and its one line.
fn health(port: u16) -> (i32, String) {
    let out = Command::new(support::bin())
        .args(["health", "--port", &port.to_string(), "--timeout", "10"])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .expect("agent-init health runs");
    let line = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (out.status.code().unwrap_or(-1), line)
}

/// Probes until the health server listens (it starts after the worker's imports).
fn health_once_listening(port: u16) -> (i32, String) {
    let t0 = Instant::now();
    loop {
        let (code, line) = health(port);
        if !line.contains("refused") || t0.elapsed() > PATIENCE {
            return (code, line);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn health_probe_is_0_against_a_registered_python_worker_and_1_once_it_is_gone() {
    let setup = Setup::new("e2e-python-health", None);
    let port = free_port();
    let mut agent = start_python_on(&setup, true, port);
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-python");
    setup.wait_until_running();
    let (code, line) = health(port);
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("answered 200"), "{line}");
    agent.sigterm();
    agent.wait_exit();
    let (code, line) = health(port);
    assert_eq!(code, 1, "{line}");
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn stand_in_server_refuses_a_worker_whose_secret_is_not_the_one_it_expects() {
    // The stand-in really checks the signature: a bundle with another API
    // secret gets the worker refused.
    let setup = Setup::new("e2e-python-wrong-secret", Some("not-the-api-secret"));
    let port = free_port();
    let mut agent = start_python_on(&setup, false, port);
    setup.assert_fetched_with_the_token();
    let auth = setup
        .standin
        .wait_event("the worker's connection", |e| e["event"] == "auth");
    assert_eq!(auth["ok"], false, "{auth}");
    assert_eq!(
        auth["reason"], "signature does not verify with the API secret",
        "{auth}"
    );
    assert!(
        !setup
            .standin
            .parsed()
            .iter()
            .any(|e| e["event"] == "register"),
        "a refused worker never registers"
    );
    // What the Python SDK's health endpoint means: 200 while it is still
    // (re)connecting; 503 only after its 16 attempts (about 130 s) failed.
    let (code, line) = health_once_listening(port);
    assert_eq!(
        (code, line.contains("answered 200")),
        (0, true),
        "a Python worker that is not registered still answers 200: {line}"
    );
    agent.sigterm();
    agent.wait_exit();
}

/// A TCP port nothing listens on now, for the Node worker's health server
/// (it takes 0 as "use the default, 8081").
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_node(setup: &Setup, port: u16) -> Agent {
    let mut env = setup.env(Path::new("/usr/local/bin"));
    env.extend([
        ("AGENT_HTTP_PORT", port.to_string()),
        ("AGENT_DRAIN_TIMEOUT", "60".to_string()),
        ("AGENT_IDLE_PROCESSES", "1".to_string()),
        ("LOG_LEVEL", "debug".to_string()),
    ]);
    Agent::start(
        &node_agent_dir(),
        &env,
        &["--supervise", "--", "node", "dist/agent.js", "start"],
    )
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn health_probe_is_0_against_a_connected_node_worker_and_1_against_a_refused_one() {
    require_node_agent();
    // Node answers 200 only while its WebSocket to LiveKit is open.
    let setup = Setup::new("e2e-node-health", None);
    let port = free_port();
    let mut agent = start_node(&setup, port);
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-node");
    agent.output.wait("the job process to be ready", |lines| {
        lines.iter().any(|l| l.contains("job runner initialized"))
    });
    let (code, line) = health(port);
    assert_eq!(code, 0, "{line}");
    agent.sigterm();
    agent.wait_exit();

    let refused = Setup::new("e2e-node-health-refused", Some("not-the-api-secret"));
    let port = free_port();
    let mut agent = start_node(&refused, port);
    refused
        .standin
        .wait_event("the refused connection", |e| e["event"] == "auth");
    let (code, line) = health_once_listening(port);
    assert_eq!(
        code, 1,
        "a Node worker that is not connected is unhealthy: {line}"
    );
    assert!(line.contains("answered 503"), "{line}");
    agent.sigterm();
    agent.wait_exit();
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn node_agent_registers_with_the_bundles_credentials_and_drains_on_sigterm() {
    require_node_agent();
    let setup = Setup::new("e2e-node", None);
    let mut env = setup.env(Path::new("/usr/local/bin"));
    env.extend([
        ("AGENT_HTTP_PORT", free_port().to_string()),
        ("AGENT_DRAIN_TIMEOUT", "60".to_string()),
        // One warm job process, and debug logs that say when it is ready.
        ("AGENT_IDLE_PROCESSES", "1".to_string()),
        ("LOG_LEVEL", "debug".to_string()),
    ]);
    let mut agent = Agent::start(
        &node_agent_dir(),
        &env,
        &["--", "node", "dist/agent.js", "start"],
    );
    setup.assert_fetched_with_the_token();
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-node");
    // @livekit/agents 1.9.0 mishandles a SIGTERM that lands while its job
    // processes are still starting (it waits a minute for them to ack the
    // shutdown), so signal a worker that is fully up.
    agent.output.wait("the job process to be ready", |lines| {
        lines.iter().any(|l| l.contains("job runner initialized"))
    });
    // Exec mode: the worker is agent-init's own process; its job process
    // (a fork) read the file secret.
    setup.assert_credentials_read_in_a_job_process(&agent, agent.pid().as_raw());

    let mark = setup.mark();
    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    setup.assert_drained(mark, &log);
    assert_eq!(
        status.code(),
        Some(143),
        "the Node worker's own status after a drain (it calls process.exit(143)): {log}"
    );
    setup.assert_nothing_leaked(&log);
    // What the README says: in exec mode agent-init became the worker, so
    // nothing is left to remove the file.
    assert!(
        setup.files_dir().join("google-credentials.json").exists(),
        "exec mode leaves the file secret in place"
    );
}

/// agent-init's one child in supervise mode: the worker.
fn supervised_child(agent: &Agent) -> i32 {
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid().as_raw()))
            .unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn node_agent_under_supervise_reads_the_credentials_file_in_its_job_process_and_it_is_gone_after_exit(
) {
    require_node_agent();
    let setup = Setup::new("e2e-node-supervise", None);
    let mut agent = start_node(&setup, free_port());
    setup.assert_fetched_with_the_token();
    setup.assert_registered_with_the_bundles_credentials("agent-init-example-node");
    agent.output.wait("the job process to be ready", |lines| {
        lines.iter().any(|l| l.contains("job runner initialized"))
    });
    let worker = supervised_child(&agent);
    setup.assert_credentials_read_in_a_job_process(&agent, worker);
    assert!(
        setup.files_dir().join("google-credentials.json").exists(),
        "the file is there while the worker runs"
    );

    let mark = setup.mark();
    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    setup.assert_drained(mark, &log);
    assert_eq!(status.code(), Some(143), "the worker's own status: {log}");
    setup.assert_nothing_leaked(&log);
    assert!(
        !setup.files_dir().exists(),
        "supervise mode removed the file secrets when the worker exited"
    );
}

// ---------------------------------------------------------------------------
// --watch: the bundle is resealed with a new LiveKit API key and secret
// under a running worker.

/// A worker's credentials rotated: the stand-in accepts the old and the new
/// key (as LiveKit does while both exist), and verifies each JWT with its
/// issuer's secret; the bundle is a file, resealed by `agent-init seal`.
struct Rotation {
    keys: [(String, String); 2],
    standin: StandIn,
    token: Token,
    dir: PathBuf,
    /// Through a real agent-secrets (`create`, then `update-secrets`)
    /// instead of a sealed file.
    service: Option<support::service::Secrets>,
}

impl Rotation {
    /// The bundle is a file, resealed by `agent-init seal`.
    fn new(name: &str) -> Rotation {
        Rotation::make(name, false)
    }

    /// The bundle comes from a real agent-secrets over HTTPS.
    fn through_service(name: &str) -> Rotation {
        Rotation::make(name, true)
    }

    fn make(name: &str, through_service: bool) -> Rotation {
        let token = Token::generate().unwrap();
        let id = token.id_b64();
        let keys = [
            (format!("APIold{}", &id[..6]), format!("old-secret-{id}")),
            (format!("APInew{}", &id[..6]), format!("new-secret-{id}")),
        ];
        let standin = StandIn::start_with(&[
            (keys[0].0.as_str(), keys[0].1.as_str()),
            (keys[1].0.as_str(), keys[1].1.as_str()),
        ]);
        let dir = support::scratch(name);
        std::fs::write(dir.join("token"), token.encode().expose()).unwrap();
        // Other users may read it, whatever the umask: agent-init warns once.
        std::fs::set_permissions(
            dir.join("token"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let service =
            through_service.then(|| support::service::Secrets::start(&support::scratch(name)));
        let mut r = Rotation {
            keys,
            standin,
            token,
            dir,
            service,
        };
        if let Some(svc) = &r.service {
            // The service makes the token: `create` writes it to dir/token.
            let args = r.service_inputs(0);
            let token = svc.create(&r.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
            r.token = Token::parse(&token).unwrap();
        } else {
            r.seal(0);
        }
        r
    }

    /// The `--secrets` arguments for credentials `i`.
    fn service_inputs(&self, i: usize) -> Vec<String> {
        [
            format!("LIVEKIT_URL={}", self.standin.url),
            format!("LIVEKIT_API_KEY={}", self.keys[i].0),
            format!("LIVEKIT_API_SECRET={}", self.keys[i].1),
            format!("{}={}", EXAMPLE_SECRET.0, EXAMPLE_SECRET.1),
        ]
        .into_iter()
        .flat_map(|s| ["--secrets".to_string(), s])
        .collect()
    }

    /// Seals credentials `i` into the bundle and renames it in place, or
    /// (through the service) stores them with `agent-secrets update-secrets`.
    fn seal(&self, i: usize) {
        if let Some(svc) = &self.service {
            let args = self.service_inputs(i);
            svc.update(
                &self.dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            return;
        }
        let env = self.dir.join("secrets.env");
        std::fs::write(
            &env,
            format!(
                "LIVEKIT_URL={}\nLIVEKIT_API_KEY={}\nLIVEKIT_API_SECRET={}\n{}={}\n",
                self.standin.url,
                self.keys[i].0,
                self.keys[i].1,
                EXAMPLE_SECRET.0,
                EXAMPLE_SECRET.1
            ),
        )
        .unwrap();
        let tmp = self.dir.join("bundle.tmp");
        let out = Command::new(support::bin())
            .args(["seal", "--secrets-file"])
            .arg(&env)
            .arg("--out")
            .arg(&tmp)
            .args(["--token", self.token.encode().expose()])
            .output()
            .unwrap();
        assert!(out.status.success(), "agent-init seal: {out:?}");
        std::fs::rename(&tmp, self.dir.join("bundle.json")).unwrap();
    }

    fn env(&self, path_first: &Path) -> Vec<(&'static str, String)> {
        vec![
            (
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", path_first.display()),
            ),
            ("HOME", self.dir.display().to_string()),
            (
                "LIVEKIT_BOOTSTRAP_TOKEN_FILE",
                self.dir.join("token").display().to_string(),
            ),
            match &self.service {
                Some(svc) => ("LIVEKIT_SECRETS_URL", svc.bundle_url()),
                None => (
                    "LIVEKIT_SECRETS_URL",
                    format!("file://{}", self.dir.join("bundle.json").display()),
                ),
            },
        ]
        .into_iter()
        .chain(
            self.service
                .as_ref()
                .map(|s| ("AGENT_INIT_CA_FILE", s.ca.display().to_string())),
        )
        .collect()
    }

    /// Waits for a successful authentication with key `i` after `mark`
    /// events, and for a registration after it.
    fn wait_registered_with(&self, i: usize, mark: usize) {
        let key = self.keys[i].0.as_str();
        self.standin
            .events
            .wait("the worker's authentication and registration", |lines| {
                let after: Vec<Value> = lines
                    .iter()
                    .skip(mark)
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                    .collect();
                after
                    .iter()
                    .position(|e| e["event"] == "auth" && e["ok"] == true && e["iss"] == key)
                    .is_some_and(|a| after[a..].iter().any(|e| e["event"] == "register"))
            });
    }

    fn after(&self, mark: usize) -> Vec<Value> {
        self.standin.parsed().split_off(mark)
    }

    fn assert_nothing_leaked(&self, log: &str) {
        support::Forbidden::new()
            .token(&self.token)
            .values([&self.keys[0].1, &self.keys[1].1])
            .value(EXAMPLE_SECRET.1)
            .assert_not_in("the output", log);
    }
}

impl Drop for Rotation {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// After `mark`: the old worker reported WS_FULL and closed, then a worker
/// authenticated with the new key and registered; nothing used the old key.
fn assert_rolled_once(r: &Rotation, mark: usize, log: &str) {
    let after = r.after(mark);
    let full = after
        .iter()
        .position(|e| e["event"] == "status" && e["status"] == "WS_FULL");
    let closed = after.iter().position(|e| e["event"] == "closed");
    let new_auth = after
        .iter()
        .position(|e| e["event"] == "auth" && e["iss"] == r.keys[1].0.as_str());
    assert!(
        full.is_some() && full < closed && closed < new_auth,
        "restart: drain (WS_FULL, closed), then the new worker: {after:?}\n{log}"
    );
    assert_eq!(
        after.iter().filter(|e| e["event"] == "closed").count(),
        1,
        "one worker went: {after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|e| e["event"] == "auth" && e["iss"] == r.keys[0].0.as_str()),
        "nothing connected with the old key after the roll: {after:?}"
    );
}

/// A bad update (sealed for another token) changes nothing: one error
/// line, no drain, no new connection, the worker stays registered.
fn assert_bad_update_changes_nothing(r: &Rotation, agent: &Agent) {
    let mark = r.standin.parsed().len();
    let other = Token::generate().unwrap();
    let bad = support::bundle::seal(
        &other,
        &support::bundle::plaintext(&[EXAMPLE_SECRET], &support::bundle::LIVEKIT),
    );
    std::fs::write(r.dir.join("bad.tmp"), bad).unwrap();
    std::fs::rename(r.dir.join("bad.tmp"), r.dir.join("bundle.json")).unwrap();
    agent
        .output
        .wait("the refusal, twice (two checks)", |lines| {
            lines
                .iter()
                .filter(|l| {
                    l.contains("does not authenticate") && l.contains("the agent keeps running")
                })
                .count()
                >= 2
        });
    // (WS_FULL alone is no sign: a worker reports it whenever the machine
    // is busy; a drain ends in a close.)
    let after = r.after(mark);
    assert!(
        !after
            .iter()
            .any(|e| e["event"] == "closed" || e["event"] == "auth"),
        "the running worker was not touched: {after:?}"
    );
    assert!(!agent.log().contains("draining worker"), "{}", agent.log());
}

fn start_python_watching(r: &Rotation, flags: &[&str], port: u16) -> Agent {
    let venv_bin = venv_python().parent().unwrap().to_path_buf();
    let mut env = r.env(&venv_bin);
    env.push(("AGENT_HTTP_PORT", port.to_string()));
    let mut args = vec!["--supervise", "--watch", "5"];
    args.extend(flags);
    args.extend(["--", "python", "agent.py", "start", "--drain-timeout", "60"]);
    Agent::start(&python_agent_dir(), &env, &args)
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn python_worker_under_watch_rolls_once_to_the_new_api_secret_and_ignores_a_bad_update() {
    let r = Rotation::new("watch-python");
    let mut agent = start_python_watching(&r, &[], 0);
    r.wait_registered_with(0, 0);
    r.standin
        .wait_event("the first status report", |e| e["event"] == "status");
    assert_bad_update_changes_nothing(&r, &agent);

    let mark = r.standin.parsed().len();
    r.seal(1);
    r.wait_registered_with(1, mark);
    let log = agent.log();
    assert_rolled_once(&r, mark, &log);
    assert_eq!(
        log.matches("draining worker").count(),
        1,
        "one worker drained, once: {log}"
    );
    assert_eq!(log.matches("SIGTERM to generation 0").count(), 1, "{log}");

    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    assert_eq!(status.code(), Some(0), "the new worker's own status: {log}");
    r.assert_nothing_leaked(&log);
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn python_worker_under_watch_through_agent_secrets_drains_once_and_registers_with_the_new_api_secret(
) {
    // The bundle comes from a real agent-secrets over HTTPS; the operator
    // rotates the LiveKit key with `agent-secrets update-secrets`.
    let r = Rotation::through_service("watch-python-service");
    let mut agent = start_python_watching(&r, &[], 0);
    r.wait_registered_with(0, 0);
    r.standin
        .wait_event("the first status report", |e| e["event"] == "status");
    let mark = r.standin.parsed().len();
    r.seal(1);
    r.wait_registered_with(1, mark);
    let log = agent.log();
    assert_rolled_once(&r, mark, &log);
    assert_eq!(
        log.matches("draining worker").count(),
        1,
        "one worker drained, once: {log}"
    );
    assert_eq!(log.matches("SIGTERM to generation 0").count(), 1, "{log}");
    assert!(
        log.contains("roll to bundle \""),
        "the version is the service's ETag: {log}"
    );
    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    assert_eq!(status.code(), Some(0), "the new worker's own status: {log}");
    r.assert_nothing_leaked(&log);
    let svc = r.service.as_ref().unwrap();
    assert!(
        !svc.log().contains(&r.keys[1].1),
        "the service saw ciphertext only"
    );
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn node_worker_under_watch_rolls_once_to_the_new_api_secret_and_ignores_a_bad_update() {
    require_node_agent();
    let r = Rotation::new("watch-node");
    let mut env = r.env(Path::new("/usr/local/bin"));
    env.extend([
        ("AGENT_HTTP_PORT", free_port().to_string()),
        ("AGENT_DRAIN_TIMEOUT", "60".to_string()),
        ("AGENT_IDLE_PROCESSES", "1".to_string()),
        ("LOG_LEVEL", "debug".to_string()),
    ]);
    let mut agent = Agent::start(
        &node_agent_dir(),
        &env,
        &[
            "--supervise",
            "--watch",
            "5",
            "--",
            "node",
            "dist/agent.js",
            "start",
        ],
    );
    r.wait_registered_with(0, 0);
    // See node_agent_registers_...: signal a worker that is fully up.
    agent.output.wait("the job process to be ready", |lines| {
        lines.iter().any(|l| l.contains("job runner initialized"))
    });
    assert_bad_update_changes_nothing(&r, &agent);

    let mark = r.standin.parsed().len();
    r.seal(1);
    r.wait_registered_with(1, mark);
    let log = agent.log();
    assert_rolled_once(&r, mark, &log);
    assert_eq!(log.matches("SIGTERM to generation 0").count(), 1, "{log}");
    agent
        .output
        .wait("the new job process to be ready", |lines| {
            lines
                .iter()
                .filter(|l| l.contains("job runner initialized"))
                .count()
                >= 2
        });

    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    assert_eq!(
        status.code(),
        Some(143),
        "the new worker's own status: {log}"
    );
    r.assert_nothing_leaked(&log);
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn overlap_with_two_python_workers_never_leaves_the_server_without_a_registered_worker() {
    let r = Rotation::new("watch-overlap");
    // Two adjacent free ports: the generations take turns on N and N+1.
    let port = loop {
        let p = free_port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    let p = port.to_string();
    // A Python worker answers 200 before it registers: --overlap-settle
    // covers its start-up (its job processes, then the connection).
    let mut agent = start_python_watching(
        &r,
        &[
            "--on-update",
            "overlap",
            "--health-port",
            &p,
            "--overlap-settle",
            "20",
        ],
        port,
    );
    r.wait_registered_with(0, 0);
    r.standin
        .wait_event("the first status report", |e| e["event"] == "status");

    let mark = r.standin.parsed().len();
    r.seal(1);
    r.wait_registered_with(1, mark);
    r.standin
        .wait_event("the old worker to close", |e| e["event"] == "closed");
    // The old worker's "draining worker" line can reach its pipe after the
    // server has seen its connection close: wait for it rather than race it.
    let t0 = std::time::Instant::now();
    while !agent.log().contains("draining worker") && t0.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = agent.log();
    // Registered workers over time: +1 per registration, -1 per close.
    let mut registered = 0i32;
    let mut seen = false;
    for e in r.standin.parsed() {
        match e["event"].as_str() {
            Some("register") => {
                registered += 1;
                seen = true;
            }
            Some("closed") => {
                registered -= 1;
                assert!(
                    registered > 0,
                    "no worker was registered at one moment: {:?}\n{log}",
                    r.standin.parsed()
                );
            }
            _ => {}
        }
    }
    assert!(seen && registered == 1, "one worker serves at the end");
    let after = r.after(mark);
    let new_register = after.iter().position(|e| e["event"] == "register");
    let closed = after.iter().position(|e| e["event"] == "closed");
    assert!(
        new_register.is_some() && new_register < closed,
        "the new worker registered before the old one went: {after:?}"
    );
    assert!(
        log.contains(&format!("AGENT_HTTP_PORT={}", port + 1)),
        "{log}"
    );
    assert_eq!(log.matches("draining worker").count(), 1, "{log}");
    // The watch re-reads the (0644) token file at every check; it warns once.
    assert_eq!(log.matches("by other users").count(), 1, "{log}");

    agent.sigterm();
    let status = agent.wait_exit();
    let log = agent.log();
    assert_eq!(status.code(), Some(0), "{log}");
    r.assert_nothing_leaked(&log);
}
