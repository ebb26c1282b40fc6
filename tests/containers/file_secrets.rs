//! File secrets (PROTOCOL.md §6.1) in the images, hardened: read-only root,
//! UID 10001. A child of the agent reads the file from /dev/shm; exec mode
//! leaves it there, supervise mode removes it once the command exits; a
//! /dev/shm that is not memory is refused.

use super::*;
use support::bundle::{CREDENTIALS_FILE, CREDENTIALS_VAR};

/// Where the file secret lands by default for UID 10001.
const DEFAULT_FILES_DIR: &str = "/dev/shm/agent-init-10001";
/// A file [`host_shm`] puts into its directory.
const HOST_MARK: &str = "mounted-from-the-host";

/// [`sealed`] whose bundle also holds a file secret, the service-account
/// JSON [`bundle::credentials`] for `GOOGLE_APPLICATION_CREDENTIALS`; its
/// private key and its encoded content are forbidden too.
pub(super) fn sealed_with_file(name: &str) -> Harness {
    let mut h = sealed(name);
    let id = h.token().id_b64();
    let content = bundle::credentials(&id);
    h.write_bundle(&bundle::with_credentials_file(&plaintext(), &content));
    h.forbid(&[
        &bundle::credentials_key(&id),
        &agent_init::protocol::token::b64u(&content),
    ]);
    h
}

/// The SHA-256 of the file secret of `h`'s bundle.
pub(super) fn sealed_sha256(h: &Harness) -> String {
    bundle::sha256_hex(&bundle::credentials(&h.token().id_b64()))
}

/// A directory on the host's /dev/shm (a tmpfs) for `h`'s container to
/// mount at its /dev/shm: the default place, still memory, but visible from
/// here after the container is gone. Writable by UID 10001, holding
/// [`HOST_MARK`], removed with the harness. Returns the `podman run` flags.
pub(super) fn host_shm(h: &mut Harness) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = host_shm_dir(h);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(dir.join(HOST_MARK), "").unwrap();
    h.remove_too(&dir);
    vec!["-v".into(), format!("{}:/dev/shm", dir.display())]
}

fn host_shm_dir(h: &Harness) -> PathBuf {
    Path::new("/dev/shm").join(h.dir.file_name().unwrap())
}

/// The host's view of the container's default files directory.
pub(super) fn host_files_dir(h: &Harness) -> PathBuf {
    host_shm_dir(h).join("agent-init-10001")
}

/// The probe's child saw [`host_shm`]'s mount at /dev/shm (the file put
/// there from the host), so what is missing from it afterwards really went.
fn assert_host_shm_seen(h: &Harness) {
    let raw = std::fs::read(h.side().join("credentials.json")).unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert!(
        seen["beside_dir"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e == HOST_MARK)),
        "the container's /dev/shm is the host's directory: {seen}"
    );
}

/// What the command left in [`host_shm`] once it exited: in exec mode
/// nothing is left to remove the file, so it is there, exactly the bytes
/// sealed, 0400 in a 0700 directory, both UID 10001's; supervise mode
/// removed the directory.
pub(super) fn assert_left_as_the_mode_says(h: &Harness, mode: Mode) {
    use std::os::unix::fs::MetadataExt;
    let dir = host_files_dir(h);
    match mode {
        Mode::Exec => {
            let file = dir.join(CREDENTIALS_FILE);
            let left = std::fs::read(&file).expect("exec mode leaves the file secret in place");
            assert_eq!(
                bundle::sha256_hex(&left),
                sealed_sha256(h),
                "exactly the bytes sealed"
            );
            let meta = std::fs::metadata(&file).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o400, 10001));
            let meta = std::fs::metadata(&dir).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o700, 10001));
        }
        Mode::Supervise => assert!(
            !dir.exists(),
            "supervise mode removed the file secrets once the command exited"
        ),
    }
}

/// `podman run` flags every file-secret test adds: a read-only root and the
/// agent's user given explicitly, as a hardened deployment does. Exactly
/// Docker's `--read-only`: podman's also mounts a tmpfs on /tmp, /var/tmp
/// and /run unless told not to; Docker's (and Kubernetes'
/// `readOnlyRootFilesystem`) keeps only /dev/shm.
pub(super) fn hardened() -> Vec<String> {
    strings(&[
        "--read-only",
        "--read-only-tmpfs=false",
        "--user",
        "10001:10001",
    ])
}

/// What the probe's child process recorded, checked against the bundle: it
/// read exactly the decoded content, at `path`, as UID 10001, from a file
/// only that user can read (0400, directory 0700); the agent is its parent.
fn assert_child_read_the_file(h: &Harness, path: &str) {
    let raw = std::fs::read(h.side().join("credentials.json"))
        .expect("the probe's child process read the credentials file");
    let seen: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let started = started(h);
    assert_eq!(seen["path"], path, "{seen}");
    assert_eq!(
        seen["sha256"],
        sealed_sha256(h).as_str(),
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
        environ(h).contains(&var),
        "the agent got {CREDENTIALS_VAR} pointing at the file"
    );
}

/// Runs the probe of `lang` hardened, with `h`'s bundle and `extra` flags,
/// to completion; returns the output.
fn run_with_file_secret(lang: Lang, h: &Harness, extra: &[String]) -> Output {
    let mut flags = hardened();
    flags.extend(self::flags(h));
    flags.extend(extra.iter().cloned());
    run(&flags, lang.image(images()), &lang.once())
}

fn default_path() -> String {
    format!("{DEFAULT_FILES_DIR}/{CREDENTIALS_FILE}")
}

