//! `--watch`: the bundle changes under a supervised agent, and agent-init
//! rolls it (`restart`, `exit`, `overlap`), refuses bad updates without
//! touching it, and keeps signals meaning what they mean during a roll.
//! The agents here are small scripts that log what happens to them; the
//! real LiveKit workers under `--watch` are in tests/agents/watch.rs.
//!
//! Every wait is a hang guard, never a timing assertion.

mod support;

use agent_init::protocol::token::Token;
use nix::sys::signal::Signal;
use std::path::PathBuf;
use support::bundle::sha256_hex;
use support::running::{Running, PATIENCE};
use support::server::{Reply, Server};
use support::service::Secrets;
use support::{procfs, Harness};

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

/// A `--watch` run's harness: in its directory a token file, the agent
/// script and a first bundle (`FOO=one`) sealed for the token; agent-init's
/// environment points at them and at the agents' log; the token's strings
/// are forbidden in output.
fn watched(name: &str) -> (Harness, Token) {
    let mut h = Harness::new(name);
    let token = Token::generate().unwrap();
    h.file("token", token.encode().expose());
    h.file("agent.py", AGENT);
    h.set("LIVEKIT_BOOTSTRAP_TOKEN_FILE", h.dir.join("token"));
    h.set(
        "LIVEKIT_SECRETS_URL",
        format!("file://{}", bundle_path(&h).display()),
    );
    h.set("AGENT_LOG", h.dir.join("agent.log"));
    h.forbidden.add_token(&token);
    write(&h, "one");
    (h, token)
}

/// `agent-init --supervise --watch 5 FLAGS -- python3 agent.py`, started.
fn start(h: &Harness, flags: &[&str]) -> Running {
    let head = ["--supervise", "--watch", "5"];
    let tail = ["--", "python3", "agent.py"];
    h.start(head.iter().chain(flags).chain(&tail))
}

fn bundle_path(h: &Harness) -> PathBuf {
    h.dir.join("bundle.json")
}

/// Replaces the bundle (atomically, as a ConfigMap update does) with one
/// whose FOO is `value`, sealed by `agent-init seal`.
fn write(h: &Harness, value: &str) {
    write_with(h, value, "");
}

/// As [`write`], with `extra` dotenv lines.
fn write_with(h: &Harness, value: &str, extra: &str) {
    seal(h, &format!("{}{extra}", dotenv(value)), None);
}

/// As [`write`], with the file secret `cred.json` holding `content`, its
/// path in `CRED`.
fn write_file(h: &Harness, value: &str, content: &[u8]) {
    seal(h, &dotenv(value), Some(content));
}

/// The platform's three values (the secret names `value`) and `FOO=value`.
fn dotenv(value: &str) -> String {
    format!("LIVEKIT_URL=ws://127.0.0.1:1\nLIVEKIT_API_KEY=APIk\nLIVEKIT_API_SECRET=s-{value}\nFOO={value}\n")
}

/// Replaces the bundle with `dotenv` (and the file secret `cred.json` for
/// `CRED`), sealed by `agent-init seal`.
fn seal(h: &Harness, dotenv: &str, file: Option<&[u8]>) {
    h.file("secrets.env", dotenv);
    let mount;
    let mut args = vec!["--secrets-file", "secrets.env", "--token-file", "token"];
    if let Some(content) = file {
        mount = format!("CRED={}", h.file("cred.json", content).display());
        args.extend(["--secret-mount", &mount]);
    }
    args.extend(["--out", "bundle.tmp"]);
    let out = h.seal(&args);
    assert!(out.status.success(), "seal: {out:?}");
    std::fs::rename(h.dir.join("bundle.tmp"), bundle_path(h)).unwrap();
}

