//! The images under test: a Debian base made with debootstrap (no registry
//! is reachable), the example Dockerfiles built on it with the binary under
//! test, and what ends up in them.

use super::*;
use std::sync::OnceLock;

/// The Debian mirror debootstrap reads.
const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages of the test base image: what python:3.13-slim and node:22-slim
/// give an agent (python3 with venv, node), plus a C toolchain for the
/// builder stage that compiles agent-init.
const DEBIAN_PACKAGES: &str = "python3-venv,nodejs,gcc,libc6-dev";

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

/// The images under test, built once per run of this test binary.
pub(super) struct Images {
    pub(super) debian: String,
    pub(super) python: String,
    pub(super) node: String,
    pub(super) scratch: String,
}

pub(super) fn images() -> &'static Images {
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
    // An image of `dockerfile` (at `target`, if given) with the binary under test.
    let prebuilt = |dockerfile: &str, target: &[&str], ctx: &Path, tag: &str| {
        let mut extra = vec!["--build-context", agent_init_ctx.as_str()];
        extra.extend(target);
        build(dockerfile, &common, &extra, ctx, tag);
        tag.to_string()
    };
    let py_ctx = context("probe-python", "python-agent");
    let node_ctx = context("probe-node", "node-agent");
    let python = prebuilt(
        "Dockerfile.example",
        &[],
        &py_ctx,
        "localhost/agent-init-test-python:latest",
    );
    let scratch = prebuilt(
        "Dockerfile.example",
        &["--target", "scratch"],
        &py_ctx,
        "localhost/agent-init-test-scratch:latest",
    );
    let node = prebuilt(
        "Dockerfile.node.example",
        &[],
        &node_ctx,
        "localhost/agent-init-test-node:latest",
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
    let h = sealed("scratch");
    let o = run(&flags(&h), &images.scratch, &["/agent-init", "--list"]);
    let text = exited(&h, &o, 0);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for (name, _) in SECRETS.iter().chain(LIVEKIT.iter()) {
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
