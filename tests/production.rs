//! The production path end to end: the built agent-init, a bootstrap token,
//! and a real HTTPS secrets server on 127.0.0.1 whose CA the test made
//! (PROTOCOL.md §4 to §8).
//!
//! Every failure asserts its exit code, that the command never started (its
//! marker file is absent) and that nothing agent-init printed holds a secret
//! value, the token, its KEY, `auth_key` or `seal_key`. Every success asserts
//! the exact environment the command received. Waits are judged from the
//! server's own request times, never by timing the test.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use support::bundle::{self, LIVEKIT};
use support::proxy::Proxy;
use support::server::{closed_port, Reply, Server, PATIENCE};
use support::tls::{Ca, Validity};
use support::{assert_failed_cleanly, assert_no_leak, capture_command, read_captured, scratch};

/// The PATH every run inherits (`support::Run::new`).
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Deadline for runs that should succeed or be stopped by the test: long
/// enough that a loaded machine does not turn them into failures.
const PATIENT: &str = "20";
/// Deadline for runs that should give up: short, to keep the suite fast.
const IMPATIENT: &str = "3";

/// A secret value of exactly 16 KiB, the largest §6 allows.
fn max_value() -> String {
    (0..16_384)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// The bundle's secrets in the ordinary case: values with a newline, `=`,
/// non-ASCII text, nothing at all, and the 16 KiB maximum.
fn secrets() -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_API_KEY", "sk-test-7fq2-openai-secret".into()),
        ("MULTI_LINE", "line one\nline two\n".into()),
        ("WITH_EQUALS", "a=b==c;eq-secret".into()),
        (
            "UNICODE_VALUE",
            "h\u{e9}llo \u{2603} \u{65e5}\u{672c} unicode-secret".into(),
        ),
        ("EMPTY", String::new()),
        ("MAX_SIZE", max_value()),
    ]
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(n, s)| (*n, s.as_str())).collect()
}

/// The ordinary bundle: [`secrets`] and all three `livekit` values, sealed
/// for the vector token.
fn good_bundle() -> String {
    let s = secrets();
    bundle::seal(
        &bundle::vector_token(),
        &bundle::plaintext(&pairs(&s), &LIVEKIT),
    )
}

/// A server with a certificate for 127.0.0.1 from a fresh CA.
fn serve(script: Vec<Reply>) -> (Ca, Server) {
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(&ca.localhost(), script);
    (ca, server)
}

/// One agent-init run's directory, environment and forbidden strings.
struct Fixture {
    dir: PathBuf,
    marker: PathBuf,
    out: PathBuf,
    env: Vec<(String, OsString)>,
    forbidden: Vec<String>,
}

impl Fixture {
    /// agent-init with the vector token, pointed at `url`, trusting `ca`.
    fn new(name: &str, url: &str, ca: &Ca) -> Fixture {
        let dir = scratch(name);
        let ca_file = ca.write_pem(&dir);
        let mut forbidden = bundle::token_strings(&bundle::vector_token());
        forbidden.push(bundle::vector_authorization());
        forbidden.extend(
            secrets()
                .into_iter()
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty()),
        );
        forbidden.extend(LIVEKIT[1..].iter().map(|(_, v)| v.to_string()));
        let mut f = Fixture {
            marker: dir.join("started"),
            out: dir.join("environ"),
            dir,
            env: Vec::new(),
            forbidden,
        };
        f.set("LIVEKIT_BOOTSTRAP_TOKEN", bundle::vector_token_text());
        f.set("LIVEKIT_SECRETS_URL", url);
        f.set("AGENT_INIT_CA_FILE", ca_file);
        f.set("AGENT_INIT_TIMEOUT", PATIENT);
        f
    }

    /// Sets (or replaces) a variable of agent-init's environment.
    fn set(&mut self, name: &str, value: impl Into<OsString>) -> &mut Fixture {
        self.unset(name);
        self.env.push((name.to_string(), value.into()));
        self
    }

    fn unset(&mut self, name: &str) -> &mut Fixture {
        self.env.retain(|(n, _)| n != name);
        self
    }

    /// Adds strings that must not appear in agent-init's output.
    fn forbid(&mut self, values: &[&str]) -> &mut Fixture {
        self.forbidden.extend(values.iter().map(|v| v.to_string()));
        self
    }

    /// The command that records it started and captures its environment.
    fn capture(&self) -> Vec<OsString> {
        capture_command(&self.marker, &self.out)
    }

    /// `program args…` with agent-init's environment (over `PATH` only),
    /// the early signals at their default action whatever the test runner
    /// inherited, output captured.
    // The test crate's one `unsafe`: `pre_exec` (Cargo.toml denies `unsafe_code`).
    #[allow(unsafe_code)]
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[OsString]) -> Command {
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
                for sig in [
                    Signal::SIGTERM,
                    Signal::SIGINT,
                    Signal::SIGHUP,
                    Signal::SIGQUIT,
                ] {
                    nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl)?;
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs agent-init with `args`.
    fn run_with(&self, args: &[OsString]) -> Output {
        self.command(support::bin(), args)
            .output()
            .expect("agent-init runs")
    }

    /// Runs agent-init with the capture command.
    fn run(&self) -> Output {
        self.run_with(&self.capture())
    }

    /// Starts agent-init with the capture command, without waiting.
    fn spawn(&self) -> Child {
        self.command(support::bin(), &self.capture())
            .spawn()
            .expect("agent-init starts")
    }

    /// The failure invariants: exit `code`, no command, no leak.
    fn assert_failed(&self, out: &Output, code: i32) {
        let forbidden: Vec<&str> = self.forbidden.iter().map(String::as_str).collect();
        assert_failed_cleanly(out, code, &self.marker, &forbidden);
    }

    /// The success invariants: exit 0, the command ran, no leak; returns
    /// the command's environment, sorted.
    fn assert_succeeded(&self, out: &Output) -> Vec<Vec<u8>> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "exit status; stderr: {stderr}");
        assert!(self.marker.exists(), "the command ran; stderr: {stderr}");
        let forbidden: Vec<&str> = self.forbidden.iter().map(String::as_str).collect();
        assert_no_leak(out, &forbidden);
        let mut env = read_captured(&self.out);
        env.sort();
        env
    }
}

