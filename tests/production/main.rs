//! The production path end to end: the built agent-init, a bootstrap token,
//! and a real HTTPS secrets server on 127.0.0.1 whose CA the test made
//! (PROTOCOL.md §4 to §8). One test binary; a module per behaviour.
//!
//! Refusals are not here: a new failure is a row of tests/fault_matrix.rs
//! (with extra checks where it needs them), which also keeps HARDENING.md's
//! table. This suite keeps what the matrix cannot express: successes and the
//! exact environment the command received, Retry-After timing, proxies,
//! /proc while fetching, PID namespaces, resource limits, chroot resolution.
//! Failures here still assert the §8 invariants ([`Harness::assert_failed`]).
//! Waits are judged from the server's own request times, never by timing
//! the test.

#[path = "../support/mod.rs"]
mod support;

mod delivery;
mod limits;
mod process;
mod retries;
mod static_binary;
mod transport;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::process::{Child, Output};
use std::time::Duration;
use support::bundle::{self, LIVEKIT};
use support::harness::assert_environment;
use support::proxy::Proxy;
use support::server::{closed_port, Reply, Server, PATIENCE};
use support::tls::{Ca, Validity};
use support::{system_tool, Forbidden, Harness, PATH};

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

/// agent-init with the vector token, pointed at `url`, trusting `ca`; the
/// token's strings, its `Authorization` header, the bundle's secret values
/// and the platform's key and secret are forbidden in output.
fn fixture(name: &str, url: &str, ca: &Ca) -> Harness {
    let mut f = Harness::new(name);
    let ca_file = ca.write_pem(&f.dir);
    f.forbidden = Forbidden::new()
        .token(&bundle::vector_token())
        .value(bundle::vector_authorization())
        .values(secrets().into_iter().map(|(_, v)| v))
        .livekit();
    f.set("LIVEKIT_BOOTSTRAP_TOKEN", bundle::vector_token_text());
    f.set("LIVEKIT_SECRETS_URL", url);
    f.set("AGENT_INIT_CA_FILE", ca_file);
    f.set("AGENT_INIT_TIMEOUT", PATIENT);
    f
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

/// Runs `f` and asserts the ordinary success: exit 0, the command ran with
/// exactly the ordinary bundle's environment, nothing forbidden printed.
fn run_ordinary(f: &Harness) -> Output {
    let out = f.run();
    let env = f.assert_succeeded(&out);
    assert_environment(&env, &expected_environment(&[]));
    out
}

/// Asserts that one line of `out`'s stderr holds both `a` and `b`; `what`
/// says what that line shows.
#[track_caller]
fn assert_a_line_has(out: &Output, a: &str, b: &str, what: &str) {
    let err = stderr(out);
    assert!(
        err.lines().any(|l| l.contains(a) && l.contains(b)),
        "{what}: {err}"
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn request_count(server: &Server) -> usize {
    server.requests().len()
}

/// Waits for agent-init to end and returns its output.
fn finish(child: Child) -> Output {
    child.wait_with_output().expect("agent-init ends")
}
