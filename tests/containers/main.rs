//! agent-init in real containers: images built from `Dockerfile.example`
//! and `Dockerfile.node.example` with podman and runc, run with
//! `--network=none`, stopped with `podman stop`.
//!
//! No registry is reachable, so the base images are made here: a Debian
//! root from `debootstrap` (python3, nodejs, gcc; pnpm copied from the host)
//! imported with `podman import` and kept under a tag that names its
//! contents, so later runs reuse it. The images are built with the base
//! substituted (`PYTHON_IMAGE`, `NODE_IMAGE`, `RUST_IMAGE`), and with the
//! agent-init binary under test copied in (`AGENT_INIT_FROM=prebuilt`) or,
//! in one test, compiled by the Dockerfile's own builder stage.
//!
//! The agents in these images are probes (`tests/agents/probe-*`), not the
//! LiveKit framework (tests/agents/ runs that): they record their pid,
//! uid, parent and exact environment into a mounted directory, and drain on
//! SIGTERM, then exit 37. `real_workers` also runs the real example workers
//! in the images (their installed packages mounted in) and checks that a
//! job process read the credentials file.
//!
//! Required: root, podman, runc, debootstrap, pnpm (installed globally, as
//! scripts/test.sh does) and Debian's mirror for the first run. So every
//! test here is `#[ignore]`d with that reason, out of plain `cargo test`;
//! scripts/test.sh (and so CI) runs them with `--include-ignored`, and there
//! a missing tool fails the test with the reason; nothing is skipped.
//!
//! One test binary; a module per behaviour. Each run is a `support::Harness`:
//! its directory holds the token and the sealed bundle that the container
//! mounts, its side directory is the probe's /out (the probe's `environ` is
//! the harness's capture, its `started.json` the marker), its environment is
//! what the container gets with `-e`, and its `Forbidden` is what no log may
//! show.

#[path = "../support/mod.rs"]
mod support;

mod environment;
mod file_secrets;
mod healthcheck;
mod images;
mod real_workers;
mod refusals;
mod stopping;

use agent_init::protocol::token::Token;
use images::{images, Images};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::bundle::{self, LIVEKIT};
use support::Harness;

/// The flags that make podman work on these machines (crun and the systemd
/// cgroup manager fail on their hybrid cgroups).
const PODMAN: [&str; 3] = ["--cgroup-manager=cgroupfs", "--runtime", "runc"];
/// `podman run` flags for every container here: no network, and limits the
/// runtime can set without the systemd manager.
const RUN: [&str; 5] = [
    "--network=none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];
/// The images' HEALTHCHECK is off except where a test runs it: podman
/// runs it from a systemd timer, which these machines cannot start, and
/// prints an error for it on every `podman run`.
const NO_HEALTHCHECK: &str = "--no-healthcheck";
/// Bound on waiting for a container to do something; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);
/// The probes' own exit status after draining.
const PROBE_EXIT: i32 = 37;
/// Where the containers see the bundle and the token file.
const BUNDLE: &str = "/run/agent/bundle.json";
const TOKEN_FILE: &str = "/run/agent-token/token";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails the test unless `tool` runs; `hint` says where it comes from.
fn require_tool(tool: &str, hint: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is required and not found: {hint}");
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the container tests need root (rootful podman, debootstrap); CI runs as root"
    );
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args(PODMAN);
    c
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn check(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{cmd:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The two agent runtimes, one image each.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Python,
    Node,
}

impl Lang {
    fn image(self, images: &Images) -> &str {
        match self {
            Lang::Python => &images.python,
            Lang::Node => &images.node,
        }
    }

    /// The probe agent's interpreter and script.
    fn probe(self) -> [&'static str; 2] {
        match self {
            Lang::Python => ["python", "agent.py"],
            Lang::Node => ["node", "dist/agent.js"],
        }
    }

    /// The probe's command that records how it started and exits 0.
    fn once(self) -> [&'static str; 3] {
        let [interpreter, script] = self.probe();
        [interpreter, script, "--once"]
    }

    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Node => "node",
        }
    }
}

/// agent-init's two ways to start the agent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// agent-init becomes the agent: the agent is PID 1.
    Exec,
    /// `AGENT_INIT_SUPERVISE=1`: agent-init stays PID 1, the agent its child.
    Supervise,
}

impl Mode {
    /// Sets the mode in the run's environment.
    fn set(self, h: &mut Harness) {
        match self {
            Mode::Exec => h.unset("AGENT_INIT_SUPERVISE"),
            Mode::Supervise => h.set("AGENT_INIT_SUPERVISE", "1"),
        };
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Exec => "exec",
            Mode::Supervise => "supervise",
        }
    }
}