impl Drop for Fixture {
    /// Removes the run's directory (a chroot holds a copy of the binary),
    /// but keeps it when the test failed, for a look.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `NAME=VALUE` byte strings, sorted, for comparing whole environments.
fn environment(vars: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vars
        .iter()
        .map(|(n, v)| format!("{n}={v}").into_bytes())
        .collect();
    v.sort();
    v
}

/// What the command receives from the ordinary bundle, plus `extra` inherited variables.
fn expected_environment(extra: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let s = secrets();
    let mut vars = pairs(&s);
    vars.extend(LIVEKIT);
    vars.push(("PATH", PATH));
    vars.extend(extra);
    environment(&vars)
}

fn show(env: &[Vec<u8>]) -> String {
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

fn assert_environment(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert!(
        got == want,
        "the command's environment differs\n--- got:\n{}\n--- want:\n{}",
        show(got),
        show(want)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn request_count(server: &Server) -> usize {
    server.requests().len()
}

// ---------------------------------------------------------------------------
// Success: what the command receives.

#[test]
fn bundle_from_https_reaches_the_command_byte_for_byte() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let mut f = Fixture::new("byte-for-byte", &server.url(), &ca);
    // Every knob is set, at the most talkative level, and none reaches the command.
    f.set("AGENT_INIT_LOG", "debug")
        .set("AGENT_INIT_MAX_BUNDLE", "1048576")
        .set("AGENT_INIT_ANYTHING_ELSE", "x")
        .set("KEPT", "inherited=value\nwith newline");
    let argv_file = f.dir.join("argv");
    let mut args = f.capture();
    // The capture script also records its own command line.
    args[2] = format!(
        "{}\nopen({:?}, 'wb').write(open('/proc/self/cmdline', 'rb').read())",
        args[2].to_str().unwrap(),
        argv_file.to_str().unwrap()
    )
    .into();
    let out = f.run_with(&args);
    let env = f.assert_succeeded(&out);
    assert_environment(
        &env,
        &expected_environment(&[("KEPT", "inherited=value\nwith newline")]),
    );

    let argv = std::fs::read(&argv_file).unwrap();
    let want: Vec<u8> = args
        .iter()
        .flat_map(|a| a.as_encoded_bytes().iter().copied().chain([0]))
        .collect();
    assert_eq!(argv, want, "the command's argv is exactly the one given");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/v1/secrets");
    assert_eq!(r.header("Authorization"), bundle::vector_authorization());
    assert_eq!(r.header("Accept"), "application/json");
    assert_eq!(
        r.header("User-Agent"),
        concat!("agent-init/", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn livekit_values_and_secrets_merge_in_the_documented_precedence() {
    // Bundle: a secret that shadows an inherited variable, a LIVEKIT_URL among
    // the secrets (dropped), and a livekit member with only the API key.
    let plain = bundle::plaintext(
        &[
            ("SHARED", "from-bundle-secret"),
            ("LIVEKIT_URL", "wss://from-bundle-secrets-list"),
        ],
        &[("LIVEKIT_API_KEY", "key-from-bundle-livekit")],
    );
    let sealed = bundle::seal(&bundle::vector_token(), &plain);
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = Fixture::new("precedence", &server.url(), &ca);
    f.set("SHARED", "from-agent-init-env")
        .set("ONLY_INHERITED", "kept")
        .set("LIVEKIT_URL", "wss://from-agent-init-env")
        .set("LIVEKIT_API_KEY", "key-from-agent-init-env")
        .set("LIVEKIT_API_SECRET", "secret-from-agent-init-env")
        .forbid(&["from-bundle-secret", "wss://from-bundle-secrets-list"]);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(
        &env,
        &environment(&[
            ("PATH", PATH),
            ("SHARED", "from-bundle-secret"),
            ("ONLY_INHERITED", "kept"),
            ("LIVEKIT_URL", "wss://from-agent-init-env"),
            ("LIVEKIT_API_KEY", "key-from-bundle-livekit"),
            ("LIVEKIT_API_SECRET", "secret-from-agent-init-env"),
        ]),
    );
}

#[test]
fn livekit_name_among_the_secrets_is_dropped_with_a_warning_naming_it() {
    let s = secrets();
    let mut list = pairs(&s);
    list.push(("LIVEKIT_API_SECRET", "shadowing-secret-value"));
    let sealed = bundle::seal(&bundle::vector_token(), &bundle::plaintext(&list, &LIVEKIT));
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = Fixture::new("livekit-dropped", &server.url(), &ca);
    f.forbid(&["shadowing-secret-value"]);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("warning") && l.contains("LIVEKIT_API_SECRET")),
        "a warning names the dropped secret: {err}"
    );
}

#[test]
fn bootstrap_names_among_the_secrets_never_reach_the_command_and_are_named_in_a_warning() {
    let s = secrets();
    let mut list = pairs(&s);
    list.push(("AGENT_INIT_LOG", "stripped-secret-value-1"));
    list.push(("LIVEKIT_SECRETS_URL", "stripped-secret-value-2"));
    let sealed = bundle::seal(&bundle::vector_token(), &bundle::plaintext(&list, &LIVEKIT));
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = Fixture::new("bootstrap-dropped", &server.url(), &ca);
    f.forbid(&["stripped-secret-value-1", "stripped-secret-value-2"]);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    let err = stderr(&out);
    for name in ["AGENT_INIT_LOG", "LIVEKIT_SECRETS_URL"] {
        assert!(
            err.lines()
                .any(|l| l.contains("warning") && l.contains(name)),
            "a warning names {name}: {err}"
        );
    }
}

#[test]
fn token_file_with_a_trailing_newline_works_and_is_not_passed_on() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let mut f = Fixture::new("token-file", &server.url(), &ca);
    let token_file = f.dir.join("token");
    std::fs::write(&token_file, format!("{}\n", bundle::vector_token_text())).unwrap();
    f.unset("LIVEKIT_BOOTSTRAP_TOKEN")
        .set("LIVEKIT_BOOTSTRAP_TOKEN_FILE", &token_file);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

#[test]
fn fetch_through_an_https_proxy_uses_connect() {
    let ca = Ca::new("agent-init test CA");
    // A name only the proxy resolves: the client must leave it to the proxy.
    let server = Server::start(
        &ca.issue(&["secrets.test"], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    let proxy = Proxy::start();
    let mut f = Fixture::new("proxy", &server.url_for_host("secrets.test"), &ca);
    f.set("HTTPS_PROXY", proxy.url());
    let out = f.run();
    let env = f.assert_succeeded(&out);
    // HTTPS_PROXY is the agent's too: it is inherited, not stripped.
    assert_environment(
        &env,
        &expected_environment(&[("HTTPS_PROXY", &proxy.url())]),
    );
    assert_eq!(
        proxy.connects(),
        [format!("secrets.test:{}", server.port())],
        "the fetch went through one CONNECT tunnel to the server"
    );
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

#[test]
fn loopback_secrets_url_never_goes_through_a_proxy() {
    // A proxy's loopback is not this container's, and plain http:// is
    // allowed only because the request never leaves the host.
    let proxy = Proxy::start();
    let plain = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let (ca, tls) = serve(vec![Reply::ok(good_bundle())]);
    for url in [plain.url(), plain.url_for_host("localhost"), tls.url()] {
        let mut f = Fixture::new("loopback-no-proxy", &url, &ca);
        for var in ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"] {
            f.set(var, proxy.url());
        }
        let out = f.run();
        f.assert_succeeded(&out);
    }
    assert_eq!(proxy.connects(), Vec::<String>::new());
    assert_eq!(request_count(&plain), 2);
    assert_eq!(request_count(&tls), 1);
}

// ---------------------------------------------------------------------------
// §4: transient answers are retried.

#[test]
fn retry_after_seconds_on_503_is_honoured_before_the_200() {
    let (ca, server) = serve(vec![
        Reply::status(503).header("Retry-After", "1"),
        Reply::ok(good_bundle()),
    ]);
    let f = Fixture::new("retry-after-503", &server.url(), &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    let r = server.requests();
    assert_eq!(r.len(), 2);
    // The server timestamps each request before answering it, so the gap
    // holds the client's whole wait: at least the second asked for (the
    // first jitter window alone is at most 250 ms).
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(1000), "waited only {gap:?}");
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("attempt 1") && l.contains("503")),
        "one line per retry names the attempt and the status: {err}"
    );
}

#[test]
fn retry_after_http_date_is_honoured() {
    let (ca, server) = serve(vec![
        Reply::status(503).retry_after_date_in(Duration::from_secs(3)),
        Reply::ok(good_bundle()),
    ]);
    let f = Fixture::new("retry-after-date", &server.url(), &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    let r = server.requests();
    assert_eq!(r.len(), 2);
    // A date 3 s ahead, truncated to whole seconds, asks for more than 2 s.
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(1500), "waited only {gap:?}");
}

#[test]
fn retry_after_beyond_the_deadline_gives_up_at_once_with_69() {
    let (ca, server) = serve(vec![Reply::status(503).header("Retry-After", "3600")]);
    let mut f = Fixture::new("retry-after-too-long", &server.url(), &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(request_count(&server), 1, "no attempt it cannot finish");
}

#[test]
fn status_429_then_200_succeeds_after_one_retry() {
    let (ca, server) = serve(vec![Reply::status(429), Reply::ok(good_bundle())]);
    let f = Fixture::new("429", &server.url(), &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    assert_eq!(request_count(&server), 2);
}

#[test]
fn each_transient_status_is_retried_until_the_200() {
    for status in [408, 425, 500, 502, 504] {
        let (ca, server) = serve(vec![Reply::status(status), Reply::ok(good_bundle())]);
        let f = Fixture::new(&format!("transient-{status}"), &server.url(), &ca);
        let out = f.run();
        let env = f.assert_succeeded(&out);
        assert_environment(&env, &expected_environment(&[]));
        assert_eq!(request_count(&server), 2, "HTTP {status}");
    }
}

#[test]
fn connection_closed_without_an_answer_is_retried() {
    let (ca, server) = serve(vec![
        Reply::close_without_answer(),
        Reply::ok(good_bundle()),
    ]);
    let f = Fixture::new("closed-unanswered", &server.url(), &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    assert_eq!(request_count(&server), 2);
}

#[test]
fn truncated_body_is_retried_and_a_full_one_then_succeeds() {
    let sealed = good_bundle();
    let half = sealed.len() / 2;
    let (ca, server) = serve(vec![
        Reply::ok(sealed.clone()).truncated_to(half),
        Reply::ok(sealed),
    ]);
    let f = Fixture::new("truncated-once", &server.url(), &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    assert_eq!(request_count(&server), 2);
}

#[test]
fn always_truncated_body_is_retried_until_the_deadline_then_69() {
    let sealed = good_bundle();
    let half = sealed.len() / 2;
    let (ca, server) = serve(vec![Reply::ok(sealed).truncated_to(half)]);
    let mut f = Fixture::new("truncated-always", &server.url(), &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert!(request_count(&server) >= 2, "a cut body is transient");
}

#[test]
fn refused_connection_is_retried_until_the_deadline_then_69() {
    let ca = Ca::new("agent-init test CA");
    let url = format!("https://127.0.0.1:{}/v1/secrets", closed_port());
    let mut f = Fixture::new("refused", &url, &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("attempt 1") && l.contains("retrying")),
        "a refused connection is retried: {err}"
    );
}

#[test]
fn name_that_does_not_resolve_is_transient_and_exits_69() {
    // `.invalid` never resolves (RFC 6761), with or without a network.
    let ca = Ca::new("agent-init test CA");
    let mut f = Fixture::new("unresolvable", "https://secrets.invalid/v1/secrets", &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
}

#[test]
fn server_that_accepts_and_never_answers_exits_69() {
    let (ca, server) = serve(vec![Reply::hang()]);
    let mut f = Fixture::new("hang", &server.url(), &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert!(request_count(&server) >= 1);
}

#[test]
fn tls_handshake_cut_mid_way_is_retried_then_69() {
    let (ca, server) = serve(vec![Reply::cut_handshake()]);
    let mut f = Fixture::new("cut-handshake", &server.url(), &ca);
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert!(
        server.connections() >= 2,
        "a cut handshake is transient: {} connection(s)",
        server.connections()
    );
    assert_eq!(request_count(&server), 0);
}

// ---------------------------------------------------------------------------
// §4: answers that stop at once.

#[test]
fn status_401_and_403_exit_77_after_exactly_one_request() {
    for status in [401, 403] {
        let (ca, server) = serve(vec![Reply::status(status)]);
        let f = Fixture::new(&format!("denied-{status}"), &server.url(), &ca);
        let out = f.run();
        f.assert_failed(&out, 77);
        assert_eq!(request_count(&server), 1, "HTTP {status}");
        assert!(stderr(&out).contains(&status.to_string()), "HTTP {status}");
    }
}

#[test]
fn status_404_exits_78_after_exactly_one_request() {
    let (ca, server) = serve(vec![Reply::status(404)]);
    let f = Fixture::new("404", &server.url(), &ca);
    let out = f.run();
    f.assert_failed(&out, 78);
    assert_eq!(request_count(&server), 1);
}

#[test]
fn unexpected_status_exits_69_after_one_request() {
    let (ca, server) = serve(vec![Reply::status(418)]);
    let f = Fixture::new("418", &server.url(), &ca);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(request_count(&server), 1);
    assert!(stderr(&out).contains("418"), "{}", stderr(&out));
}

#[test]
fn redirect_is_not_followed_and_exits_69() {
    let ca = Ca::new("agent-init test CA");
    let elsewhere = Server::start(&ca.localhost(), vec![Reply::ok(good_bundle())]);
    let server = Server::start(
        &ca.localhost(),
        vec![Reply::status(302).header("Location", &elsewhere.url())],
    );
    let f = Fixture::new("302", &server.url(), &ca);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(request_count(&server), 1);
    assert_eq!(
        elsewhere.connections(),
        0,
        "the Authorization header went nowhere else"
    );
}

#[test]
fn oversized_body_declared_by_content_length_exits_65_without_retry() {
    // A valid bundle, refused only for its size.
    let big = bundle::seal(
        &bundle::vector_token(),
        &bundle::plaintext(&[("PADDING", &"p".repeat(4000))], &LIVEKIT),
    );
    // The second server declares the length and then sends nothing at all:
    // the header alone must be enough to refuse.
    for reply in [
        Reply::ok(big.clone()),
        Reply::ok(big.clone()).truncated_to(0).then_hang(),
    ] {
        let (ca, server) = serve(vec![reply]);
        let mut f = Fixture::new("oversized-length", &server.url(), &ca);
        f.set("AGENT_INIT_MAX_BUNDLE", "2048")
            .set("AGENT_INIT_TIMEOUT", "6");
        let out = f.run();
        f.assert_failed(&out, 65);
        assert_eq!(request_count(&server), 1, "not retried");
    }
}

#[test]
fn oversized_body_of_unknown_length_exits_65_without_reading_to_its_end() {
    let big = bundle::seal(
        &bundle::vector_token(),
        &bundle::plaintext(&[("PADDING", &"p".repeat(4000))], &LIVEKIT),
    );
    // The `then_hang` replies never finish the body: a client that read to
    // the end would wait for its deadline and exit 69, not 65.
    for (what, reply) in [
        ("chunked", Reply::ok(big.clone()).chunked()),
        (
            "chunked, never finished",
            Reply::ok(big.clone()).chunked().then_hang(),
        ),
        ("no length", Reply::ok(big.clone()).without_length()),
        (
            "no length, never closed",
            Reply::ok(big.clone()).without_length().then_hang(),
        ),
    ] {
        let (ca, server) = serve(vec![reply]);
        let mut f = Fixture::new("oversized-unknown", &server.url(), &ca);
        f.set("AGENT_INIT_MAX_BUNDLE", "2048")
            .set("AGENT_INIT_TIMEOUT", "6");
        let out = f.run();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{what}: {err}");
        f.assert_failed(&out, 65);
        assert_eq!(request_count(&server), 1, "{what}: not retried");
    }
}

// ---------------------------------------------------------------------------
// §5 and §6: bundles that are refused.

#[test]
fn tampered_bundle_exits_65_and_never_starts_the_command() {
    let (ca, server) = serve(vec![Reply::ok(bundle::tamper(&good_bundle()))]);
    let f = Fixture::new("tampered", &server.url(), &ca);
    let out = f.run();
    f.assert_failed(&out, 65);
    assert_eq!(request_count(&server), 1, "not retried");
}

#[test]
fn bundle_sealed_for_another_token_exits_65() {
    let other = agent_init::token::Token::generate().unwrap();
    let s = secrets();
    let sealed = bundle::seal(&other, &bundle::plaintext(&pairs(&s), &LIVEKIT));
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let mut f = Fixture::new("other-token", &server.url(), &ca);
    let other_strings = bundle::token_strings(&other);
    f.forbid(&other_strings.iter().map(String::as_str).collect::<Vec<_>>());
    let out = f.run();
    f.assert_failed(&out, 65);
}

#[test]
fn each_section_6_breach_refuses_the_bundle_with_65() {
    let long_name = "N".repeat(71);
    let too_big = "b".repeat(16_385);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "bad name",
            bundle::plaintext(&[("BAD-NAME", "breach-value-name")], &LIVEKIT),
            vec!["breach-value-name"],
        ),
        (
            "71-character name",
            bundle::plaintext(&[(&long_name, "breach-value-long")], &LIVEKIT),
            vec!["breach-value-long"],
        ),
        (
            "value over 16 KiB",
            bundle::plaintext(&[("TOO_BIG", &too_big)], &LIVEKIT),
            vec![&too_big[..64]],
        ),
        (
            "NUL in a value",
            bundle::plaintext(&[("HAS_NUL", "breach-value-\0-nul")], &LIVEKIT),
            vec!["breach-value-"],
        ),
        (
            "duplicate name",
            bundle::plaintext(
                &[("TWICE", "breach-value-one"), ("TWICE", "breach-value-two")],
                &LIVEKIT,
            ),
            vec!["breach-value-one", "breach-value-two"],
        ),
        (
            "no secrets member",
            serde_json::json!({"livekit": {"url": LIVEKIT[0].1, "api_key": LIVEKIT[1].1, "api_secret": LIVEKIT[2].1}}).to_string(),
            vec![],
        ),
    ];
    for (what, plain, values) in cases {
        let sealed = bundle::seal(&bundle::vector_token(), &plain);
        let (ca, server) = serve(vec![Reply::ok(sealed)]);
        let mut f = Fixture::new("breach", &server.url(), &ca);
        f.forbid(&values);
        let out = f.run();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(65), "{what}: {err}");
        f.assert_failed(&out, 65);
        assert_eq!(request_count(&server), 1, "{what}: not retried");
    }
}

// ---------------------------------------------------------------------------
// Configuration (78).

#[test]
fn livekit_variable_missing_after_the_merge_exits_78() {
    let s = secrets();
    let sealed = bundle::seal(
        &bundle::vector_token(),
        &bundle::plaintext(&pairs(&s), &LIVEKIT[..2]),
    );
    let (ca, server) = serve(vec![Reply::ok(sealed)]);
    let f = Fixture::new("missing-livekit", &server.url(), &ca);
    let out = f.run();
    f.assert_failed(&out, 78);
    assert!(
        stderr(&out).contains("LIVEKIT_API_SECRET"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn required_name_missing_exits_78() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let f = Fixture::new("require", &server.url(), &ca);
    let mut args: Vec<OsString> = vec!["--require".into(), "NEEDED_BY_THE_AGENT".into()];
    args.extend(f.capture());
    let out = f.run_with(&args);
    f.assert_failed(&out, 78);
    assert!(
        stderr(&out).contains("NEEDED_BY_THE_AGENT"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn certificate_that_does_not_verify_exits_78_after_one_attempt() {
    let ca = Ca::new("agent-init test CA");
    let stranger = Ca::new("a CA nobody trusts");
    let cases = [
        ("unknown CA", stranger.localhost()),
        (
            "wrong host name",
            ca.issue(&["elsewhere.test"], Validity::Good),
        ),
        (
            "expired",
            ca.issue(&["127.0.0.1", "localhost"], Validity::Expired),
        ),
    ];
    for (what, cert) in cases {
        let server = Server::start(&cert, vec![Reply::ok(good_bundle())]);
        let mut f = Fixture::new("bad-cert", &server.url(), &ca);
        f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
        let out = f.run();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{what}: {err}");
        f.assert_failed(&out, 78);
        assert_eq!(server.connections(), 1, "{what}: one attempt");
        assert_eq!(request_count(&server), 0, "{what}: no request sent");
    }
}

#[test]
fn plain_http_to_a_loopback_host_is_accepted() {
    for host in ["127.0.0.1", "localhost"] {
        let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
        let ca = Ca::new("agent-init test CA");
        let f = Fixture::new("http-loopback", &server.url_for_host(host), &ca);
        let out = f.run();
        let env = f.assert_succeeded(&out);
        assert_environment(&env, &expected_environment(&[]));
        assert_eq!(
            server.requests()[0].header("Authorization"),
            bundle::vector_authorization(),
            "{host}"
        );
    }
}

#[test]
fn plain_http_to_a_host_that_is_not_loopback_exits_78() {
    let ca = Ca::new("agent-init test CA");
    let f = Fixture::new("http-remote", "http://secrets.example.com/v1/secrets", &ca);
    let out = f.run();
    f.assert_failed(&out, 78);
}

#[test]
#[ignore = "needs root: unshare --mount --net"]
fn plain_http_to_localhost_that_etc_hosts_maps_elsewhere_exits_78_sending_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for unshare --mount --net"
    );
    let ca = Ca::new("agent-init test CA");
    let mut f = Fixture::new(
        "http-localhost-remapped",
        "http://localhost:8080/v1/secrets",
        &ca,
    );
    // 192.0.2.0/24 is TEST-NET-1, and the run has a network namespace of its
    // own with no route anywhere: were a connect tried, nothing would leave.
    let hosts = f.dir.join("hosts");
    std::fs::write(&hosts, "192.0.2.10 localhost\n").unwrap();
    f.set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let mut args: Vec<OsString> = vec![
        "--mount".into(),
        "--net".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"".into(),
        hosts.into(),
        support::bin().into(),
    ];
    args.extend(f.capture());
    let out = f
        .command(system_tool("unshare"), &args)
        .output()
        .expect("unshare runs");
    f.assert_failed(&out, 78);
    let err = stderr(&out);
    assert!(err.contains("LIVEKIT_SECRETS_URL"), "{err}");
    assert!(err.contains("not loopback"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
}

#[test]
fn https_url_never_uses_http_proxy() {
    // A name only the proxy resolves: through the proxy the fetch would
    // succeed; direct, the name does not resolve.
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(
        &ca.issue(&["secrets.test"], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    let proxy = Proxy::start();
    let mut f = Fixture::new(
        "http-proxy-ignored",
        &server.url_for_host("secrets.test"),
        &ca,
    );
    f.set("HTTP_PROXY", proxy.url())
        .set("http_proxy", proxy.url())
        .set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let out = f.run();
    f.assert_failed(&out, 69);
    assert_eq!(proxy.connects(), Vec::<String>::new());
    assert_eq!(request_count(&server), 0);
}

#[test]
fn https_proxy_wins_over_all_proxy_and_lower_case_over_upper() {
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(
        &ca.issue(&["secrets.test"], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    let proxy = Proxy::start();
    let dead = format!("http://127.0.0.1:{}", closed_port());
    for (good, others) in [
        ("HTTPS_PROXY", ["ALL_PROXY", "all_proxy"]),
        ("https_proxy", ["HTTPS_PROXY", "ALL_PROXY"]),
        ("all_proxy", ["ALL_PROXY", "HTTP_PROXY"]),
    ] {
        let mut f = Fixture::new("proxy-order", &server.url_for_host("secrets.test"), &ca);
        f.set(good, proxy.url());
        for var in others {
            f.set(var, &dead);
        }
        let out = f.run();
        let env = f.assert_succeeded(&out);
        assert!(
            env.contains(&format!("{good}={}", proxy.url()).into_bytes()),
            "{good} is passed on"
        );
    }
    assert_eq!(
        proxy.connects().len(),
        3,
        "each fetch went through {:?}",
        proxy.connects()
    );
    assert_eq!(request_count(&server), 3);
}

#[test]
fn proxy_variable_that_does_not_parse_exits_78_naming_it_and_not_its_value() {
    for var in ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        let ca = Ca::new("agent-init test CA");
        let mut f = Fixture::new("proxy-bad", "https://secrets.invalid/v1/secrets", &ca);
        f.set(var, "http://[bad-proxy-71e2")
            .set("AGENT_INIT_TIMEOUT", IMPATIENT)
            .forbid(&["bad-proxy-71e2"]);
        let out = f.run();
        f.assert_failed(&out, 78);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{var} is not a valid proxy URL")),
            "{err}"
        );
    }
}

#[test]
fn running_out_of_file_descriptors_during_the_fetch_exits_70_at_once() {
    let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let ca = Ca::new("agent-init test CA");
    let mut f = Fixture::new("emfile", &server.url(), &ca);
    f.unset("AGENT_INIT_CA_FILE");
    // Standard input, output and error take the three descriptors allowed:
    // the socket cannot be made. Waiting would not help, so no retry.
    let mut args: Vec<OsString> = vec!["--nofile=3".into(), support::bin().into()];
    args.extend(f.capture());
    let out = f
        .command(system_tool("prlimit"), &args)
        .output()
        .expect("prlimit runs");
    f.assert_failed(&out, 70);
    let err = stderr(&out);
    assert!(err.contains("Too many open files"), "{err}");
    assert!(!err.contains("retrying"), "not retried: {err}");
    assert_eq!(server.connections(), 0);
}

#[test]
fn file_url_path_is_percent_decoded() {
    let ca = Ca::new("agent-init test CA");
    let dir = scratch("file-url-decoded");
    std::fs::write(dir.join("my bundle.json"), good_bundle()).unwrap();
    let url = format!("file://{}/my%20bundle%2Ejson", dir.display());
    let f = Fixture::new("file-url-decoded", &url, &ca);
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs agent-init under strace and returns how many bytes it received
/// from sockets in all (std reads a socket with recv(2), which is
/// recvfrom(2)), with its output.
fn run_counting_received(f: &Fixture) -> (u64, Output) {
    let log = f.dir.join("strace.log");
    let mut args: Vec<OsString> = vec![
        "-f".into(),
        "-qq".into(),
        "-e".into(),
        "trace=recvfrom,recvmsg".into(),
        "-e".into(),
        "signal=none".into(),
        "-o".into(),
        log.clone().into(),
        support::bin().into(),
    ];
    args.extend(f.capture());
    let out = f
        .command(system_tool("strace"), &args)
        .output()
        .expect("strace runs");
    let trace = std::fs::read_to_string(&log).expect("strace wrote its log");
    let received = trace
        .lines()
        .filter_map(|l| {
            l.rsplit_once(") = ")?
                .1
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    (received, out)
}

#[test]
fn body_over_the_cap_is_refused_having_read_little_of_it() {
    // 1 MiB of body against a cap of 2 KiB, sent at once, over plain HTTP
    // (so what agent-init reads is the body itself). With a Content-Length,
    // the header alone refuses; without one, reading stops at the cap. Either
    // way no more than ureq's input buffer (16 KiB) is read ahead.
    let big = "p".repeat(1 << 20);
    for (what, reply) in [
        ("Content-Length", Reply::ok(big.clone())),
        ("chunked", Reply::ok(big.clone()).chunked()),
        ("no length", Reply::ok(big.clone()).without_length()),
    ] {
        let server = Server::start_plain(vec![reply]);
        let ca = Ca::new("agent-init test CA");
        let mut f = Fixture::new("over-cap-reads", &server.url(), &ca);
        f.unset("AGENT_INIT_CA_FILE")
            .set("AGENT_INIT_MAX_BUNDLE", "2048");
        let (read, out) = run_counting_received(&f);
        f.assert_failed(&out, 65);
        assert!(read <= 16 << 10, "{what}: agent-init received {read} bytes");
    }
}

#[test]
fn malformed_token_exits_78_before_any_connection() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let text = bundle::vector_token_text();
    let key = text.rsplit('.').next().unwrap().to_string();
    let cases = [
        format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{}", &key[..42]),
        format!("{text}="),
        text.replacen("lkbt1", "lkbt2", 1),
        text.replacen('.', ":", 1),
    ];
    for token in cases {
        let mut f = Fixture::new("malformed-token", &server.url(), &ca);
        f.set("LIVEKIT_BOOTSTRAP_TOKEN", &token)
            .forbid(&[&key[..42]]);
        let out = f.run();
        f.assert_failed(&out, 78);
    }
    assert_eq!(server.connections(), 0);
}

// ---------------------------------------------------------------------------
// Signals during the fetch, and the token's bytes in agent-init's own memory.

/// Waits for agent-init to end and returns its output.
fn finish(child: Child) -> Output {
    child.wait_with_output().expect("agent-init ends")
}

#[test]
fn signal_during_the_fetch_exits_128_plus_n_and_never_starts_the_command() {
    for (sig, code) in [
        (Signal::SIGTERM, 143),
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
        (Signal::SIGQUIT, 131),
    ] {
        let (ca, server) = serve(vec![Reply::hang()]);
        let f = Fixture::new("signal", &server.url(), &ca);
        let child = f.spawn();
        server.wait_for_requests(1);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let out = finish(child);
        f.assert_failed(&out, code);
        assert!(
            stderr(&out).contains(sig.as_str()),
            "{sig}: {}",
            stderr(&out)
        );
    }
}

#[test]
#[ignore = "needs root: reads /proc/PID/environ of the non-dumpable agent-init"]
fn token_is_gone_from_proc_environ_while_the_fetch_waits() {
    let (ca, server) = serve(vec![Reply::hang()]);
    let f = Fixture::new("environ", &server.url(), &ca);
    let child = f.spawn();
    server.wait_for_requests(1);
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = finish(child);
    f.assert_failed(&out, 143);

    let text = String::from_utf8_lossy(&environ);
    // The right block: the variable's name stays, with the secrets URL beside it.
    assert!(text.contains("LIVEKIT_BOOTSTRAP_TOKEN="), "{text}");
    assert!(text.contains(&server.url()), "{text}");
    let token = bundle::vector_token_text();
    let key = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(&token),
        "the token is still in /proc/PID/environ"
    );
    assert!(
        !text.contains(key),
        "the token's KEY is still in /proc/PID/environ"
    );
}

/// The full path of a system tool (the runs' PATH has no sbin directory).
fn system_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed"))
}

/// The pid (in this namespace) of the process whose parent is `parent`.
fn child_of(parent: u32) -> u32 {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            if status
                .lines()
                .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&parent.to_string()))
            {
                return pid;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no child of {parent} appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "needs root: unshare --pid"]
fn sigterm_ends_agent_init_as_pid_1_of_a_new_pid_namespace() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for unshare --pid"
    );
    let (ca, server) = serve(vec![Reply::hang()]);
    let f = Fixture::new("pid1", &server.url(), &ca);
    let mut args: Vec<OsString> = vec![
        "--pid".into(),
        "--fork".into(),
        "--mount-proc".into(),
        support::bin().into(),
    ];
    args.extend(f.capture());
    let unshare = f
        .command(system_tool("unshare"), &args)
        .spawn()
        .expect("unshare runs");
    let pid = child_of(unshare.id());
    server.wait_for_requests(1);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid line");
    assert_eq!(
        nspid.split_whitespace().last(),
        Some("1"),
        "agent-init is PID 1 in its namespace: {nspid}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        support::bin().canonicalize().unwrap()
    );
    // The kernel drops a signal to a namespace's PID 1 that has no handler:
    // only agent-init's own handler can end it here.
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let out = finish(unshare);
    f.assert_failed(&out, 143);
}

#[test]
#[ignore = "needs root: a private mount namespace"]
fn failure_reason_is_written_to_dev_termination_log() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for a private mount namespace"
    );
    let (ca, server) = serve(vec![Reply::status(401)]);
    let f = Fixture::new("termination-log", &server.url(), &ca);
    let copy = f.dir.join("termination-log");
    // A private mount namespace with its own /dev, so the real one is untouched.
    let script = r#"
        copy=$1; shift
        mount -t tmpfs tmpfs /dev || exit 99
        : > /dev/termination-log
        "$@"
        code=$?
        cat /dev/termination-log > "$copy"
        exit $code
    "#;
    let mut args: Vec<OsString> = vec![
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        "sh".into(),
        copy.clone().into(),
        support::bin().into(),
    ];
    args.extend(f.capture());
    let out = f
        .command(system_tool("unshare"), &args)
        .output()
        .expect("unshare runs");
    f.assert_failed(&out, 77);
    let reason = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");
    assert!(
        reason.starts_with("agent-init: ") && reason.contains("401"),
        "{reason:?}"
    );
    for s in &f.forbidden {
        assert!(!reason.contains(s.as_str()), "the reason leaks a secret");
    }
}

// ---------------------------------------------------------------------------
// The command: exec keeps the PID; 126 and 127.

#[test]
fn exec_mode_keeps_agent_init_pid_for_the_command() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let f = Fixture::new("same-pid", &server.url(), &ca);
    let pid_file = f.dir.join("pid");
    let args: Vec<OsString> = vec![
        "sh".into(),
        "-c".into(),
        "echo $$ > \"$0\"".into(),
        pid_file.clone().into(),
    ];
    let child = f.command(support::bin(), &args).spawn().unwrap();
    let pid = child.id();
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let forbidden: Vec<&str> = f.forbidden.iter().map(String::as_str).collect();
    assert_no_leak(&out, &forbidden);
    let printed = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        printed.trim(),
        pid.to_string(),
        "the command is agent-init's process"
    );
}

#[test]
fn command_not_found_exits_127_with_the_shell_message() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let f = Fixture::new("not-found", &server.url(), &ca);
    let out = f.run_with(&["no-such-agent-command".into()]);
    f.assert_failed(&out, 127);
    assert!(
        stderr(&out).contains("no-such-agent-command: command not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn command_that_is_not_executable_exits_126() {
    let (ca, server) = serve(vec![Reply::ok(good_bundle())]);
    let f = Fixture::new("not-executable", &server.url(), &ca);
    let script = f.dir.join("agent.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n: > '{}'\n", f.marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = f.run_with(&[script.into()]);
    f.assert_failed(&out, 126);
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// The binary is static: no loader, no libraries, names resolved in an empty root.

/// Reads ELF64 little-endian program headers: (p_type, p_offset, p_filesz).
fn program_headers(elf: &[u8]) -> Vec<(u32, u64, u64)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(elf[4], 2, "ELF64");
    assert_eq!(elf[5], 1, "little-endian");
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            (u32_at(h), u64_at(h + 8), u64_at(h + 32))
        })
        .collect()
}

#[test]
fn binary_is_static_pie_with_no_interpreter_and_no_needed_libraries() {
    const ET_DYN: u16 = 3;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let elf = std::fs::read(support::bin()).unwrap();
    assert_eq!(
        u16::from_le_bytes([elf[16], elf[17]]),
        ET_DYN,
        "position-independent"
    );
    let headers = program_headers(&elf);
    assert!(
        headers.iter().all(|(t, _, _)| *t != PT_INTERP),
        "no program interpreter (dynamic loader)"
    );
    for (_, off, size) in headers.iter().filter(|(t, _, _)| *t == PT_DYNAMIC) {
        let dynamic = &elf[*off as usize..(*off + *size) as usize];
        for entry in dynamic.chunks_exact(16) {
            let tag = u64::from_le_bytes(entry[..8].try_into().unwrap());
            assert_ne!(tag, DT_NEEDED, "no shared library needed");
            if tag == 0 {
                break;
            }
        }
    }
}

/// Runs `agent-init --check` chrooted into a root that holds only the
/// binary, the test CA and one file under `/etc`, against a server whose
/// certificate names `host`; asserts the bundle was fetched with the right
/// credential and opened, and nothing secret was printed.
fn check_in_empty_chroot(fixture: &str, host: &str, etc_file: &str, contents: &str) {
    let ca = Ca::new("agent-init test CA");
    let server = Server::start(
        &ca.issue(&[host], Validity::Good),
        vec![Reply::ok(good_bundle())],
    );
    let mut f = Fixture::new(fixture, &server.url_for_host(host), &ca);
    // No libc, no loader, no nsswitch.conf: only what the test puts there.
    let root = f.dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(support::bin(), root.join("agent-init")).unwrap();
    std::fs::write(root.join("etc").join(etc_file), contents).unwrap();
    std::fs::write(root.join("ca.pem"), ca.pem()).unwrap();
    f.set("AGENT_INIT_CA_FILE", "/ca.pem");
    let args: Vec<OsString> = vec![root.into(), "/agent-init".into(), "--check".into()];
    let out = f
        .command(system_tool("chroot"), &args)
        .output()
        .expect("chroot runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("check passed"), "{err}");
    let forbidden: Vec<&str> = f.forbidden.iter().map(String::as_str).collect();
    assert_no_leak(&out, &forbidden);
    assert_eq!(
        server.requests()[0].header("Authorization"),
        bundle::vector_authorization()
    );
}

#[test]
#[ignore = "needs root: chroot"]
fn static_binary_resolves_from_etc_hosts_and_fetches_in_an_empty_chroot() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for chroot"
    );
    check_in_empty_chroot(
        "chroot",
        "secrets.test",
        "hosts",
        "127.0.0.1 secrets.test\n",
    );
}

/// Held by each test that binds 127.0.0.1:53, so they take turns.
static PORT_53: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A DNS responder on 127.0.0.1:53 that answers A queries for `name` with
/// `answer` (and other queries with no answer), counting the A queries it
/// answered. It stops when `stop` is set. Hold [`PORT_53`] while it runs.
fn dns_responder(
    name: &'static str,
    answer: [u8; 4],
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let sock =
        std::net::UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 (root, port free)");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if q.len() < 17 {
                continue;
            }
            // The question: labels from byte 12, then QTYPE and QCLASS.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < q.len() && q[i] != 0 {
                let len = q[i] as usize;
                labels.push(
                    String::from_utf8_lossy(&q[i + 1..(i + 1 + len).min(q.len())]).into_owned(),
                );
                i += 1 + len;
            }
            let qend = i + 5;
            if qend > q.len() {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let hit = labels.join(".").eq_ignore_ascii_case(name) && qtype == 1;
            let mut r = Vec::with_capacity(qend + 16);
            r.extend_from_slice(&q[..2]); // ID
            r.extend_from_slice(&[0x81, 0x80]); // response, recursion desired and available, NOERROR
            r.extend_from_slice(&[0, 1, 0, u8::from(hit), 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..qend]);
            if hit {
                // Name pointer to the question, A, IN, TTL 60, 4 bytes: `answer`.
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&answer);
                count.fetch_add(1, Ordering::Relaxed);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    (handle, answered)
}

#[test]
#[ignore = "needs root: chroot and port 53"]
fn static_binary_resolves_through_dns_in_an_empty_chroot() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for chroot and port 53"
    );
    let _port_53 = PORT_53
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (dns, answered) = dns_responder("secrets-dns.test", [127, 0, 0, 1], stop.clone());
    // No /etc/hosts: the name can only come from the DNS responder.
    check_in_empty_chroot(
        "chroot-dns",
        "secrets-dns.test",
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dns.join().unwrap();
    assert!(
        answered.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the name was resolved through the DNS responder"
    );
}

#[test]
#[ignore = "needs root: chroot and port 53"]
fn plain_http_to_localhost_dot_that_dns_answers_elsewhere_exits_78_sending_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for chroot and port 53"
    );
    let _port_53 = PORT_53
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // `localhost.` (trailing dot) matches no /etc/hosts line and goes to DNS.
    // The answer, 0.0.0.0, is not a loopback address, yet Linux delivers a
    // connect to it on this host: were the address not checked, the token
    // would reach this server in clear text.
    let server = Server::start_plain(vec![Reply::ok(good_bundle())]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (dns, answered) = dns_responder("localhost", [0, 0, 0, 0], stop.clone());
    let ca = Ca::new("agent-init test CA");
    let mut f = Fixture::new(
        "http-localhost-dot",
        &server.url_for_host("localhost."),
        &ca,
    );
    f.unset("AGENT_INIT_CA_FILE")
        .set("AGENT_INIT_TIMEOUT", IMPATIENT);
    let root = f.dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(support::bin(), root.join("agent-init")).unwrap();
    std::fs::write(
        root.join("etc/resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
    )
    .unwrap();
    let args: Vec<OsString> = vec![root.into(), "/agent-init".into(), "--check".into()];
    let out = f
        .command(system_tool("chroot"), &args)
        .output()
        .expect("chroot runs");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dns.join().unwrap();
    f.assert_failed(&out, 78);
    let err = stderr(&out);
    assert!(err.contains("not loopback"), "{err}");
    assert!(
        answered.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the name was resolved through the DNS responder"
    );
    assert_eq!(server.connections(), 0, "nothing was sent");
}
