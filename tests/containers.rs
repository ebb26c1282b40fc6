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
//! LiveKit framework (tests/agents.rs runs that): they record their pid,
//! uid, parent and exact environment into a mounted directory, and drain on
//! SIGTERM, then exit 37. The file-secret tests at the end also run the
//! real example workers in the images (their installed packages mounted in)
//! and check that a job process read the credentials file.
//!
//! Required: root, podman, runc, debootstrap, pnpm (installed globally, as
//! scripts/test.sh does) and Debian's mirror for the first run. So every
//! test here is `#[ignore]`d with that reason, out of plain `cargo test`;
//! scripts/test.sh (and so CI) runs them with `--include-ignored`, and there
//! a missing tool fails the test with the reason; nothing is skipped.

mod support;

use agent_init::protocol::token::Token;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::bundle;

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
/// The Debian mirror debootstrap reads.
const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages of the test base image: what python:3.13-slim and node:22-slim
/// give an agent (python3 with venv, node), plus a C toolchain for the
/// builder stage that compiles agent-init.
const DEBIAN_PACKAGES: &str = "python3-venv,nodejs,gcc,libc6-dev";
/// Bound on waiting for a container to do something; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);
/// The probes' own exit status after draining.
const PROBE_EXIT: i32 = 37;

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

fn image_exists(tag: &str) -> bool {
    podman()
        .args(["image", "exists", tag])
        .status()
        .is_ok_and(|s| s.success())
}

/// The version and directory of the host's global pnpm, copied into the base.
fn host_pnpm() -> (String, PathBuf) {
    require_tool(
        "pnpm",
        "scripts/test.sh installs it (npm install -g pnpm@10.34.9)",
    );
    require_tool("npm", "Debian's npm package, or Node's");
    let root = check(Command::new("npm").args(["root", "-g"]), "npm root -g");
    let dir = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim()).join("pnpm");
    let manifest = std::fs::read_to_string(dir.join("package.json"))
        .unwrap_or_else(|e| panic!("pnpm is not installed globally in {}: {e}", dir.display()));
    let v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    (v["version"].as_str().unwrap().to_string(), dir)
}

/// The Debian base image, made with debootstrap on first use and then kept:
/// its tag names what is in it, so a change of contents makes a new one.
fn debian_base() -> String {
    require_root();
    require_tool(
        "podman",
        "scripts/test.sh installs Debian's podman and runc",
    );
    require_tool("runc", "scripts/test.sh installs Debian's runc");
    let (pnpm_version, pnpm_dir) = host_pnpm();
    let tag = format!(
        "localhost/agent-init-test-debian:bookworm-{}-pnpm{pnpm_version}-v1",
        DEBIAN_PACKAGES.replace(',', "-")
    );
    if image_exists(&tag) {
        return tag;
    }
    require_tool(
        "debootstrap",
        "scripts/test.sh installs Debian's debootstrap",
    );
    let work = RemoveOnDrop(support::scratch("debootstrap"));
    let root = work.0.join("root");
    eprintln!("building {tag} with debootstrap (once; later runs reuse it)");
    check(
        Command::new("debootstrap").args([
            "--variant=minbase",
            &format!("--include={DEBIAN_PACKAGES}"),
            "bookworm",
            root.to_str().unwrap(),
            MIRROR,
        ]),
        "debootstrap (needs Debian's mirror)",
    );
    // What an image does not need: downloaded packages, package lists, docs.
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
    // pnpm, as `npm install -g pnpm` would leave it (it has no dependencies).
    let lib = root.join("usr/local/lib/node_modules");
    std::fs::create_dir_all(&lib).unwrap();
    check(
        Command::new("cp").arg("-a").arg(&pnpm_dir).arg(&lib),
        "copying pnpm into the root",
    );
    std::os::unix::fs::symlink(
        "../lib/node_modules/pnpm/bin/pnpm.cjs",
        root.join("usr/local/bin/pnpm"),
    )
    .unwrap();
    check(
        Command::new("bash").args([
            "-c",
            &format!(
                "set -o pipefail; tar -C '{}' -c . | podman {} import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - '{tag}'",
                root.display(),
                PODMAN.join(" ")
            ),
        ]),
        "podman import",
    );
    tag
}

/// A directory removed when the test is done with it, passed or failed.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The images under test, built once per run of this file.
struct Images {
    debian: String,
    python: String,
    node: String,
    scratch: String,
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Result<Images, String>> = OnceLock::new();
    let built = IMAGES.get_or_init(|| {
        std::panic::catch_unwind(build_images).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "building the test images failed".into())
        })
    });
    match built {
        Ok(images) => images,
        Err(why) => panic!("the test images could not be built: {why}"),
    }
}

/// A build context: `probe` with the example agent's `.dockerignore`, plus
/// `.env` files of a developer, which must not reach the image.
fn context(probe: &str, example: &str) -> PathBuf {
    let dir = support::scratch(&format!("context-{probe}"));
    check(
        Command::new("cp")
            .arg("-a")
            .arg(repo().join("tests/agents").join(probe).join("."))
            .arg(&dir),
        "copying the probe agent",
    );
    std::fs::copy(
        repo().join("examples").join(example).join(".dockerignore"),
        dir.join(".dockerignore"),
    )
    .unwrap();
    for name in [".env", ".env.local", ".env.production"] {
        std::fs::write(dir.join(name), "LEAKED_DEVELOPER_SECRET=do-not-ship\n").unwrap();
    }
    dir
}

/// A directory holding the binary under test as `agent-init`: the
/// `agent-init` build context for `AGENT_INIT_FROM=prebuilt`.
fn prebuilt_context() -> PathBuf {
    let dir = support::scratch("agent-init-prebuilt");
    std::fs::copy(support::bin(), dir.join("agent-init")).unwrap();
    dir
}

fn build(dockerfile: &str, args: &[(&str, &str)], extra: &[&str], ctx: &Path, tag: &str) {
    let mut cmd = podman();
    // Docker's image format: OCI images have no HEALTHCHECK, and podman
    // drops it from an OCI build (docker build keeps it).
    cmd.args(["build", "--network=none", "--format", "docker", "-q", "-f"])
        .arg(repo().join(dockerfile));
    for (k, v) in args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    cmd.args(extra).args(["-t", tag]).arg(ctx);
    let before = image_id(tag);
    check(&mut cmd, &format!("podman build {dockerfile} ({tag})"));
    // The image this tag named before (an older binary, say) is garbage now.
    if let Some(old) = before.filter(|old| Some(old) != image_id(tag).as_ref()) {
        let _ = podman().args(["rmi", &old]).output();
    }
}