/// The bundle's secrets besides the platform's three values.
const SECRETS: [(&str, &str); 2] = [
    ("OPENAI_API_KEY", "sk-container-test-5b1e"),
    (
        "DEEPGRAM_API_KEY",
        "dg container test: spaces, = and \u{e9}",
    ),
];

/// A run whose agent is a probe: the harness's side directory, mounted at
/// /out and writable by UID 10001, gets what the probe records (`environ`
/// is [`Harness::out`], `started.json` is [`Harness::marker`]).
fn probe(name: &str) -> Harness {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::new(name);
    std::fs::set_permissions(h.side(), std::fs::Permissions::from_mode(0o777)).unwrap();
    h.marker = h.side().join("started.json");
    h
}

/// [`probe`] with a fresh token and a bundle sealed for it ([`SECRETS`]
/// and the platform's values), both 0644 as a mounted Kubernetes Secret;
/// the container's environment names them (the token in
/// `LIVEKIT_BOOTSTRAP_TOKEN`), and their values are forbidden in output.
fn sealed(name: &str) -> Harness {
    let mut h = probe(name);
    let token = Token::generate().unwrap();
    h.write_token(&token);
    h.write_bundle(&plaintext());
    h.forbidden = std::mem::take(&mut h.forbidden).livekit();
    h.forbid(&SECRETS.map(|(_, v)| v));
    h.set("LIVEKIT_SECRETS_URL", format!("file://{BUNDLE}"));
    h.set("LIVEKIT_BOOTSTRAP_TOKEN", token.encode().expose());
    h
}

/// The bundle's plaintext: [`SECRETS`] and the platform's three values.
fn plaintext() -> String {
    bundle::plaintext(&SECRETS, &LIVEKIT)
}

/// The token from the mounted file instead (a Kubernetes Secret volume).
fn token_from_file(h: &mut Harness) {
    h.unset("LIVEKIT_BOOTSTRAP_TOKEN");
    h.set("LIVEKIT_BOOTSTRAP_TOKEN_FILE", TOKEN_FILE);
}

/// `podman run` flags for `h`'s run: its side directory at /out, its bundle
/// and token file where the environment says they are, and the environment.
fn flags(h: &Harness) -> Vec<String> {
    let mut f = vec!["-v".to_string(), format!("{}:/out", h.side().display())];
    let bundle = h.dir.join("bundle.json");
    if bundle.exists() {
        f.extend(["-v".into(), format!("{}:{BUNDLE}:ro", bundle.display())]);
    }
    if h.env
        .iter()
        .any(|(n, _)| n == "LIVEKIT_BOOTSTRAP_TOKEN_FILE")
    {
        let token = h.dir.join("token");
        f.extend(["-v".into(), format!("{}:{TOKEN_FILE}:ro", token.display())]);
    }
    for (name, value) in &h.env {
        f.extend(["-e".into(), format!("{name}={}", value.to_string_lossy())]);
    }
    f
}

/// `NAME=VALUE` of every variable the bundle of [`sealed`] carries.
fn bundle_vars() -> Vec<Vec<u8>> {
    SECRETS
        .iter()
        .chain(LIVEKIT.iter())
        .map(|(n, v)| format!("{n}={v}").into_bytes())
        .collect()
}

/// What the probe recorded at start.
fn started(h: &Harness) -> serde_json::Value {
    let raw = std::fs::read(&h.marker).expect("the probe started");
    serde_json::from_slice(&raw).unwrap()
}

/// The probe's exact initial environment, as a set of `NAME=VALUE`.
fn environ(h: &Harness) -> BTreeSet<Vec<u8>> {
    h.captured().into_iter().collect()
}

/// Whether the probe wrote `file` into /out.
fn has(h: &Harness, file: &str) -> bool {
    h.side().join(file).exists()
}

/// Waits until the probe in `container` has recorded its start.
fn wait_started(h: &Harness, container: &Container) {
    support::wait_for(
        PATIENCE,
        Duration::from_millis(100),
        || h.started().then_some(()),
        || format!("the probe did not start; logs:\n{}", container.logs()),
    );
}

/// Starts `cmd` (the image's own, if empty) detached with `h`'s flags and
/// waits until the probe has recorded its start.
fn start_probe(h: &Harness, image: &str, cmd: &[&str]) -> Container {
    let name = h.dir.file_name().unwrap().to_string_lossy();
    let c = Container::start(&name, &flags(h), image, cmd);
    wait_started(h, &c);
    c
}

