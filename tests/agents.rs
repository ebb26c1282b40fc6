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
//! Each run is a `support::Harness`: its directory is the worker's HOME and
//! holds the token (and the test CA, or the bundle a test reseals), its
//! environment is agent-init's, its `Forbidden` what no output may show;
//! the file secrets' directory on /dev/shm goes with it. The stand-in and
//! the secrets server (or a real agent-secrets) run beside it.
//!
//! Required: `bash scripts/test.sh` has installed the agents
//! (examples/python-agent/.venv, examples/node-agent/node_modules and dist).
//! A missing one fails the test with the command that installs it.

mod support;

use agent_init::protocol::token::Token;
use serde_json::Value;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::bundle::{self, CREDENTIALS_FILE};
use support::server::{Reply, Server};
use support::service::Secrets;
use support::tls::Ca;
use support::Harness;

/// Bound on waiting for an agent or the stand-in; never a timing assertion
/// (a worker's start-up imports take seconds on a busy machine).
const PATIENCE: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the example agent's virtualenv (it also runs the stand-in,
/// which needs aiohttp and livekit-protocol from it).
fn venv_python() -> PathBuf {
    let p = repo().join("examples/python-agent/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/test.sh` (it creates the venv and installs requirements.txt)",
        p.display()
    );
    p
}

fn require_node_agent() {
    let dir = Lang::Node.dir();
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

/// The two example workers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Python,
    Node,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Node => "node",
        }
    }

    /// The example agent's directory, where it runs.
    fn dir(self) -> PathBuf {
        repo().join("examples").join(match self {
            Lang::Python => "python-agent",
            Lang::Node => "node-agent",
        })
    }

    /// The name the worker registers under.
    fn agent_name(self) -> String {
        format!("agent-init-example-{}", self.name())
    }

    /// The worker's command line.
    fn command(self) -> &'static [&'static str] {
        match self {
            Lang::Python => &["python", "agent.py", "start", "--drain-timeout", "60"],
            Lang::Node => &["node", "dist/agent.js", "start"],
        }
    }

    /// `PATH` and the worker's own settings, its health server on `port`.
    fn env(self, port: u16) -> Vec<(&'static str, String)> {
        let bin = match self {
            Lang::Python => venv_python().parent().unwrap().to_path_buf(),
            Lang::Node => {
                require_node_agent();
                PathBuf::from("/usr/local/bin")
            }
        };
        let mut env = vec![
            ("PATH", format!("{}:{}", bin.display(), support::PATH)),
            ("AGENT_HTTP_PORT", port.to_string()),
        ];
        if self == Lang::Node {
            env.extend([
                ("AGENT_DRAIN_TIMEOUT", "60".to_string()),
                // One warm job process, and debug logs that say when it is ready.
                ("AGENT_IDLE_PROCESSES", "1".to_string()),
                ("LOG_LEVEL", "debug".to_string()),
            ]);
        }
        env
    }

    /// A port for the worker's health server that no other run has: the
    /// Python worker takes 0 for a free one, the Node worker takes 0 as
    /// "use the default, 8081".
    fn any_port(self) -> u16 {
        match self {
            Lang::Python => 0,
            Lang::Node => free_port(),
        }
    }

    /// The worker's own exit status after a drain (the Node worker calls
    /// process.exit(143)).
    fn drained_status(self) -> i32 {
        match self {
            Lang::Python => 0,
            Lang::Node => 143,
        }
    }

    /// Waits until the worker is fully up: the Python one has reported its
    /// status once (registered and running, not starting; the status itself
    /// follows the machine's load), the Node one has its job process ready.
    /// (@livekit/agents 1.9.0 mishandles a SIGTERM that lands while its job
    /// processes are still starting: it waits a minute for them to ack the
    /// shutdown.)
    fn wait_until_running(self, standin: &StandIn, agent: &Agent) {
        match self {
            Lang::Python => {
                standin.wait_event("the worker's first status report", |e| {
                    e["event"] == "status"
                });
            }
            Lang::Node => agent.wait_job_runners(1),
        }
    }
}