fn image_id(tag: &str) -> Option<String> {
    let out = podman()
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn build_images() -> Images {
    let debian = debian_base();
    let bin = prebuilt_context();
    let agent_init_ctx = format!("agent-init={}", bin.display());
    let common = [
        ("AGENT_INIT_FROM", "prebuilt"),
        ("PYTHON_IMAGE", debian.as_str()),
        ("NODE_IMAGE", debian.as_str()),
    ];
    let python = "localhost/agent-init-test-python:latest".to_string();
    let py_ctx = context("probe-python", "python-agent");
    build(
        "Dockerfile.example",
        &common,
        &["--build-context", &agent_init_ctx],
        &py_ctx,
        &python,
    );
    let scratch = "localhost/agent-init-test-scratch:latest".to_string();
    build(
        "Dockerfile.example",
        &common,
        &["--build-context", &agent_init_ctx, "--target", "scratch"],
        &py_ctx,
        &scratch,
    );
    let node = "localhost/agent-init-test-node:latest".to_string();
    let node_ctx = context("probe-node", "node-agent");
    build(
        "Dockerfile.node.example",
        &common,
        &["--build-context", &agent_init_ctx],
        &node_ctx,
        &node,
    );
    for dir in [bin, py_ctx, node_ctx] {
        let _ = std::fs::remove_dir_all(dir);
    }
    Images {
        debian,
        python,
        node,
        scratch,
    }
}

/// A sealed bundle and its token, in a directory, readable as a mounted
/// Kubernetes Secret would be (0644).
struct Sealed {
    dir: PathBuf,
    token: String,
    secrets: Vec<(&'static str, &'static str)>,
}

const SECRETS: [(&str, &str); 2] = [
    ("OPENAI_API_KEY", "sk-container-test-5b1e"),
    (
        "DEEPGRAM_API_KEY",
        "dg container test: spaces, = and \u{e9}",
    ),
];

impl Sealed {
    fn new(name: &str) -> Sealed {
        use std::os::unix::fs::PermissionsExt;
        let dir = support::scratch(name);
        let token = Token::generate().unwrap();
        let plain = bundle::plaintext(&SECRETS, &bundle::LIVEKIT);
        let path = dir.join("bundle.json");
        std::fs::write(&path, bundle::seal(&token, &plain)).unwrap();
        let text = token.encode().expose().to_string();
        std::fs::write(dir.join("token"), format!("{text}\n")).unwrap();
        for f in ["bundle.json", "token"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut secrets = SECRETS.to_vec();
        secrets.extend(bundle::LIVEKIT);
        Sealed {
            dir,
            token: text,
            secrets,
        }
    }

    /// `podman run` flags: the bundle mounted, its URL, and the token.
    fn flags(&self) -> Vec<String> {
        vec![
            "-v".into(),
            format!(
                "{}:/run/agent/bundle.json:ro",
                self.dir.join("bundle.json").display()
            ),
            "-e".into(),
            "LIVEKIT_SECRETS_URL=file:///run/agent/bundle.json".into(),
            "-e".into(),
            format!("LIVEKIT_BOOTSTRAP_TOKEN={}", self.token),
        ]
    }

    /// The same, with the token from a mounted file (a Kubernetes Secret volume).
    fn flags_with_token_file(&self) -> Vec<String> {
        vec![
            "-v".into(),
            format!(
                "{}:/run/agent/bundle.json:ro",
                self.dir.join("bundle.json").display()
            ),
            "-v".into(),
            format!(
                "{}:/run/agent-token/token:ro",
                self.dir.join("token").display()
            ),
            "-e".into(),
            "LIVEKIT_SECRETS_URL=file:///run/agent/bundle.json".into(),
            "-e".into(),
            "LIVEKIT_BOOTSTRAP_TOKEN_FILE=/run/agent-token/token".into(),
        ]
    }

    /// `NAME=VALUE` of every variable the bundle carries.
    fn vars(&self) -> Vec<Vec<u8>> {
        self.secrets
            .iter()
            .map(|(n, v)| format!("{n}={v}").into_bytes())
            .collect()
    }

    /// Strings that must never appear in a log: values and token material.
    fn never_printed(&self) -> Vec<String> {
        let mut v: Vec<String> = self.secrets.iter().map(|(_, v)| v.to_string()).collect();
        v.extend(bundle::token_strings(&Token::parse(&self.token).unwrap()));
        v
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory a probe writes into, mounted at /out (writable by UID 10001).
struct Out(PathBuf);

impl Out {
    fn new(name: &str) -> Out {
        use std::os::unix::fs::PermissionsExt;
        let dir = support::scratch(name);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Out(dir)
    }
    fn flags(&self) -> Vec<String> {
        vec!["-v".into(), format!("{}:/out", self.0.display())]
    }
    fn has(&self, file: &str) -> bool {
        self.0.join(file).exists()
    }
    /// What the probe recorded at start.
    fn started(&self) -> serde_json::Value {
        let raw = std::fs::read(self.0.join("started.json")).expect("the probe started");
        serde_json::from_slice(&raw).unwrap()
    }
    /// The probe's exact initial environment, as a set of `NAME=VALUE`.
    fn environ(&self) -> BTreeSet<Vec<u8>> {
        let raw =
            std::fs::read(self.0.join("environ")).expect("the probe recorded its environment");
        raw.split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }
    /// Stops `container` (`podman stop`, SIGTERM) and asserts the probe
    /// heard SIGTERM, drained to the end, and that the container exited with
    /// the probe's own code. Returns the container's logs.
    fn assert_stop_drains(&self, container: &Container) -> String {
        let code = container.stop(60);
        let logs = container.logs();
        assert!(
            self.has("drain-started"),
            "SIGTERM reached the agent: {logs}"
        );
        assert!(self.has("drained"), "the drain ran to its end: {logs}");
        assert_eq!(
            code, PROBE_EXIT,
            "the container's code is the agent's: {logs}"
        );
        logs
    }
    fn wait_started(&self, container: &Container) {
        let t0 = Instant::now();
        while !self.has("started.json") {
            assert!(
                t0.elapsed() < PATIENCE,
                "the probe did not start; logs:\n{}",
                container.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

/// The environment the probe sees when started directly, without
/// agent-init: what podman and the image give any process (PATH, HOME,
/// HOSTNAME, container=podman, the image's ENV) plus `flags`' `-e`.
fn baseline_env(
    image: &str,
    flags: &[String],
    entrypoint: &str,
    script: &str,
) -> BTreeSet<Vec<u8>> {
    let out = Out::new("baseline");
    let mut all = out.flags();
    all.extend(flags.iter().cloned());
    all.extend(["--entrypoint".to_string(), entrypoint.to_string()]);
    let o = run(&all, image, &[script, "--once"]);
    assert!(
        o.status.success(),
        "baseline run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.environ()
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

fn assert_never_printed(text: &str, secrets: &[String]) {
    support::Forbidden::from_iter(secrets).assert_not_in("the logs", text);
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn scratch_image_holds_agent_init_alone_and_it_opens_a_mounted_bundle_there() {
    let images = images();
    // The image's whole file system: one file.
    let mount = check(
        podman().args(["image", "mount", &images.scratch]),
        "podman image mount",
    );
    let root = PathBuf::from(String::from_utf8_lossy(&mount.stdout).trim());
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p.strip_prefix(&root).unwrap().to_path_buf());
            }
        }
    }
    let _ = podman()
        .args(["image", "unmount", &images.scratch])
        .output();
    assert_eq!(files, [PathBuf::from("agent-init")]);

    // It opens the bundle and execs a command: itself, listing what it got.
    let sealed = Sealed::new("scratch");
    let o = run(&sealed.flags(), &images.scratch, &["/agent-init", "--list"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for (name, _) in &sealed.secrets {
        assert!(
            stdout.lines().any(|l| l == format!("{name}\tinherited")),
            "{name} reached the command: {stdout}"
        );
    }
    assert!(!stdout.contains("LIVEKIT_BOOTSTRAP_TOKEN"), "{stdout}");
    assert!(
        text.contains("starting /agent-init (exec)"),
        "the outer agent-init execs: {text}"
    );
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_runs_the_agent_as_pid_1_and_uid_10001_with_exactly_the_bundles_environment() {
    let images = images();
    let sealed = Sealed::new("exec-env");
    let out = Out::new("exec-env");
    let keep = strings(&["-e", "LIVEKIT_AGENT_NAME=from-the-platform"]);
    let mut flags = out.flags();
    flags.extend(sealed.flags());
    flags.extend(keep.clone());
    flags.extend(strings(&["-e", "AGENT_INIT_LOG=debug"]));
    let o = run(&flags, &images.python, &["python", "agent.py", "--once"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");

    let started = out.started();
    assert_eq!(started["pid"], 1, "exec mode: the agent is PID 1");
    assert_eq!(
        started["pid1"],
        serde_json::json!(["python", "agent.py", "--once"])
    );
    assert_eq!(started["uid"], 10001);
    assert_eq!(started["gid"], 10001);
    assert_eq!(started["cwd"], "/app");

    let mut expected = baseline_env(&images.python, &keep, "python", "agent.py");
    expected.extend(sealed.vars());
    assert_env_eq(&out.environ(), &expected);
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_under_supervise_keeps_agent_init_as_pid_1_and_the_same_environment() {
    let images = images();
    let sealed = Sealed::new("supervise-env");
    let out = Out::new("supervise-env");
    let mut flags = out.flags();
    flags.extend(sealed.flags_with_token_file());
    flags.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
    let o = run(&flags, &images.python, &["python", "agent.py", "--once"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");

    let started = out.started();
    assert_ne!(started["pid"], 1, "supervise mode: the agent is not PID 1");
    assert_eq!(started["ppid"], 1, "its parent is PID 1");
    assert_eq!(
        started["pid1"],
        serde_json::json!([
            "/usr/local/bin/agent-init",
            "--",
            "python",
            "agent.py",
            "--once"
        ])
    );
    assert_eq!(started["uid"], 10001);

    let mut expected = baseline_env(&images.python, &[], "python", "agent.py");
    expected.extend(sealed.vars());
    assert_env_eq(&out.environ(), &expected);
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_in_local_mode_adds_a_mounted_env_local_under_the_containers_own_variables() {
    let images = images();
    let out = Out::new("env-local");
    let dir = support::scratch("env-local-file");
    let file = dir.join(".env.local");
    std::fs::write(
        &file,
        "# written by `lk app env -w`\n\
         LIVEKIT_URL=wss://local.example.livekit.cloud\n\
         LIVEKIT_API_KEY=APIlocal\n\
         LIVEKIT_API_SECRET=\"local secret\"\n\
         export OPENAI_API_KEY=sk-local-1\n\
         LOG_LEVEL=info\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // A variable the container sets beats the file (python-dotenv's
    // `load_dotenv` does not override either).
    let keep = strings(&["-e", "LOG_LEVEL=debug"]);
    let mut flags = out.flags();
    flags.extend([
        "-v".to_string(),
        format!("{}:/app/.env.local:ro", file.display()),
    ]);
    flags.extend(keep.clone());
    let o = run(&flags, &images.python, &["python", "agent.py", "--once"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");

    let mut expected = baseline_env(&images.python, &keep, "python", "agent.py");
    for v in [
        "LIVEKIT_URL=wss://local.example.livekit.cloud",
        "LIVEKIT_API_KEY=APIlocal",
        "LIVEKIT_API_SECRET=local secret",
        "OPENAI_API_KEY=sk-local-1",
    ] {
        expected.insert(v.as_bytes().to_vec());
    }
    assert_env_eq(&out.environ(), &expected);
    assert_eq!(out.started()["pid"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_passes_env_file_and_e_variables_through_unchanged() {
    let images = images();
    let out = Out::new("env-file");
    let dir = support::scratch("env-file");
    let env_file = dir.join("agent.env");
    std::fs::write(
        &env_file,
        "LIVEKIT_URL=wss://env-file.example.livekit.cloud\n\
         LIVEKIT_API_KEY=APIenvfile\n\
         LIVEKIT_API_SECRET=env-file-secret\n",
    )
    .unwrap();
    let given = vec![
        "--env-file".to_string(),
        env_file.display().to_string(),
        "-e".into(),
        "OPENAI_API_KEY=sk-from-e".into(),
    ];
    let mut flags = out.flags();
    flags.extend(given.clone());
    // agent-init's own knobs are consumed, never passed on.
    flags.extend(strings(&["-e", "AGENT_INIT_LOG=debug"]));
    let o = run(&flags, &images.python, &["python", "agent.py", "--once"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");

    let expected = baseline_env(&images.python, &given, "python", "agent.py");
    assert!(expected.contains(&b"OPENAI_API_KEY=sk-from-e"[..]));
    assert_env_eq(&out.environ(), &expected);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn images_leave_the_developers_env_files_out_of_the_build() {
    let images = images();
    for image in [&images.python, &images.node] {
        let mount = check(
            podman().args(["image", "mount", image]),
            "podman image mount",
        );
        let root = PathBuf::from(String::from_utf8_lossy(&mount.stdout).trim());
        let app = root.join("app");
        let has_agent = app.join("agent.py").exists() || app.join("dist/agent.js").exists();
        let leaked: Vec<_> = [".env", ".env.local", ".env.production"]
            .iter()
            .filter(|n| app.join(n).exists())
            .collect();
        let _ = podman().args(["image", "unmount", image]).output();
        assert!(has_agent, "{image}: the agent is in /app");
        assert!(leaked.is_empty(), "{image}: {leaked:?} reached the image");
    }
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn podman_stop_drains_the_agent_and_the_container_exits_with_the_agents_code() {
    let images = images();
    let sealed = Sealed::new("stop-exec");
    let out = Out::new("stop-exec");
    let mut flags = out.flags();
    flags.extend(sealed.flags());
    let c = Container::start("stop-exec", &flags, &images.python, &[]);
    out.wait_started(&c);
    assert_eq!(out.started()["pid"], 1);
    out.assert_stop_drains(&c);
}

impl Container {
    /// `podman healthcheck run`: the image's HEALTHCHECK, run inside the
    /// container as the runtime runs it; (exit code, what podman printed).
    fn healthcheck(&self) -> (i32, String) {
        let out = podman()
            .args(["healthcheck", "run", &self.name])
            .output()
            .expect("podman healthcheck run");
        (out.status.code().unwrap_or(-1), output_text(&out))
    }
}

/// A worker's health server stand-in, for each image's runtime: 200 on
/// `GET /` at 127.0.0.1:8081, as a LiveKit worker's (the probe agents have
/// none, and a real worker needs a LiveKit server the container can reach).
const PY_HEALTH_SERVER: &str = "import http.server as h\nclass H(h.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'OK')\nh.HTTPServer(('127.0.0.1', 8081), H).serve_forever()\n";
const NODE_HEALTH_SERVER: &str =
    "require('http').createServer((q, r) => r.end('OK')).listen(8081, '127.0.0.1')";

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn the_images_healthcheck_runs_agent_init_health_healthy_with_a_worker_on_8081_unhealthy_without() {
    let images = images();
    for (image, server) in [
        (&images.python, ["python", "-c", PY_HEALTH_SERVER]),
        (&images.node, ["node", "-e", NODE_HEALTH_SERVER]),
    ] {
        let out = check(
            podman().args([
                "image",
                "inspect",
                "--format",
                "{{json .Config.Healthcheck}}",
                image,
            ]),
            "podman image inspect",
        );
        let hc = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            hc.contains("/usr/local/bin/agent-init") && hc.contains("health"),
            "{image}: the HEALTHCHECK is agent-init health: {hc}"
        );
        // Something answers 200 on 8081: healthy, exit 0.
        let sealed = Sealed::new("health-ready");
        let c = Container::start_with_healthcheck("health-ready", &sealed.flags(), image, &server);
        let t0 = Instant::now();
        let healthy = loop {
            let (code, text) = c.healthcheck();
            if code == 0 {
                break text;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "{image}: never healthy ({code}: {text}); logs:\n{}",
                c.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(!healthy.contains("unhealthy"), "{image}: {healthy}");
        let out = check(
            podman().args(["inspect", "--format", "{{.State.Health.Status}}", &c.name]),
            "podman inspect",
        );
        let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(status, "healthy", "{image}: the runtime's record");
        // The probe agent runs but listens nowhere: unhealthy, exit 1.
        let run_out = Out::new("health-none");
        let mut flags = run_out.flags();
        flags.extend(sealed.flags());
        let c = Container::start_with_healthcheck("health-none", &flags, image, &[]);
        run_out.wait_started(&c);
        let (code, text) = c.healthcheck();
        assert_eq!(code, 1, "{image}: {text}");
        assert!(text.contains("unhealthy"), "{image}: {text}");
        assert_eq!(
            c.stop(60),
            PROBE_EXIT,
            "{image}: the agent ran on, unharmed"
        );
    }
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn podman_stop_under_supervise_drains_the_agent_behind_a_shell_that_does_not_forward_sigterm() {
    let images = images();
    let sealed = Sealed::new("stop-supervise");
    let out = Out::new("stop-supervise");
    let mut flags = out.flags();
    flags.extend(sealed.flags());
    flags.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
    // A wrapper in between that never passes SIGTERM on (it has a handler,
    // `:`, and runs it only once the agent is gone), and exits with the
    // agent's status. agent-init signals the whole process group, so the
    // agent hears SIGTERM all the same.
    let c = Container::start(
        "stop-supervise",
        &flags,
        &images.python,
        &["sh", "-c", "trap : TERM; python agent.py start"],
    );
    out.wait_started(&c);
    let started = out.started();
    assert_ne!(
        started["ppid"], 1,
        "the shell sits between agent-init and the agent"
    );
    assert_eq!(started["pid1"][0], "/usr/local/bin/agent-init");
    out.assert_stop_drains(&c);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn without_supervise_a_shell_that_does_not_forward_sigterm_leaves_the_agent_undrained() {
    // The counterpart of the test above, and the reason for --supervise: in
    // exec mode the shell is PID 1, keeps SIGTERM to itself, and the runtime
    // kills everything when the grace period ends.
    let images = images();
    let sealed = Sealed::new("stop-shell");
    let out = Out::new("stop-shell");
    let mut flags = out.flags();
    flags.extend(sealed.flags());
    let c = Container::start(
        "stop-shell",
        &flags,
        &images.python,
        &["sh", "-c", "trap : TERM; python agent.py start"],
    );
    out.wait_started(&c);
    let code = c.stop(2);
    assert!(!out.has("drain-started"), "the agent never heard SIGTERM");
    assert_eq!(code, 137, "SIGKILL at the end of the grace period");
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn a_bundle_sealed_for_another_token_exits_65_and_never_starts_the_agent() {
    let images = images();
    let sealed = Sealed::new("wrong-token");
    let other = Token::generate().unwrap();
    let out = Out::new("wrong-token");
    let mut flags = out.flags();
    flags.extend([
        "-v".to_string(),
        format!(
            "{}:/run/agent/bundle.json:ro",
            sealed.dir.join("bundle.json").display()
        ),
        "-e".into(),
        "LIVEKIT_SECRETS_URL=file:///run/agent/bundle.json".into(),
        "-e".into(),
        format!("LIVEKIT_BOOTSTRAP_TOKEN={}", other.encode().expose()),
    ]);
    let o = run(&flags, &images.python, &[]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(65), "agent-init's code: {text}");
    assert!(!out.has("started.json"), "the agent never started: {text}");
    assert!(
        text.lines().all(|l| l.starts_with("agent-init:")),
        "only agent-init spoke: {text}"
    );
    let mut never = sealed.never_printed();
    never.extend(bundle::token_strings(&other));
    assert_never_printed(&text, &never);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn a_malformed_token_exits_78_and_never_starts_the_agent() {
    let images = images();
    let sealed = Sealed::new("malformed-token");
    let out = Out::new("malformed-token");
    let mut flags = out.flags();
    flags.extend([
        "-v".to_string(),
        format!(
            "{}:/run/agent/bundle.json:ro",
            sealed.dir.join("bundle.json").display()
        ),
        "-e".into(),
        "LIVEKIT_SECRETS_URL=file:///run/agent/bundle.json".into(),
        "-e".into(),
        "LIVEKIT_BOOTSTRAP_TOKEN=lkbt1.not-a-token".into(),
    ]);
    let o = run(&flags, &images.python, &[]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(78), "{text}");
    assert!(!out.has("started.json"), "the agent never started: {text}");
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn node_image_runs_node_as_pid_1_with_the_bundles_environment_and_drains_on_podman_stop() {
    let images = images();
    let sealed = Sealed::new("node");
    let out = Out::new("node");
    let mut flags = out.flags();
    flags.extend(sealed.flags());
    let c = Container::start("node", &flags, &images.node, &[]);
    out.wait_started(&c);
    let started = out.started();
    assert_eq!(started["pid"], 1, "exec mode: node is PID 1");
    assert_eq!(
        started["pid1"],
        serde_json::json!(["node", "dist/agent.js", "start"])
    );
    assert_eq!(started["uid"], 10001);
    assert_eq!(started["cwd"], "/app");
    let mut expected = baseline_env(&images.node, &[], "node", "dist/agent.js");
    expected.extend(sealed.vars());
    assert_env_eq(&out.environ(), &expected);

    let logs = out.assert_stop_drains(&c);
    assert_never_printed(&logs, &sealed.never_printed());
}

/// The builder image for the compile test: the Debian base (which has gcc
/// and glibc's static libraries) set up to use a Rust toolchain and crate
/// cache mounted into `podman build`, offline: the host's, as rust:slim
/// images carry their own.
fn rust_builder(debian: &str) -> String {
    let version = debian.rsplit(':').next().unwrap();
    let tag = format!("localhost/agent-init-test-rust-builder:{version}");
    if image_exists(&tag) {
        return tag;
    }
    let dir = support::scratch("rust-builder");
    std::fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {debian}\n\
             ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\\n    \
                 CARGO_HOME=/usr/local/cargo CARGO_NET_OFFLINE=true\n"
        ),
    )
    .unwrap();
    check(
        podman().args(["build", "-q", "-t", &tag]).arg(&dir),
        "building the Rust builder image",
    );
    let _ = std::fs::remove_dir_all(dir);
    tag
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn dockerfile_builder_stage_compiles_agent_init_into_a_static_binary_that_runs_from_scratch() {
    let images = images();
    let builder = rust_builder(&images.debian);
    // The toolchain that builds these tests, and the crates it fetched.
    let sysroot = check(
        Command::new("rustc").args(["--print", "sysroot"]),
        "rustc --print sysroot",
    );
    let toolchain = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    assert!(
        toolchain.join("bin/cargo").exists(),
        "no cargo in the toolchain at {}",
        toolchain.display()
    );
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry");
    assert!(
        registry.is_dir(),
        "no crate cache at {}",
        registry.display()
    );

    let tag = "localhost/agent-init-test-compiled:latest";
    let ctx = support::scratch("compiled-context");
    build(
        "Dockerfile.example",
        &[
            ("AGENT_INIT_FROM", "source"),
            ("RUST_IMAGE", builder.as_str()),
            ("PYTHON_IMAGE", images.debian.as_str()),
        ],
        &[
            "--build-context",
            &format!("agent-init={}", repo().display()),
            "--target",
            "scratch",
            "-v",
            &format!("{}:/usr/local/rust:ro", toolchain.display()),
            "-v",
            &format!("{}:/usr/local/cargo/registry", registry.display()),
        ],
        &ctx,
        tag,
    );
    let _ = std::fs::remove_dir_all(ctx);
    let o = run(&[], tag, &["/agent-init", "--version"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("agent-init "),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// File secrets (PROTOCOL.md §6.1) in the images: read-only root, UID 10001.

/// Where the file secret lands by default for UID 10001.
const DEFAULT_FILES_DIR: &str = "/dev/shm/agent-init-10001";
/// The file secret's name and variable, as `lk agent create --secret-mount` makes one.
const CREDENTIALS_FILE: &str = "google-credentials.json";
const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// A sealed bundle like [`Sealed::new`]'s, holding also a file secret: a
/// service-account JSON for `GOOGLE_APPLICATION_CREDENTIALS`.
struct SealedWithFile {
    sealed: Sealed,
    content: Vec<u8>,
    private_key: String,
}

impl SealedWithFile {
    fn new(name: &str) -> SealedWithFile {
        let sealed = Sealed::new(name);
        let token = Token::parse(&sealed.token).unwrap();
        let id = token.id_b64();
        let private_key = format!(
            "-----BEGIN PRIVATE KEY-----\\npk-container-{id}\\n-----END PRIVATE KEY-----\\n"
        );
        let content = format!(
            "{{\"type\": \"service_account\", \"client_email\": \"ctest-{id}@example.iam.gserviceaccount.com\", \"private_key\": \"{private_key}\"}}\n"
        )
        .into_bytes();
        let mut plain: serde_json::Value =
            serde_json::from_str(&bundle::plaintext(&SECRETS, &bundle::LIVEKIT)).unwrap();
        plain["secrets"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": CREDENTIALS_FILE,
                "kind": "file",
                "value": agent_init::protocol::token::b64u(&content),
                "env": CREDENTIALS_VAR,
            }));
        // The same token, the bundle now with the file secret (still 0644).
        std::fs::write(
            sealed.dir.join("bundle.json"),
            bundle::seal(&token, &plain.to_string()),
        )
        .unwrap();
        SealedWithFile {
            sealed,
            content,
            private_key,
        }
    }

    fn sha256(&self) -> String {
        sha256_hex(&self.content)
    }

    fn never_printed(&self) -> Vec<String> {
        let mut v = self.sealed.never_printed();
        v.push(self.private_key.clone());
        v.push(agent_init::protocol::token::b64u(&self.content));
        v
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file [`HostTmpfs`] puts into its directory.
const HOST_MARK: &str = "mounted-from-the-host";

/// A directory on the host's /dev/shm (a tmpfs), writable by UID 10001,
/// mounted at the container's /dev/shm: the default place, still memory,
/// but visible from here after the container is gone.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn new(name: &str) -> HostTmpfs {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(format!(
            "/dev/shm/agent-init-ctest-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(dir.join(HOST_MARK), "").unwrap();
        HostTmpfs(dir)
    }
    /// The probe's child saw this mount at /dev/shm (a file put there from
    /// the host), so what is missing from it afterwards really went.
    fn assert_seen_by(&self, out: &Out) {
        let raw = std::fs::read(out.0.join("credentials.json")).unwrap();
        let seen: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert!(
            seen["beside_dir"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e == HOST_MARK)),
            "the container's /dev/shm is the host's directory: {seen}"
        );
    }
    fn flags(&self) -> Vec<String> {
        vec!["-v".into(), format!("{}:/dev/shm", self.0.display())]
    }
    /// The host's view of the container's default files directory.
    fn files_dir(&self) -> PathBuf {
        self.0.join("agent-init-10001")
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `podman run` flags every file-secret test adds: a read-only root and the
/// agent's user given explicitly, as a hardened deployment does. Exactly
/// Docker's `--read-only`: podman's also mounts a tmpfs on /tmp, /var/tmp
/// and /run unless told not to; Docker's (and Kubernetes'
/// `readOnlyRootFilesystem`) keeps only /dev/shm.
fn hardened() -> Vec<String> {
    strings(&[
        "--read-only",
        "--read-only-tmpfs=false",
        "--user",
        "10001:10001",
    ])
}

/// What the probe's child process recorded, checked against the bundle: it
/// read exactly the decoded content, at `path`, as UID 10001, from a file
/// only that user can read (0400, directory 0700); `agent_pid` is its parent.
fn assert_child_read_the_file(out: &Out, sealed: &SealedWithFile, path: &str) {
    let raw = std::fs::read(out.0.join("credentials.json"))
        .expect("the probe's child process read the credentials file");
    let seen: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let started = out.started();
    assert_eq!(seen["path"], path, "{seen}");
    assert_eq!(
        seen["sha256"],
        sealed.sha256().as_str(),
        "exactly the bytes sealed"
    );
    assert_eq!(seen["uid"], 10001, "{seen}");
    assert_eq!(
        seen["ppid"], started["pid"],
        "read in a child of the agent: {seen}"
    );
    assert_ne!(seen["pid"], started["pid"]);
    assert_eq!(
        (seen["mode"].as_u64(), seen["owner"].as_u64()),
        (Some(0o400), Some(10001)),
        "{seen}"
    );
    assert_eq!(
        (seen["dir_mode"].as_u64(), seen["dir_owner"].as_u64()),
        (Some(0o700), Some(10001)),
        "{seen}"
    );
    let var = format!("{CREDENTIALS_VAR}={path}").into_bytes();
    assert!(
        out.environ().contains(&var),
        "the agent got {CREDENTIALS_VAR} pointing at the file"
    );
}

/// Runs `cmd` in `image` hardened, with the bundle's file secret and `extra`
/// flags, to completion; returns the output.
fn run_with_file_secret(
    image: &str,
    sealed: &SealedWithFile,
    out: &Out,
    extra: &[String],
    cmd: &[&str],
) -> Output {
    let mut flags = hardened();
    flags.extend(out.flags());
    flags.extend(sealed.sealed.flags());
    flags.extend(extra.iter().cloned());
    run(&flags, image, cmd)
}

fn default_path() -> String {
    format!("{DEFAULT_FILES_DIR}/{CREDENTIALS_FILE}")
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_read_only_as_uid_10001_exec_a_child_of_the_agent_reads_the_file_secret_from_dev_shm(
) {
    let images = images();
    let sealed = SealedWithFile::new("files-py-exec");
    let out = Out::new("files-py-exec");
    // Nothing added: podman's own /dev/shm, as Docker's, under --read-only.
    let o = run_with_file_secret(
        &images.python,
        &sealed,
        &out,
        &[],
        &["python", "agent.py", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_eq!(out.started()["pid"], 1, "exec mode: the agent is PID 1");
    assert_child_read_the_file(&out, &sealed, &default_path());
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn python_image_read_only_as_uid_10001_supervise_the_file_secret_is_read_and_gone_after_the_command_exits(
) {
    let images = images();
    let sealed = SealedWithFile::new("files-py-supervise");
    let out = Out::new("files-py-supervise");
    let shm = HostTmpfs::new("py-supervise");
    let mut extra = shm.flags();
    extra.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
    let o = run_with_file_secret(
        &images.python,
        &sealed,
        &out,
        &extra,
        &["python", "agent.py", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_eq!(
        out.started()["ppid"],
        1,
        "supervise mode: agent-init is PID 1"
    );
    assert_child_read_the_file(&out, &sealed, &default_path());
    shm.assert_seen_by(&out);
    assert!(
        !shm.files_dir().exists(),
        "supervise mode removed the file secrets once the command exited"
    );
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn node_image_read_only_as_uid_10001_exec_a_child_of_the_agent_reads_the_file_secret_from_dev_shm()
{
    let images = images();
    let sealed = SealedWithFile::new("files-node-exec");
    let out = Out::new("files-node-exec");
    let shm = HostTmpfs::new("node-exec");
    // Here the container's /dev/shm is a tmpfs of the host's, so what exec
    // mode leaves behind can be looked at afterwards.
    let o = run_with_file_secret(
        &images.node,
        &sealed,
        &out,
        &shm.flags(),
        &["node", "dist/agent.js", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_eq!(out.started()["pid"], 1, "exec mode: node is PID 1");
    assert_child_read_the_file(&out, &sealed, &default_path());
    // As the README says: in exec mode nothing is left to remove the file.
    let left = std::fs::read(shm.files_dir().join(CREDENTIALS_FILE))
        .expect("exec mode leaves the file secret in place");
    assert_eq!(sha256_hex(&left), sealed.sha256());
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn node_image_read_only_as_uid_10001_supervise_the_file_secret_is_read_and_gone_after_the_command_exits(
) {
    let images = images();
    let sealed = SealedWithFile::new("files-node-supervise");
    let out = Out::new("files-node-supervise");
    let shm = HostTmpfs::new("node-supervise");
    let mut extra = shm.flags();
    extra.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
    let o = run_with_file_secret(
        &images.node,
        &sealed,
        &out,
        &extra,
        &["node", "dist/agent.js", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_eq!(
        out.started()["ppid"],
        1,
        "supervise mode: agent-init is PID 1"
    );
    assert_child_read_the_file(&out, &sealed, &default_path());
    shm.assert_seen_by(&out);
    assert!(
        !shm.files_dir().exists(),
        "supervise mode removed the file secrets once the command exited"
    );
    assert_never_printed(&text, &sealed.never_printed());
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn scratch_image_read_only_as_uid_10001_writes_the_file_secret_exactly_and_supervise_removes_it() {
    let images = images();
    let sealed = SealedWithFile::new("files-scratch");
    // The image holds agent-init alone; the command is agent-init again, in
    // local mode, made to read the file (--secret-mount: missing or
    // unreadable is 78) and list what it got.
    let path = default_path();
    let mount = format!("CHECK_CREDENTIALS={path}");
    let cmd = ["/agent-init", "--secret-mount", mount.as_str(), "--list"];
    for supervise in [false, true] {
        let shm = HostTmpfs::new(if supervise {
            "scratch-supervise"
        } else {
            "scratch-exec"
        });
        let mut flags = hardened();
        flags.extend(sealed.sealed.flags());
        flags.extend(shm.flags());
        if supervise {
            flags.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
        }
        let o = run(&flags, &images.scratch, &cmd);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(0), "supervise {supervise}: {text}");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l == format!("{CREDENTIALS_VAR}\tinherited")),
            "the command got {CREDENTIALS_VAR}: {stdout}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l == "CHECK_CREDENTIALS\tpath of file secret google-credentials.json"),
            "the command read the file as UID 10001: {stdout}"
        );
        assert_never_printed(&text, &sealed.never_printed());
        let file = shm.files_dir().join(CREDENTIALS_FILE);
        if supervise {
            assert!(!shm.files_dir().exists(), "supervise mode removed them");
        } else {
            use std::os::unix::fs::MetadataExt;
            let left = std::fs::read(&file).expect("exec mode leaves the file in place");
            assert_eq!(
                sha256_hex(&left),
                sealed.sha256(),
                "exactly the bytes sealed"
            );
            let meta = std::fs::metadata(&file).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o400, 10001));
            let dir = std::fs::metadata(shm.files_dir()).unwrap();
            assert_eq!((dir.mode() & 0o7777, dir.uid()), (0o700, 10001));
        }
    }
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn without_a_memory_file_system_at_dev_shm_agent_init_refuses_78_naming_the_directory_and_writes_nothing(
) {
    let images = images();
    let sealed = SealedWithFile::new("files-no-tmpfs");
    let out = Out::new("files-no-tmpfs");
    // A runtime whose /dev/shm is not memory: a disk directory there.
    let disk = Out::new("files-disk-shm");
    assert_ne!(
        nix::sys::statfs::statfs(&disk.0).unwrap().filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC,
        "{} must be on disk for this test",
        disk.0.display()
    );
    let disk_shm = vec!["-v".to_string(), format!("{}:/dev/shm", disk.0.display())];
    let o = run_with_file_secret(
        &images.python,
        &sealed,
        &out,
        &disk_shm,
        &["python", "agent.py", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "secrets directory {DEFAULT_FILES_DIR} is not on a memory file system"
        )),
        "the refusal names the directory: {text}"
    );
    assert!(!out.has("started.json"), "the agent never started: {text}");
    assert_eq!(
        std::fs::read_dir(&disk.0).unwrap().count(),
        0,
        "nothing was written to disk"
    );
    assert_never_printed(&text, &sealed.never_printed());

    // What the README tells such a runtime's user: a tmpfs, and
    // AGENT_INIT_SECRETS_DIR pointing into it.
    let out = Out::new("files-tmpfs-dir");
    let mut extra = disk_shm.clone();
    extra.extend(strings(&[
        "--tmpfs",
        "/run/agent-secrets:mode=1777",
        "-e",
        "AGENT_INIT_SECRETS_DIR=/run/agent-secrets/files",
    ]));
    let o = run_with_file_secret(
        &images.python,
        &sealed,
        &out,
        &extra,
        &["python", "agent.py", "--once"],
    );
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert_child_read_the_file(
        &out,
        &sealed,
        &format!("/run/agent-secrets/files/{CREDENTIALS_FILE}"),
    );
    assert_eq!(std::fs::read_dir(&disk.0).unwrap().count(), 0);
    assert_never_printed(&text, &sealed.never_printed());
}

// The real LiveKit workers of `examples/` in the images: the Python image
// with the example agent and its installed packages mounted in (the host's
// venv, the same Python 3.11 ABI), the Node image with the example agent,
// its node_modules and the host's Node 20 (@livekit/agents needs it; the
// Debian base has 18). No LiveKit server is reachable (--network=none): the
// workers keep trying to connect, and meanwhile start their idle job
// processes, whose prewarm reads the credentials file (examples/*/agent.*).

/// The host's installed example agents (scripts/test.sh installs them).
fn example_agent(dir: &str, needs: &str, how: &str) -> PathBuf {
    let dir = repo().join("examples").join(dir);
    assert!(
        dir.join(needs).exists(),
        "{} is missing: run `bash scripts/test.sh` (it runs `{how}`)",
        dir.join(needs).display()
    );
    dir
}

/// `podman run` flags and command that run the real worker of `image_kind`.
fn real_worker(kind: &str) -> (Vec<String>, Vec<&'static str>) {
    match kind {
        "python" => {
            let dir = example_agent(
                "python-agent",
                ".venv/lib/python3.11/site-packages/livekit/agents",
                "pip install -r requirements.txt in examples/python-agent/.venv",
            );
            let flags = vec![
                "-v".into(),
                format!(
                    "{}:/app/.venv/lib/python3.11/site-packages:ro",
                    dir.join(".venv/lib/python3.11/site-packages").display()
                ),
                "-v".into(),
                format!("{}:/app/agent.py:ro", dir.join("agent.py").display()),
                // Python's multiprocessing (the worker's job processes)
                // needs a temporary directory: under a read-only root the
                // README tells the user to add this.
                "--tmpfs".into(),
                "/tmp".into(),
            ];
            let cmd = vec!["python", "agent.py", "start", "--drain-timeout", "30"];
            (flags, cmd)
        }
        "node" => {
            let dir = example_agent(
                "node-agent",
                "dist/agent.js",
                "pnpm install and pnpm build in examples/node-agent",
            );
            assert!(dir.join("node_modules/@livekit/agents").exists());
            let node = check(
                Command::new("sh").args(["-c", "readlink -f \"$(command -v node)\""]),
                "finding the host's node",
            );
            let node = String::from_utf8_lossy(&node.stdout).trim().to_string();
            let flags = vec![
                "-v".into(),
                format!("{node}:/usr/local/bin/node:ro"),
                "-v".into(),
                format!("{}:/app:ro", dir.display()),
                "-e".into(),
                "AGENT_DRAIN_TIMEOUT=30".into(),
                "-e".into(),
                "AGENT_IDLE_PROCESSES=1".into(),
                "-e".into(),
                "LOG_LEVEL=debug".into(),
            ];
            (flags, vec!["node", "dist/agent.js", "start"])
        }
        other => panic!("no such worker: {other}"),
    }
}

/// The worker's main process inside the container: PID 1 in exec mode, the
/// child of agent-init in supervise mode.
fn worker_pid(supervise: bool) -> u64 {
    if supervise {
        // agent-init is PID 1 and starts the worker first: the next PID.
        2
    } else {
        1
    }
}

/// Waits for a job process's prewarm line in `container`'s logs and checks
/// it: the service account's email, exactly the sealed SHA-256, and a
/// process that is not the worker's main one.
fn assert_a_job_process_read_the_file(container: &Container, sealed: &SealedWithFile, worker: u64) {
    let id = Token::parse(&sealed.sealed.token).unwrap().id_b64();
    let email = format!("ctest-{id}@example.iam.gserviceaccount.com");
    let t0 = Instant::now();
    let line = loop {
        let logs = container.logs();
        if let Some(l) = logs
            .lines()
            .find(|l| l.contains("prewarm in process") && l.contains(&email))
        {
            break l.to_string();
        }
        assert!(
            t0.elapsed() < PATIENCE * 2,
            "no job process read the credentials; logs:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        line.contains(&format!("sha256 {}", sealed.sha256())),
        "the job process read exactly the sealed bytes: {line}"
    );
    let at = line.find("prewarm in process").unwrap();
    let nums: Vec<u64> = line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert_ne!(
        nums[0], worker,
        "read in a job process, not the worker: {line}"
    );
    assert!(
        nums[1] >= worker,
        "a job process the worker started: {line}"
    );
}

fn real_worker_reads_the_file_secret(kind: &str, supervise: bool) {
    // One real worker at a time: @livekit/agents gives a job process 10 s
    // to start, which two workers starting together on a busy 2-core
    // machine can miss.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let images = images();
    let image = if kind == "python" {
        &images.python
    } else {
        &images.node
    };
    let mode = if supervise { "supervise" } else { "exec" };
    let sealed = SealedWithFile::new(&format!("real-{kind}-{mode}"));
    let shm = HostTmpfs::new(&format!("real-{kind}-{mode}"));
    let (worker_flags, cmd) = real_worker(kind);
    let mut flags = hardened();
    flags.extend(sealed.sealed.flags());
    flags.extend(shm.flags());
    flags.extend(worker_flags);
    if supervise {
        flags.extend(strings(&["-e", "AGENT_INIT_SUPERVISE=1"]));
    }
    let c = Container::start(&format!("real-{kind}-{mode}"), &flags, image, &cmd);
    assert_a_job_process_read_the_file(&c, &sealed, worker_pid(supervise));
    let file = shm.files_dir().join(CREDENTIALS_FILE);
    assert!(file.exists(), "the file is there while the worker runs");
    c.stop(60);
    let logs = c.logs();
    // The workers log the URL they fail to reach; every other value never.
    let url = bundle::LIVEKIT[0].1.to_string();
    let never: Vec<String> = sealed
        .never_printed()
        .into_iter()
        .filter(|s| *s != url)
        .collect();
    assert_never_printed(&logs, &never);
    if supervise {
        assert!(
            !shm.files_dir().exists(),
            "supervise mode removed the file once the worker exited: {logs}"
        );
    } else {
        let left = std::fs::read(&file).expect("exec mode leaves the file in place");
        assert_eq!(sha256_hex(&left), sealed.sha256());
    }
}

#[test]
#[ignore = "needs root, podman and the example agents (scripts/test.sh installs them)"]
fn real_python_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_exec(
) {
    real_worker_reads_the_file_secret("python", false);
}

#[test]
#[ignore = "needs root, podman and the example agents (scripts/test.sh installs them)"]
fn real_python_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_supervise(
) {
    real_worker_reads_the_file_secret("python", true);
}

#[test]
#[ignore = "needs root, podman and the example agents (scripts/test.sh installs them)"]
fn real_node_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_exec(
) {
    real_worker_reads_the_file_secret("node", false);
}

#[test]
#[ignore = "needs root, podman and the example agents (scripts/test.sh installs them)"]
fn real_node_worker_in_the_image_read_only_as_uid_10001_reads_the_credentials_file_in_a_job_process_supervise(
) {
    real_worker_reads_the_file_secret("node", true);
}
