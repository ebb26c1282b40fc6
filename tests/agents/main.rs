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
//!
//! One test binary; a module per behaviour: `registration` (each worker in
//! each mode registers with the bundle's credentials, a job process reads
//! the file secret, SIGTERM drains it), `health` (`agent-init health`
//! against a registered and a refused worker), `watch` (a resealed bundle
//! rolls the worker once; overlap keeps one registered). Beside them the
//! fixtures: the stand-in (`livekit_standin.py`) and the probe agents
//! (`probe-python`, `probe-node`) that tests/containers builds into images.

#[path = "../support/mod.rs"]
mod support;

mod health;
mod registration;
mod watch;

use agent_init::protocol::token::Token;
use serde_json::Value;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::bundle;
use support::server::{Reply, Server};
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