/// agent-init's two ways to start the worker.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// agent-init becomes the worker.
    Exec,
    /// `--supervise`: the worker is agent-init's one child.
    Supervise,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Exec => "exec",
            Mode::Supervise => "supervise",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Exec => &[],
            Mode::Supervise => &["--supervise"],
        }
    }

    /// The worker's main process.
    fn worker(self, agent: &Agent) -> i32 {
        match self {
            Mode::Exec => agent.pid().as_raw(),
            Mode::Supervise => support::procfs::children(agent.pid().as_raw())[0],
        }
    }
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    /// The API keys and secrets it accepts.
    credentials: Vec<(String, String)>,
}

impl StandIn {
    /// A stand-in that accepts each of `credentials` (key, secret).
    fn start(credentials: Vec<(String, String)>) -> StandIn {
        let mut cmd = Command::new(venv_python());
        cmd.arg(repo().join("tests/agents/livekit_standin.py"));
        for (key, secret) in &credentials {
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
            credentials,
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

    /// How many events it has reported so far.
    fn mark(&self) -> usize {
        self.events.all().len()
    }

    /// The events after the first `mark`.
    fn after(&self, mark: usize) -> Vec<Value> {
        self.parsed().split_off(mark)
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

    /// It verified a JWT signed with its first secret and issued by its
    /// first key, and the worker registered under `agent_name`.
    fn assert_registered(&self, agent_name: &str) {
        let auth = self.wait_event("the worker's connection", |e| e["event"] == "auth");
        assert_eq!(auth["ok"], true, "the stand-in accepted the JWT: {auth}");
        assert_eq!(auth["iss"], self.credentials[0].0.as_str());
        let reg = self.wait_event("the worker's registration", |e| e["event"] == "register");
        assert_eq!(reg["agent_name"], agent_name);
    }

    /// Waits for a successful authentication with key `i` after `mark`
    /// events, and for a registration after it.
    fn wait_registered_with(&self, i: usize, mark: usize) {
        let key = self.credentials[i].0.as_str();
        self.events
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

    /// After SIGTERM (sent when it had reported `mark` events): the worker
    /// told the server it takes no more jobs (WS_FULL, what a drain sends
    /// first), then closed its connection.
    fn assert_drained(&self, mark: usize, log: &str) {
        self.wait_event("the worker to close", |e| e["event"] == "closed");
        let after = self.after(mark);
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
    /// agent-init with `h`'s environment and `flags`, running the worker of
    /// `lang` in its directory with its health server on `port`.
    fn start(h: &Harness, lang: Lang, flags: &[&str], port: u16) -> Agent {
        let args: Vec<OsString> = flags
            .iter()
            .chain(&["--"])
            .chain(lang.command())
            .map(OsString::from)
            .collect();
        let mut cmd = h.command(support::bin(), &args);
        cmd.envs(lang.env(port))
            .current_dir(lang.dir())
            .process_group(0);
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
        let (child, output) = (&mut self.child, &self.output);
        let status = support::wait_for(
            PATIENCE,
            Duration::from_millis(100),
            || child.try_wait().unwrap(),
            || {
                let log = output.all().join("\n");
                format!("the agent did not exit after SIGTERM; output:\n{log}")
            },
        );
        self.exited = Some(status);
        // Let the output threads drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        status
    }

    /// SIGTERM, and the exit status once it is gone.
    fn stop(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit()
    }

    fn log(&self) -> String {
        self.output.all().join("\n")
    }

    /// Waits until the Node worker has started `n` job processes in all
    /// (its debug log says when each is ready).
    fn wait_job_runners(&self, n: usize) {
        self.output.wait("the job process to be ready", |lines| {
            lines
                .iter()
                .filter(|l| l.contains("job runner initialized"))
                .count()
                >= n
        });
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

const EXAMPLE_SECRET: (&str, &str) = ("EXAMPLE_SECRET", "example-secret-value-e2e");

/// One end-to-end run: a stand-in that expects a fresh API key and secret,
/// and a secrets server whose bundle carries that key, `bundle_secret` (the
/// stand-in's secret if none), [`EXAMPLE_SECRET`] and the file secret
/// [`bundle::credentials`]. The harness holds the token and the test CA,
/// and agent-init's environment points at the server; the secret values,
/// the token and the file's private key are forbidden in output.
fn e2e(name: &str, bundle_secret: Option<&str>) -> (Harness, StandIn, Server) {
    let token = Token::generate().unwrap();
    let id = token.id_b64();
    let api_key = format!("APIe2e{}", &id[..8]);
    let api_secret = format!("e2e-secret-{id}");
    let bundle_secret = bundle_secret.unwrap_or(&api_secret).to_string();
    let standin = StandIn::start(vec![(api_key.clone(), api_secret.clone())]);
    let plain = bundle::plaintext(
        &[EXAMPLE_SECRET],
        &[
            ("LIVEKIT_URL", standin.url.as_str()),
            ("LIVEKIT_API_KEY", api_key.as_str()),
            ("LIVEKIT_API_SECRET", bundle_secret.as_str()),
        ],
    );
    // A file secret (PROTOCOL.md §6.1), as `lk agent create --secret-mount` makes one.
    let plain = bundle::with_credentials_file(&plain, &bundle::credentials(&id));
    let ca = Ca::new("agent-init e2e CA");
    let server = Server::start(
        &ca.localhost(),
        vec![Reply::ok(bundle::seal(&token, &plain))],
    );
    let mut h = Harness::new(name);
    h.write_token(&token);
    let ca_file = ca.write_pem(&h.dir);
    h.forbid(&[&api_secret, &bundle_secret, EXAMPLE_SECRET.1]);
    h.forbid(&[&bundle::credentials_key(&id)]);
    h.set("HOME", h.dir.clone());
    h.set("LIVEKIT_BOOTSTRAP_TOKEN", token.encode().expose());
    h.set("LIVEKIT_SECRETS_URL", server.url());
    h.set("AGENT_INIT_CA_FILE", ca_file);
    // Each run's own directory for the file secrets (tests run in parallel);
    // exec mode leaves it behind (agent-init became the worker).
    let files = files_dir(&h);
    h.set("AGENT_INIT_SECRETS_DIR", files.clone());
    h.remove_too(files);
    (h, standin, server)
}

/// Where agent-init puts `h`'s file secrets.
fn files_dir(h: &Harness) -> PathBuf {
    PathBuf::from(format!("/dev/shm/agent-init-e2e-{}", h.token().id_b64()))
}

/// agent-init fetched the bundle once, with `h`'s token's Authorization.
fn assert_fetched_with_the_token(h: &Harness, server: &Server) {
    server.wait_for_requests(1);
    let req = &server.requests()[0];
    assert_eq!(
        req.header("authorization"),
        h.token().authorization().expose(),
        "agent-init authenticated to the secrets server with the token"
    );
}

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

/// The worker of `lang` under --supervise: the probe is 0 (`answered 200`)
/// once it has registered and runs, and 1 once it is gone.
fn health_probe_follows_a_registered_worker(lang: Lang) {
    let (h, standin, _server) = e2e(&format!("e2e-{}-health", lang.name()), None);
    let port = free_port();
    let mut agent = Agent::start(&h, lang, Mode::Supervise.flags(), port);
    standin.assert_registered(&lang.agent_name());
    lang.wait_until_running(&standin, &agent);
    let (code, line) = health(port);
    assert_eq!((code, line.contains("answered 200")), (0, true), "{line}");
    agent.stop();
    let (code, line) = health(port);
    assert_eq!(code, 1, "{line}");
}

/// The worker of `lang` in `mode` with a bundle whose API secret is not the
/// stand-in's: the stand-in, which really checks the signature, refuses it,
/// and it never registers. Returns what the health probe then says.
fn refused_worker_health(lang: Lang, mode: Mode) -> (i32, String) {
    let name = format!("e2e-{}-wrong-secret", lang.name());
    let (h, standin, server) = e2e(&name, Some("not-the-api-secret"));
    let port = free_port();
    let mut agent = Agent::start(&h, lang, mode.flags(), port);
    assert_fetched_with_the_token(&h, &server);
    let auth = standin.wait_event("the worker's connection", |e| e["event"] == "auth");
    assert_eq!(auth["ok"], false, "{auth}");
    assert_eq!(
        auth["reason"], "signature does not verify with the API secret",
        "{auth}"
    );
    assert!(
        !standin.parsed().iter().any(|e| e["event"] == "register"),
        "a refused worker never registers"
    );
    let health = health_once_listening(port);
    agent.stop();
    health
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn health_probe_is_0_against_a_registered_python_worker_and_1_once_it_is_gone() {
    health_probe_follows_a_registered_worker(Lang::Python);
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn stand_in_server_refuses_a_worker_whose_secret_is_not_the_one_it_expects() {
    // What the Python SDK's health endpoint means: 200 while it is still
    // (re)connecting; 503 only after its 16 attempts (about 130 s) failed.
    let (code, line) = refused_worker_health(Lang::Python, Mode::Exec);
    assert!(
        code == 0 && line.contains("answered 200"),
        "a Python worker that is not registered still answers 200: {line}"
    );
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn health_probe_is_0_against_a_connected_node_worker_and_1_against_a_refused_one() {
    // Node answers 200 only while its WebSocket to LiveKit is open.
    health_probe_follows_a_registered_worker(Lang::Node);
    let (code, line) = refused_worker_health(Lang::Node, Mode::Supervise);
    assert_eq!(
        code, 1,
        "a Node worker that is not connected is unhealthy: {line}"
    );
    assert!(line.contains("answered 503"), "{line}");
}

// ---------------------------------------------------------------------------
// --watch: the bundle is resealed with a new LiveKit API key and secret
// under a running worker.

/// Where a rotated bundle comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    /// A file in the harness's directory, resealed by `agent-init seal`.
    File,
    /// A real agent-secrets over HTTPS (`create`, then `update-secrets`).
    Service,
}

/// A worker's credentials to be rotated: a stand-in that accepts the old
/// and the new key (as LiveKit does while both exist) and verifies each
/// JWT with its issuer's secret; the bundle sealed with the old ones (in
/// `source`), the token in the harness's `token` file (0644 for a file
/// bundle: other users may read it, whatever the umask, and agent-init
/// warns once), agent-init's environment pointing at both. The secret
/// values and the token are forbidden in output.
fn rotation(name: &str, source: Source) -> (Harness, StandIn, Option<Secrets>) {
    let mut h = Harness::new(name);
    let token = Token::generate().unwrap();
    let id = token.id_b64();
    let standin = StandIn::start(vec![
        (format!("APIold{}", &id[..6]), format!("old-secret-{id}")),
        (format!("APInew{}", &id[..6]), format!("new-secret-{id}")),
    ]);
    h.write_token(&token);
    h.forbid(&[
        standin.credentials[0].1.as_str(),
        standin.credentials[1].1.as_str(),
        EXAMPLE_SECRET.1,
    ]);
    h.set("HOME", h.dir.clone());
    h.set("LIVEKIT_BOOTSTRAP_TOKEN_FILE", h.dir.join("token"));
    let service = (source == Source::Service).then(|| Secrets::start(&support::scratch(name)));
    match &service {
        Some(svc) => {
            // The service makes the token: `create` writes it to the token file.
            let args = service_inputs(&standin, 0);
            let token = svc.create(&h.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
            h.forbidden.add_token(&Token::parse(&token).unwrap());
            h.set("LIVEKIT_SECRETS_URL", svc.bundle_url());
            h.set("AGENT_INIT_CA_FILE", svc.ca.clone());
        }
        None => {
            reseal(&h, &standin, None, 0);
            let url = format!("file://{}", h.dir.join("bundle.json").display());
            h.set("LIVEKIT_SECRETS_URL", url);
        }
    }
    (h, standin, service)
}

/// The `--secrets` arguments for the stand-in's credentials `i`.
fn service_inputs(standin: &StandIn, i: usize) -> Vec<String> {
    secret_lines(standin, i)
        .into_iter()
        .flat_map(|s| ["--secrets".to_string(), s])
        .collect()
}

/// `NAME=VALUE` of the platform's values with credentials `i`, and
/// [`EXAMPLE_SECRET`].
fn secret_lines(standin: &StandIn, i: usize) -> Vec<String> {
    let (key, secret) = &standin.credentials[i];
    vec![
        format!("LIVEKIT_URL={}", standin.url),
        format!("LIVEKIT_API_KEY={key}"),
        format!("LIVEKIT_API_SECRET={secret}"),
        format!("{}={}", EXAMPLE_SECRET.0, EXAMPLE_SECRET.1),
    ]
}

/// Seals credentials `i` into the bundle and renames it in place, or
/// (through the service) stores them with `agent-secrets update-secrets`.
fn reseal(h: &Harness, standin: &StandIn, service: Option<&Secrets>, i: usize) {
    if let Some(svc) = service {
        let args = service_inputs(standin, i);
        svc.update(&h.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
        return;
    }
    let env = h.file("secrets.env", secret_lines(standin, i).join("\n") + "\n");
    let tmp = h.dir.join("bundle.tmp");
    let out = Command::new(support::bin())
        .args(["seal", "--secrets-file"])
        .arg(&env)
        .arg("--out")
        .arg(&tmp)
        .args(["--token", h.token().encode().expose()])
        .output()
        .unwrap();
    assert!(out.status.success(), "agent-init seal: {out:?}");
    std::fs::rename(&tmp, h.dir.join("bundle.json")).unwrap();
}

/// After `mark`: the old worker reported WS_FULL and closed, then a worker
/// authenticated with the new key and registered; nothing used the old key.
fn assert_rolled_once(standin: &StandIn, mark: usize, log: &str) {
    let after = standin.after(mark);
    let [(old, _), (new, _)] = &standin.credentials[..] else {
        panic!("two credentials")
    };
    let full = after
        .iter()
        .position(|e| e["event"] == "status" && e["status"] == "WS_FULL");
    let closed = after.iter().position(|e| e["event"] == "closed");
    let new_auth = after
        .iter()
        .position(|e| e["event"] == "auth" && e["iss"] == new.as_str());
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
            .any(|e| e["event"] == "auth" && e["iss"] == old.as_str()),
        "nothing connected with the old key after the roll: {after:?}"
    );
    assert_eq!(log.matches("SIGTERM to generation 0").count(), 1, "{log}");
}

/// A bad update (sealed for another token) changes nothing: one error
/// line, no drain, no new connection, the worker stays registered.
fn assert_bad_update_changes_nothing(h: &Harness, standin: &StandIn, agent: &Agent) {
    let mark = standin.mark();
    let other = Token::generate().unwrap();
    let bad = bundle::seal(
        &other,
        &bundle::plaintext(&[EXAMPLE_SECRET], &bundle::LIVEKIT),
    );
    h.file("bad.tmp", bad);
    std::fs::rename(h.dir.join("bad.tmp"), h.dir.join("bundle.json")).unwrap();
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
    let after = standin.after(mark);
    assert!(
        !after
            .iter()
            .any(|e| e["event"] == "closed" || e["event"] == "auth"),
        "the running worker was not touched: {after:?}"
    );
    assert!(!agent.log().contains("draining worker"), "{}", agent.log());
}

/// The worker of `lang` under `--supervise --watch 5` and `flags`.
fn start_watching(h: &Harness, lang: Lang, flags: &[&str], port: u16) -> Agent {
    let mut all = vec!["--supervise", "--watch", "5"];
    all.extend(flags);
    Agent::start(h, lang, &all, port)
}

/// The worker of `lang` under --watch, its bundle from `source`: a bad
/// update (a file bundle sealed for another token) changes nothing; a new
/// API key and secret roll it once: the old worker drains, one new one
/// registers with the new key, and exits with its own status at the end;
/// nothing secret is printed (through the service: the service saw
/// ciphertext only, and the version is its ETag).
fn worker_under_watch_rolls_once(lang: Lang, source: Source) {
    let name = format!("watch-{}-{source:?}", lang.name());
    let (h, standin, service) = rotation(&name, source);
    let mut agent = start_watching(&h, lang, &[], lang.any_port());
    standin.wait_registered_with(0, 0);
    lang.wait_until_running(&standin, &agent);
    if source == Source::File {
        assert_bad_update_changes_nothing(&h, &standin, &agent);
    }

    let mark = standin.mark();
    reseal(&h, &standin, service.as_ref(), 1);
    standin.wait_registered_with(1, mark);
    let log = agent.log();
    assert_rolled_once(&standin, mark, &log);
    assert_eq!(
        log.matches("draining worker").count(),
        1,
        "one worker drained, once: {log}"
    );
    if source == Source::Service {
        assert!(
            log.contains("roll to bundle \""),
            "the version is the service's ETag: {log}"
        );
    }
    if lang == Lang::Node {
        agent.wait_job_runners(2);
    }

    let status = agent.stop();
    let log = agent.log();
    assert_eq!(
        status.code(),
        Some(lang.drained_status()),
        "the new worker's own status: {log}"
    );
    h.forbidden.assert_not_in("the output", &log);
    if let Some(svc) = &service {
        assert!(
            !svc.log().contains(&standin.credentials[1].1),
            "the service saw ciphertext only"
        );
    }
}

crate::ignored_tests! { "needs the LiveKit frameworks (scripts/test.sh installs them)"; worker_under_watch_rolls_once:
    python_worker_under_watch_rolls_once_to_the_new_api_secret_and_ignores_a_bad_update(Lang::Python, Source::File);
    python_worker_under_watch_through_agent_secrets_drains_once_and_registers_with_the_new_api_secret(Lang::Python, Source::Service);
    node_worker_under_watch_rolls_once_to_the_new_api_secret_and_ignores_a_bad_update(Lang::Node, Source::File);
}

#[test]
#[ignore = "needs the LiveKit frameworks (scripts/test.sh installs them)"]
fn overlap_with_two_python_workers_never_leaves_the_server_without_a_registered_worker() {
    let (h, standin, _) = rotation("watch-overlap", Source::File);
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
    let mut agent = start_watching(
        &h,
        Lang::Python,
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
    standin.wait_registered_with(0, 0);
    Lang::Python.wait_until_running(&standin, &agent);

    let mark = standin.mark();
    reseal(&h, &standin, None, 1);
    standin.wait_registered_with(1, mark);
    standin.wait_event("the old worker to close", |e| e["event"] == "closed");
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
    for e in standin.parsed() {
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
                    standin.parsed()
                );
            }
            _ => {}
        }
    }
    assert!(seen && registered == 1, "one worker serves at the end");
    let after = standin.after(mark);
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

    let status = agent.stop();
    let log = agent.log();
    assert_eq!(status.code(), Some(0), "{log}");
    h.forbidden.assert_not_in("the output", &log);
}
