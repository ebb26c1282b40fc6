//! `agent-init health` against the real workers: 0 while one is registered
//! and runs, 1 once it is gone or when the stand-in refused its secret.

use super::*;

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