/// Where the container's /dev/shm comes from.
#[derive(PartialEq)]
enum Shm {
    /// podman's own, as Docker's, under --read-only.
    Podmans,
    /// [`host_shm`]'s, to look at afterwards.
    Hosts,
}

/// The probe of `lang` in `mode`, hardened: a child of the agent reads the
/// file secret from the default place, and (where the host sees `shm`)
/// the file is left or removed as `mode` says.
fn a_child_of_the_agent_reads_the_file_secret(lang: Lang, mode: Mode, shm: Shm) {
    let mut h = sealed_with_file(&format!("files-{}-{}", lang.name(), mode.name()));
    mode.set(&mut h);
    let extra = match shm {
        Shm::Podmans => Vec::new(),
        Shm::Hosts => host_shm(&mut h),
    };
    let o = run_with_file_secret(lang, &h, &extra);
    exited(&h, &o, 0);
    let started = started(&h);
    match mode {
        Mode::Exec => assert_eq!(started["pid"], 1, "exec mode: the agent is PID 1"),
        Mode::Supervise => assert_eq!(started["ppid"], 1, "supervise mode: agent-init is PID 1"),
    }
    assert_child_read_the_file(&h, &default_path());
    if shm == Shm::Hosts {
        assert_host_shm_seen(&h);
        assert_left_as_the_mode_says(&h, mode);
    }
}

crate::ignored_tests! { "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"; a_child_of_the_agent_reads_the_file_secret:
    python_image_read_only_as_uid_10001_exec_a_child_of_the_agent_reads_the_file_secret_from_dev_shm(Lang::Python, Mode::Exec, Shm::Podmans);
    python_image_read_only_as_uid_10001_supervise_the_file_secret_is_read_and_gone_after_the_command_exits(Lang::Python, Mode::Supervise, Shm::Hosts);
    node_image_read_only_as_uid_10001_exec_a_child_of_the_agent_reads_the_file_secret_from_dev_shm(Lang::Node, Mode::Exec, Shm::Hosts);
    node_image_read_only_as_uid_10001_supervise_the_file_secret_is_read_and_gone_after_the_command_exits(Lang::Node, Mode::Supervise, Shm::Hosts);
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn scratch_image_read_only_as_uid_10001_writes_the_file_secret_exactly_and_supervise_removes_it() {
    let images = images();
    // The image holds agent-init alone; the command is agent-init again, in
    // local mode, made to read the file (--secret-mount: missing or
    // unreadable is 78) and list what it got.
    let mount = format!("CHECK_CREDENTIALS={}", default_path());
    let cmd = ["/agent-init", "--secret-mount", mount.as_str(), "--list"];
    for mode in [Mode::Exec, Mode::Supervise] {
        let mut h = sealed_with_file(&format!("files-scratch-{}", mode.name()));
        mode.set(&mut h);
        let mut flags = hardened();
        flags.extend(host_shm(&mut h));
        flags.extend(self::flags(&h));
        let o = run(&flags, &images.scratch, &cmd);
        exited(&h, &o, 0);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout
                .lines()
                .any(|l| l == format!("{CREDENTIALS_VAR}\tinherited")),
            "{mode:?}: the command got {CREDENTIALS_VAR}: {stdout}"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l == "CHECK_CREDENTIALS\tpath of file secret google-credentials.json"),
            "{mode:?}: the command read the file as UID 10001: {stdout}"
        );
        assert_left_as_the_mode_says(&h, mode);
    }
}

#[test]
#[ignore = "needs root and podman (scripts/test.sh installs podman, runc, debootstrap)"]
fn without_a_memory_file_system_at_dev_shm_agent_init_refuses_78_naming_the_directory_and_writes_nothing(
) {
    // A runtime whose /dev/shm is not memory: a disk directory there (a
    // probe harness's side directory, writable by UID 10001).
    let disk = probe("files-disk-shm");
    assert_ne!(
        nix::sys::statfs::statfs(disk.side())
            .unwrap()
            .filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC,
        "{} must be on disk for this test",
        disk.side().display()
    );
    let disk_shm = vec![
        "-v".to_string(),
        format!("{}:/dev/shm", disk.side().display()),
    ];
    let nothing_on_disk = || {
        assert_eq!(
            std::fs::read_dir(disk.side()).unwrap().count(),
            0,
            "nothing was written to disk"
        )
    };
    let h = sealed_with_file("files-no-tmpfs");
    let o = run_with_file_secret(Lang::Python, &h, &disk_shm);
    h.assert_failed(&o, 78);
    let text = output_text(&o);
    assert!(
        text.contains(&format!(
            "secrets directory {DEFAULT_FILES_DIR} is not on a memory file system"
        )),
        "the refusal names the directory: {text}"
    );
    nothing_on_disk();

    // What the README tells such a runtime's user: a tmpfs, and
    // AGENT_INIT_SECRETS_DIR pointing into it.
    let mut h = sealed_with_file("files-tmpfs-dir");
    h.set("AGENT_INIT_SECRETS_DIR", "/run/agent-secrets/files");
    let mut extra = disk_shm.clone();
    extra.extend(strings(&["--tmpfs", "/run/agent-secrets:mode=1777"]));
    let o = run_with_file_secret(Lang::Python, &h, &extra);
    exited(&h, &o, 0);
    assert_child_read_the_file(&h, &format!("/run/agent-secrets/files/{CREDENTIALS_FILE}"));
    nothing_on_disk();
}