/// The agents' log, an event a line, split at spaces.
fn log(h: &Harness) -> Vec<Vec<String>> {
    std::fs::read_to_string(h.dir.join("agent.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(String::from).collect())
        .collect()
}

/// The logged events of one kind (`start`, `listening`, `term`, `drained`).
fn events(h: &Harness, kind: &str) -> Vec<Vec<String>> {
    log(h).into_iter().filter(|e| e[0] == kind).collect()
}

/// Waits until the log holds what `pred` looks for; fails after
/// [`PATIENCE`] naming `what`.
fn wait_log(h: &Harness, what: &str, pred: impl Fn(&[Vec<String>]) -> bool) {
    support::wait_until(
        PATIENCE,
        || pred(&log(h)),
        || format!("waited in vain for {what}: {:?}", log(h)),
    );
}

/// Waits until the log holds `n` events of `kind`, and no more.
fn wait_events(h: &Harness, what: &str, kind: &str, n: usize) {
    wait_log(h, what, |l| l.iter().filter(|e| e[0] == kind).count() >= n);
    assert_eq!(events(h, kind).len(), n, "{what}: {:?}", log(h));
}

/// A [`watched`] run whose agents drain for `drain` seconds, started with
/// `flags`: once its first generation runs, the bundle is replaced with
/// one whose FOO is `two`.
fn rolled(name: &str, drain: &str, flags: &[&str]) -> (Harness, Running) {
    let (mut h, _) = watched(name);
    h.set("DRAIN", drain);
    let init = start(&h, flags);
    wait_events(&h, "the first generation", "start", 1);
    write(&h, "two");
    (h, init)
}

fn pids_started(h: &Harness) -> Vec<String> {
    events(h, "start")
        .into_iter()
        .map(|e| e[1].clone())
        .collect()
}

#[test]
fn a_new_file_bundle_restarts_the_agent_once_with_the_new_environment() {
    let (h, mut init) = rolled("watch-restart", "1", &[]);
    wait_events(&h, "the second generation", "start", 2);
    let starts = events(&h, "start");
    assert_eq!(starts[0][2], "one");
    assert_eq!(starts[1][2], "two", "the new generation has the new FOO");
    let log = log(&h);
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

/// A secrets directory of the test's own on the shared-memory tmpfs.
fn secrets_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(format!(
        "/dev/shm/agent-init-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A [`watched`] run whose first bundle also holds the file secret
/// `cred.json` with `content`, written under the secrets directory
/// [`secrets_dir`]`(tag)`, which is returned.
fn watched_with_file(name: &str, tag: &str, content: &[u8]) -> (Harness, PathBuf) {
    let (mut h, _) = watched(name);
    let dir = secrets_dir(tag);
    write_file(&h, "one", content);
    h.set("AGENT_INIT_SECRETS_DIR", dir.clone());
    (h, dir)
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
    let (one, two): (&[u8], &[u8]) = (b"{\"key\": \"one\"}", b"{\"key\": \"two\"}");
    let (mut h, dir) = watched_with_file("watch-files-restart", "restart", one);
    h.set("DRAIN", "1");
    let mut init = start(&h, &[]);
    wait_events(&h, "the first generation", "start", 1);
    let path = dir.join("cred.json").display().to_string();
    let first = events(&h, "start")[0].clone();
    assert_eq!(
        (first[4].as_str(), first[5].as_str()),
        (path.as_str(), sha256_hex(one).as_str())
    );
    // A bad update with a new file writes nothing: here its LIVEKIT_API_SECRET is missing.
    seal(
        &h,
        "LIVEKIT_URL=ws://127.0.0.1:1\nLIVEKIT_API_KEY=APIk\nFOO=one\n",
        Some(b"never written"),
    );
    init.wait_line("the refusal", "the agent keeps running", 1);
    assert_eq!(tree(&dir), ["cred.json"]);
    assert_eq!(std::fs::read(dir.join("cred.json")).unwrap(), one);
    // Only the file changes (FOO stays "one"): that is an update too.
    write_file(&h, "one", two);
    wait_events(&h, "the second generation", "start", 2);
    let second = events(&h, "start")[1].clone();
    assert_eq!(second[4], path, "restart keeps the path");
    assert_eq!(
        second[5],
        sha256_hex(two),
        "the new generation reads the new content"
    );
    let drained = events(&h, "drained");
    assert_eq!(drained.len(), 1);
    assert_eq!(
        drained[0][2],
        sha256_hex(one),
        "the old generation kept its file for its whole drain"
    );
    assert_eq!(events(&h, "term").len(), 1, "one roll: {:?}", log(&h));
    // The old content is gone: one file, the new one.
    assert_eq!(tree(&dir), ["cred.json"]);
    assert_eq!(std::fs::read(dir.join("cred.json")).unwrap(), two);
    init.sigterm();
    assert_eq!(init.wait(), 0, "{:#?}", init.stderr());
    assert!(!dir.exists(), "agent-init removed the files when it exited");
}

#[test]
fn file_secrets_under_overlap_go_in_a_directory_per_generation_removed_once_it_drains() {
    let (one, two): (&[u8], &[u8]) = (b"-----BEGIN one-----", b"-----BEGIN two-----");
    let (mut h, dir) = watched_with_file("watch-files-overlap", "overlap", one);
    let port = free_pair();
    let p = port.to_string();
    h.set("DRAIN", "2");
    let mut init = start(&h, &["--on-update", "overlap", "--health-port", &p]);
    wait_events(&h, "the first generation listening", "listening", 1);
    let first = events(&h, "start")[0].clone();
    assert_eq!(first[4], dir.join("0/cred.json").display().to_string());
    assert_eq!(first[5], sha256_hex(one));
    write_file(&h, "two", two);
    wait_events(&h, "the old generation's drain", "drained", 1);
    let second = events(&h, "start")[1].clone();
    assert_eq!(second[4], dir.join("1/cred.json").display().to_string());
    assert_eq!(
        second[5],
        sha256_hex(two),
        "the new generation reads the new content"
    );
    assert_eq!(
        events(&h, "drained")[0][2],
        sha256_hex(one),
        "the old generation kept its own file while both ran and it drained"
    );
    // Once it has drained, its directory goes; the serving one's stays.
    init.wait_line("the drained generation", "has drained", 1);
    support::wait_until(
        PATIENCE,
        || !dir.join("0").exists(),
        || format!("{:?}", tree(&dir)),
    );
    assert_eq!(tree(&dir), ["1", "1/cred.json"]);
    init.sigterm();
    assert_eq!(init.wait(), 0, "{:#?}", init.stderr());
    assert!(!dir.exists(), "agent-init removed the files when it exited");
}

#[test]
fn a_bad_update_changes_nothing_and_says_why_in_one_line_each_check() {
    let (h, token) = watched("watch-bad");
    let init = start(&h, &[]);
    wait_events(&h, "the first generation", "start", 1);
    let other = Token::generate().unwrap();
    let wrong_token = support::bundle::seal(
        &other,
        &support::bundle::plaintext(&[("FOO", "x")], &support::bundle::LIVEKIT),
    );
    let no_secret = support::bundle::seal(
        &token,
        &support::bundle::plaintext(&[("FOO", "x")], &support::bundle::LIVEKIT[..2]),
    );
    let bad_name = support::bundle::seal(
        &token,
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
        support::bundle::replace(&bundle_path(&h), body);
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
    assert_eq!(pids_started(&h).len(), 1, "never restarted: {:?}", log(&h));
    assert!(events(&h, "term").is_empty());
    h.forbidden
        .assert_not_in("stderr", &init.stderr().join("\n"));
    // The next good bundle rolls as usual.
    write(&h, "two");
    wait_events(&h, "the second generation", "start", 2);
}

#[test]
fn a_token_in_the_environment_is_refused_with_78_and_nothing_starts() {
    let (mut h, token) = watched("watch-env-token");
    h.unset("LIVEKIT_BOOTSTRAP_TOKEN_FILE");
    h.set("LIVEKIT_BOOTSTRAP_TOKEN", token.encode().expose());
    let out = h
        .agent()
        .args(["--supervise", "--watch", "5", "--", "python3", "agent.py"])
        .output();
    h.assert_failed(&out, 78);
    assert!(log(&h).is_empty(), "nothing started");
}

#[test]
fn exit_policy_drains_the_agent_then_exits_75() {
    let (h, mut init) = rolled("watch-exit", "1", &["--on-update", "exit"]);
    assert_eq!(init.wait(), 75, "{:#?}", init.stderr());
    let log = log(&h);
    assert_eq!(events(&h, "start").len(), 1, "no new generation: {log:?}");
    assert_eq!(events(&h, "term").len(), 1);
    assert_eq!(events(&h, "drained").len(), 1, "the drain finished first");
}

#[test]
fn a_drain_past_the_drain_timeout_is_cut_by_sigkill() {
    let (h, init) = rolled("watch-kill", "600", &["--drain-timeout", "1"]);
    wait_events(&h, "the second generation", "start", 2);
    assert!(events(&h, "drained").is_empty(), "the drain was cut");
    assert!(init
        .stderr()
        .iter()
        .any(|l| l.contains("still runs after --drain-timeout; SIGKILL")));
}

#[test]
fn sigterm_during_a_drain_reaches_the_agent_once_and_nothing_restarts() {
    let (h, mut init) = rolled("watch-stop-mid-drain", "3", &[]);
    wait_events(&h, "the roll's SIGTERM", "term", 1);
    init.sigterm();
    assert_eq!(init.wait(), 0, "the draining agent's own status");
    assert_eq!(events(&h, "term").len(), 1, "one SIGTERM: {:?}", log(&h));
    assert_eq!(events(&h, "start").len(), 1, "no new generation");
    assert_eq!(events(&h, "drained").len(), 1, "its drain completed");
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
    let (mut h, _) = watched("watch-overlap");
    let port = free_pair();
    let p = port.to_string();
    h.set("READY_DELAY", "2");
    let init = start(&h, &["--on-update", "overlap", "--health-port", &p]);
    wait_events(&h, "the first generation listening", "listening", 1);
    write(&h, "two");
    wait_events(&h, "the old generation's SIGTERM", "term", 1);
    let log = log(&h);
    let starts = events(&h, "start");
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
    assert_eq!(events(&h, "term").len(), 1);
    assert!(init
        .stderr()
        .iter()
        .any(|l| l.contains(&format!("answers 200 on port {}", port + 1))));
    // And `agent-init health` sees whichever generation serves.
    let out = support::Run::new(&h.dir)
        .args(["health", "--port", &p, "--port", &(port + 1).to_string()])
        .output();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn sigterm_while_the_new_overlap_generation_starts_stops_both_once() {
    let (h, _) = watched("watch-overlap-stop");
    let port = free_pair();
    let p = port.to_string();
    let mut init = start(&h, &["--on-update", "overlap", "--health-port", &p]);
    wait_events(&h, "the first generation listening", "listening", 1);
    // The new generation takes 60 s to answer: the stop lands before.
    write_with(&h, "two", "READY_DELAY=60\n");
    wait_events(&h, "the second generation", "start", 2);
    init.sigterm();
    let code = init.wait();
    assert_eq!(code, 0, "{:#?}", init.stderr());
    let log = log(&h);
    let starts = events(&h, "start");
    assert!(
        events(&h, "listening").len() == 1,
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
        events(&h, "drained").len(),
        2,
        "both were gone before agent-init exited"
    );
}

#[test]
fn sigterm_during_a_check_that_hangs_reaches_the_agent_without_waiting_for_the_check() {
    // The check runs beside the signal loop: a `docker stop` (10 s grace by
    // default) while the service hangs is forwarded at once, not after the
    // check's 10 s deadline, which would leave the agent no time to drain.
    let (mut h, token) = watched("watch-stop-mid-check");
    let plain = support::bundle::plaintext(&[("FOO", "one")], &support::bundle::LIVEKIT);
    let server = Server::start_plain(vec![
        Reply::ok(support::bundle::seal(&token, &plain)).header("ETag", "\"v1\""),
        Reply::hang(),
    ]);
    h.set("LIVEKIT_SECRETS_URL", server.url());
    let mut init = start(&h, &[]);
    wait_events(&h, "the first generation", "start", 1);
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
    assert_eq!(events(&h, "term").len(), 1, "one SIGTERM: {:?}", log(&h));
    assert_eq!(events(&h, "drained").len(), 1);
    assert_eq!(server.requests().len(), 2, "no other check began");
}

#[test]
fn over_https_the_check_sends_if_none_match_and_a_304_rolls_nothing() {
    let (mut h, token) = watched("watch-etag");
    let plain = |foo: &str| support::bundle::plaintext(&[("FOO", foo)], &support::bundle::LIVEKIT);
    let one = support::bundle::seal(&token, &plain("one"));
    let two = support::bundle::seal(&token, &plain("two"));
    let server = Server::start_plain(vec![
        Reply::ok(one).header("ETag", "\"v1\""),
        Reply::status(304),
        Reply::ok(two).header("ETag", "\"v2\""),
    ]);
    h.set("LIVEKIT_SECRETS_URL", server.url());
    let init = start(&h, &[]);
    wait_events(&h, "the second generation", "start", 2);
    let reqs = server.requests();
    assert_eq!(reqs[0].header_values("if-none-match"), Vec::<&str>::new());
    assert_eq!(reqs[1].header("if-none-match"), "\"v1\"");
    assert_eq!(reqs[2].header("if-none-match"), "\"v1\"");
    let starts = events(&h, "start");
    assert_eq!(
        (starts[0][2].as_str(), starts[1][2].as_str()),
        ("one", "two")
    );
    init.wait_line("the roll", "roll to bundle \"v2\"", 1);
    // Later checks ask for "v2" and the same body changes nothing.
    server.wait_for_requests(4);
    assert_eq!(server.requests()[3].header("if-none-match"), "\"v2\"");
    assert_eq!(events(&h, "start").len(), 2);
}

/// A [`watched`] run fetching from a real agent-secrets service, for whose
/// new token (in the token file, and forbidden in output) `create` sealed
/// the agent script's secrets with `FOO=one`.
fn through_service(name: &str) -> (Harness, Secrets, Token) {
    let (mut h, _) = watched(name);
    let svc = Secrets::start(&support::scratch(&format!("{name}-svc")));
    let inputs = [
        "FOO=one",
        "LIVEKIT_URL=ws://127.0.0.1:1",
        "LIVEKIT_API_KEY=APIk",
        "LIVEKIT_API_SECRET=s-service",
    ];
    let args: Vec<&str> = inputs.iter().flat_map(|s| ["--secrets", s]).collect();
    let token = Token::parse(&svc.create(&h.dir, &args)).unwrap();
    h.forbidden.add_token(&token);
    h.set("LIVEKIT_SECRETS_URL", svc.bundle_url());
    h.set("AGENT_INIT_CA_FILE", svc.ca.clone());
    (h, svc, token)
}

/// Waits until the service's bundle fetches so far satisfy `done`.
fn wait_fetches(svc: &Secrets, done: impl Fn(&[(String, u16)]) -> bool) {
    support::wait_until(
        PATIENCE,
        || done(&svc.fetches()),
        || format!("{:?}", svc.fetches()),
    );
}

#[test]
#[ignore = "needs the agent-secrets binary (cargo build -p agent-secrets; scripts/test.sh runs it)"]
fn through_agent_secrets_update_secrets_rolls_exactly_once_and_the_new_generation_sees_it() {
    let (mut h, svc, _) = through_service("watch-service");
    h.set("DRAIN", "1");
    let mut init = start(&h, &[]);
    wait_events(&h, "the first generation", "start", 1);
    // The checks ask with If-None-Match, and version 1 is current.
    wait_fetches(&svc, |f| f.len() >= 3);
    svc.update(&h.dir, &["--secrets", "FOO=two"]);
    wait_events(&h, "the second generation", "start", 2);
    // Two checks after the roll: both find version 2 current.
    let n = svc.fetches().len();
    wait_fetches(&svc, |f| f.len() >= n + 2);
    let starts = events(&h, "start");
    assert_eq!(starts.len(), 2, "exactly one roll: {:?}", log(&h));
    assert_eq!(
        (starts[0][2].as_str(), starts[1][2].as_str()),
        ("one", "two")
    );
    assert_eq!(events(&h, "term").len(), 1, "{:?}", log(&h));
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
    let (h, svc, token) = through_service("watch-revoke");
    let mut init = start(&h, &[]);
    wait_events(&h, "the first generation", "start", 1);
    svc.revoke(&h.dir, &token.id_b64());
    // Two checks refused with 401: each is one error line, and nothing else.
    init.wait_line("two refused checks", "(HTTP 401)", 2);
    wait_fetches(&svc, |f| f.iter().filter(|f| f.1 == 401).count() >= 2);
    let line = init
        .stderr()
        .into_iter()
        .find(|l| l.contains("(HTTP 401)"))
        .unwrap();
    assert!(
        line.starts_with("agent-init: error: watch: ") && line.contains("the agent keeps running"),
        "{line}"
    );
    assert!(init.running(), "agent-init runs on");
    assert_eq!(events(&h, "start").len(), 1, "{:?}", log(&h));
    assert!(events(&h, "term").is_empty(), "the agent was not stopped");
    h.forbidden
        .assert_not_in("stderr", &init.stderr().join("\n"));
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
    let (mut h, _) = watched("watch-fleet");
    // A shell agent: lighter than Python, fifty times over.
    let sh = format!(
        "now() {{ date +%s.%N; }}\necho \"start $$ $FOO\" >> \"$AGENT_LOG\"\ntrap 'echo \"term $$ $(now)\" >> \"$AGENT_LOG\"; sleep {drain}; echo \"drained $$ $(now)\" >> \"$AGENT_LOG\"; exit 0' TERM\nwhile :; do sleep 0.2; done\n"
    );
    std::fs::write(h.dir.join("agent.sh"), sh).unwrap();
    h.set("AGENT_INIT_LOG", "error");
    let mut inits: Vec<Running> = (0..n)
        .map(|_| {
            h.start([
                "--supervise",
                "--watch",
                "5",
                "--rollout-spread",
                spread,
                "--",
                "sh",
                "agent.sh",
            ])
        })
        .collect();
    wait_events(&h, "every agent to start", "start", n);
    write(&h, "two");
    wait_log(&h, "every agent to roll", |l| {
        l.iter()
            .filter(|e| e[0] == "start" && e[2] == "two")
            .count()
            == n
    });
    let log = log(&h);
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
        c.sigterm();
    }
    for c in &mut inits {
        c.wait();
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
    let (h, _) = watched("watch-tstp");
    let mut init = start(&h, &[]);
    wait_events(&h, "the agent", "start", 1);
    let agent: i32 = events(&h, "start")[0][1].parse().unwrap();
    let me = init.pid().as_raw();
    let state = |pid: i32| procfs::stat(pid).map_or('?', |s| s.state);
    init.signal(Signal::SIGTSTP);
    support::wait_until(
        PATIENCE,
        || state(me) == 'T' && state(agent) == 'T',
        || format!("both stop: {} {}", state(me), state(agent)),
    );
    init.signal(Signal::SIGCONT);
    support::wait_until(
        PATIENCE,
        || state(me) != 'T' && state(agent) != 'T',
        || "both resume".to_string(),
    );
    init.sigterm();
    assert_eq!(init.wait(), 0);
}