/// Stops `container` (`podman stop`, SIGTERM) and asserts the probe heard
/// SIGTERM, drained to the end, the container exited with the probe's own
/// code, and its logs show nothing forbidden. Returns the logs.
fn assert_stop_drains(h: &Harness, container: &Container) -> String {
    let code = container.stop(60);
    let logs = container.logs();
    assert!(has(h, "drain-started"), "SIGTERM reached the agent: {logs}");
    assert!(has(h, "drained"), "the drain ran to its end: {logs}");
    assert_eq!(
        code, PROBE_EXIT,
        "the container's code is the agent's: {logs}"
    );
    h.forbidden.assert_not_in("the logs", &logs);
    logs
}

/// A detached container, removed when dropped.
struct Container {
    name: String,
}

impl Container {
    fn start(name: &str, flags: &[String], image: &str, cmd: &[&str]) -> Container {
        let mut all = vec![NO_HEALTHCHECK.to_string()];
        all.extend(flags.iter().cloned());
        Container::start_with_healthcheck(name, &all, image, cmd)
    }

    /// As [`Container::start`], with the image's HEALTHCHECK, for
    /// `podman healthcheck run`.
    fn start_with_healthcheck(
        name: &str,
        flags: &[String],
        image: &str,
        cmd: &[&str],
    ) -> Container {
        let name = format!("agent-init-test-{name}-{}", std::process::id());
        let _ = podman().args(["rm", "-f", &name]).output();
        check(
            podman()
                .args(["run", "-d", "--name", &name, "--hostname", "agent"])
                .args(RUN)
                .args(flags)
                .arg(image)
                .args(cmd),
            "podman run -d",
        );
        Container { name }
    }

    /// `podman stop` with a grace period; returns the container's exit code.
    fn stop(&self, grace_seconds: u32) -> i32 {
        check(
            podman().args(["stop", "-t", &grace_seconds.to_string(), &self.name]),
            "podman stop",
        );
        self.exit_code()
    }

    fn exit_code(&self) -> i32 {
        let out = check(
            podman().args(["inspect", "--format", "{{.State.ExitCode}}", &self.name]),
            "podman inspect",
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    fn logs(&self) -> String {
        let out = podman()
            .args(["logs", &self.name])
            .output()
            .expect("podman logs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

/// Runs a container to completion (attached, removed afterwards).
fn run(flags: &[String], image: &str, cmd: &[&str]) -> Output {
    podman()
        .args(["run", "--rm", "--hostname", "agent", NO_HEALTHCHECK])
        .args(RUN)
        .args(flags)
        .arg(image)
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .expect("podman run")
}

/// Asserts that `o` exited with `code` and printed nothing forbidden;
/// returns what it printed.
fn exited(h: &Harness, o: &Output, code: i32) -> String {
    let text = output_text(o);
    assert_eq!(o.status.code(), Some(code), "{text}");
    h.forbidden.assert_not_in("the logs", &text);
    text
}

/// The environment the probe of `lang` sees when started directly, without
/// agent-init: what podman and the image give any process (PATH, HOME,
/// HOSTNAME, container=podman, the image's ENV) plus `flags`' `-e`.
fn baseline_env(lang: Lang, flags: &[&str]) -> BTreeSet<Vec<u8>> {
    let h = probe("baseline");
    let [interpreter, script] = lang.probe();
    let mut all = self::flags(&h);
    all.extend(strings(flags));
    all.extend(strings(&["--entrypoint", interpreter]));
    let o = run(&all, lang.image(images()), &[script, "--once"]);
    exited(&h, &o, 0);
    environ(&h)
}

/// Asserts the probe's environment is exactly [`baseline_env`] (with
/// `flags`) plus the bundle's variables.
fn assert_bundles_environment(h: &Harness, lang: Lang, flags: &[&str]) {
    let mut expected = baseline_env(lang, flags);
    expected.extend(bundle_vars());
    assert_env_eq(&environ(h), &expected);
}

fn show(set: &BTreeSet<Vec<u8>>) -> Vec<String> {
    set.iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn assert_env_eq(actual: &BTreeSet<Vec<u8>>, expected: &BTreeSet<Vec<u8>>) {
    let extra: BTreeSet<_> = actual.difference(expected).cloned().collect();
    let missing: BTreeSet<_> = expected.difference(actual).cloned().collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the agent's environment differs: unexpected {:?}, missing {:?}",
        show(&extra),
        show(&missing)
    );
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
