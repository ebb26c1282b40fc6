//! File secrets (PROTOCOL.md §6.1) through the real binary: the files the
//! command and its own child processes read, where they live, who may read
//! them, and when they go.

mod support;

use agent_init::protocol::token::{b64u, Token};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{scratch, Run};

/// The files vector (PROTOCOL.md §9).
fn files_vector() -> Value {
    serde_json::from_str(include_str!("../testdata/lkbt1-files.json")).unwrap()
}

/// A fresh directory name under /dev/shm (a tmpfs), not yet made.
fn shm_dir(tag: &str) -> PathBuf {
    let id = Token::generate().unwrap().id_b64().replace(['-', '_'], "x");
    PathBuf::from(format!("/dev/shm/agent-init-test-{tag}-{id}"))
}

/// A command that writes, as JSON to `report`: its environment, and for
/// each file of `dir` its SHA-256, size and mode, as read by a child
/// process of the command (LiveKit workers read credentials in their job
/// processes); and the directory's mode.
fn report_command(dir: &Path, report: &Path) -> Vec<String> {
    let script = r#"
import hashlib, json, os, subprocess, sys
d, out = sys.argv[1], sys.argv[2]
child = "import hashlib,json,os,sys; d=sys.argv[1]; print(json.dumps({n: [hashlib.sha256(open(os.path.join(d,n),'rb').read()).hexdigest(), os.stat(os.path.join(d,n)).st_size, oct(os.stat(os.path.join(d,n)).st_mode & 0o7777), os.stat(os.path.join(d,n)).st_uid] for n in sorted(os.listdir(d))}))"
files = json.loads(subprocess.run([sys.executable, "-c", child, d], check=True, capture_output=True).stdout)
json.dump({"env": dict(os.environ), "files": files, "dir_mode": oct(os.stat(d).st_mode & 0o7777)}, open(out, "w"))
"#;
    vec![
        "python3".into(),
        "-c".into(),
        script.into(),
        dir.display().to_string(),
        report.display().to_string(),
    ]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the files vector's bundle to `dir/bundle.json`; the environment
/// that points agent-init at it with the vector's token.
fn vector_env(dir: &Path) -> [(&'static str, String); 2] {
    let v = files_vector();
    let bundle = dir.join("bundle.json");
    std::fs::write(&bundle, v["bundle"].to_string()).unwrap();
    [
        (
            "LIVEKIT_BOOTSTRAP_TOKEN",
            v["token"].as_str().unwrap().into(),
        ),
        (
            "LIVEKIT_SECRETS_URL",
            format!("file://{}", bundle.display()),
        ),
    ]
}

/// agent-init on the files vector's bundle, with file secrets in `files_dir`.
fn on_vector(dir: &Path, files_dir: &Path) -> Run {
    let mut run = Run::new(dir).env("AGENT_INIT_SECRETS_DIR", files_dir);
    run.cmd.envs(vector_env(dir));
    run
}

/// Checks a report against the vector: both files with their SHA-256 and
/// size, mode 0400 in a 0700 directory, the env variable at the first, and
/// the environment the vector gives.
fn assert_report_matches_vector(report: &Path, files_dir: &Path) {
    let v = files_vector();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let euid = nix::unistd::geteuid().as_raw();
    let want: serde_json::Map<String, Value> = v["files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, f)| (n.clone(), json!([f["sha256"], f["size"], "0o400", euid])))
        .collect();
    assert_eq!(r["files"], Value::Object(want));
    assert_eq!(r["dir_mode"], "0o700");
    for (name, f) in v["files"].as_object().unwrap() {
        if let Some(var) = f["env"].as_str() {
            assert_eq!(
                r["env"][var],
                files_dir.join(name).display().to_string(),
                "{var} is the file's absolute path"
            );
        }
    }
    for (k, val) in v["env"].as_object().unwrap() {
        assert_eq!(r["env"][k], *val, "{k}");
    }
}

#[test]
fn the_files_vector_gives_the_command_and_its_children_both_files_the_variable_and_the_environment()
{
    for supervise in [false, true] {
        let dir = scratch("files-vector");
        let files_dir = shm_dir("vector");
        let report = dir.join("report.json");
        let mut args: Vec<String> = Vec::new();
        if supervise {
            args.push("--supervise".into());
        }
        args.extend(report_command(&files_dir, &report));
        let out = on_vector(&dir, &files_dir).args(&args).output();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_report_matches_vector(&report, &files_dir);
        support::assert_no_leak(&out, &["sk-test-1234", "eyJ0eXBl", "PRIVATE KEY"]);
        if supervise {
            assert!(
                !files_dir.exists(),
                "supervise mode removes the files once the command has exited"
            );
        } else {
            // Exec mode: agent-init became the command; nothing is left to
            // remove them (README, "File secrets").
            assert!(files_dir.join("raw.bin").exists());
            std::fs::remove_dir_all(&files_dir).unwrap();
        }
    }
}

#[test]
fn supervise_removes_the_files_when_the_command_fails_and_when_it_cannot_start() {
    let dir = scratch("files-cleanup");
    let not_executable = dir.join("agent.sh");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    let cases: [(&[&str], i32); 3] = [
        (&["--supervise", "sh", "-c", "exit 3"], 3),
        // Spawned, but the exec in the child fails: 126.
        (&["--supervise", not_executable.to_str().unwrap()], 126),
        // Exec mode whose exec fails: agent-init is still there to clean up.
        (&[not_executable.to_str().unwrap()], 126),
    ];
    for (args, code) in cases {
        let files_dir = shm_dir("cleanup");
        let out = on_vector(&dir, &files_dir).args(args).output();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(!files_dir.exists(), "{args:?}: the files are gone");
    }
    // Failures before anything is written write nothing.
    let files_dir = shm_dir("cleanup");
    let out = on_vector(&dir, &files_dir)
        .args(["--supervise", "agent-init-no-such-command"])
        .output();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(!files_dir.exists());
}

#[test]
fn list_and_check_show_each_file_name_and_path_never_its_content_and_write_nothing() {
    let dir = scratch("files-list");
    let files_dir = shm_dir("list");
    let out = on_vector(&dir, &files_dir).args(["--list"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let g = files_dir.join("google-credentials.json");
    assert!(
        lines.contains(
            &format!(
                "google-credentials.json\tfile {}\t2026-11-02T10:00:00Z",
                g.display()
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(
        lines.contains(
            &format!(
                "raw.bin\tfile {}\t2026-11-03T10:00:00Z",
                files_dir.join("raw.bin").display()
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(
        lines.contains(
            &"GOOGLE_APPLICATION_CREDENTIALS\tpath of file secret google-credentials.json"
        ),
        "{text}"
    );
    let out2 = on_vector(&dir, &files_dir)
        .args(["--check", "--", "true"])
        .output();
    assert_eq!(out2.status.code(), Some(0), "{}", stderr(&out2));
    let summary = stderr(&out2);
    assert!(
        summary.contains(&format!(
            "2 file secret(s) for {}: google-credentials.json, raw.bin",
            files_dir.display()
        )),
        "{summary}"
    );
    for o in [&out, &out2] {
        support::assert_no_leak(
            o,
            &["eyJ0eXBl", "service_account", "PRIVATE KEY", "AAECAwQF"],
        );
    }
    assert!(!files_dir.exists(), "--list and --check write no file");
}

#[test]
#[ignore = "needs root: a private mount namespace"]
fn the_default_directory_is_refused_78_when_dev_shm_is_not_a_memory_file_system() {
    // A private mount namespace where /dev/shm is a directory on disk.
    let dir = scratch("files-disk");
    let disk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("agent-init-test-disk-shm-{}", std::process::id()));
    std::fs::create_dir_all(&disk).unwrap();
    let env = vector_env(&dir);
    let marker = dir.join("started");
    let script = format!(
        "mount --bind {} /dev/shm && exec {} -- touch {}",
        disk.display(),
        support::bin().display(),
        marker.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .output()
        .expect("unshare runs (root)");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    let uid = nix::unistd::geteuid().as_raw();
    assert!(
        err.contains(&format!("/dev/shm/agent-init-{uid}"))
            && err.contains("not on a memory file system"),
        "{err}"
    );
    assert!(!marker.exists(), "the command did not start");
    assert_eq!(
        std::fs::read_dir(&disk).unwrap().count(),
        0,
        "nothing was written to the disk directory"
    );
    std::fs::remove_dir_all(&disk).unwrap();
}

#[test]
#[ignore = "needs root: runs agent-init as uid 10001"]
fn as_uid_10001_the_files_are_its_own_and_another_user_cannot_read_or_list_them() {
    let dir = scratch("files-uid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let v = files_vector();
    let env = vector_env(&dir);
    let bundle = dir.join("bundle.json");
    std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = dir.join("agent-init");
    std::fs::copy(support::bin(), &bin).unwrap();
    // The default directory, as UID 10001 gets it.
    let files_dir = PathBuf::from("/dev/shm/agent-init-10001");
    let _ = std::fs::remove_dir_all(&files_dir);
    let g = files_dir.join("google-credentials.json");
    // The agent (uid 10001) reads its file; then, while it waits, uid 10002 tries.
    let agent_script = format!(
        "sha256sum {g} > {out}/agent-read && touch {out}/ready && while [ ! -e {out}/done ]; do sleep 0.05; done",
        g = g.display(),
        out = dir.display()
    );
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let agent_script =
        agent_script.replace(&dir.display().to_string(), &out_dir.display().to_string());
    let mut agent = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "10001",
            "--regid",
            "10001",
            "--clear-groups",
            "--",
        ])
        .arg(&bin)
        .args(["--supervise", "--", "sh", "-c", &agent_script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv runs (root)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !out_dir.join("ready").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not get ready"
        );
        if let Ok(Some(st)) = agent.try_wait() {
            panic!("agent-init exited early: {st}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let meta = std::fs::metadata(&g).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (10001, 0o400));
    let d = std::fs::metadata(&files_dir).unwrap();
    assert_eq!((d.uid(), d.mode() & 0o7777), (10001, 0o700));
    let sha = v["files"]["google-credentials.json"]["sha256"]
        .as_str()
        .unwrap();
    let read = std::fs::read_to_string(out_dir.join("agent-read")).unwrap();
    assert!(read.starts_with(sha), "the agent read its file: {read}");
    for probe in [
        format!("cat {}", g.display()),
        format!("ls {}", files_dir.display()),
    ] {
        let o = std::process::Command::new("setpriv")
            .args([
                "--reuid",
                "10002",
                "--regid",
                "10002",
                "--clear-groups",
                "--",
                "sh",
                "-c",
                &probe,
            ])
            .output()
            .unwrap();
        assert!(!o.status.success(), "uid 10002 must not: {probe}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
            "{probe}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::fs::write(out_dir.join("done"), "").unwrap();
    let st = agent.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(
        !files_dir.exists(),
        "supervise removed them after the command exited"
    );
}

#[test]
fn secret_mount_gives_the_command_the_file_as_production_would() {
    let dir = scratch("files-mount");
    let v = files_vector();
    // The vector's own content, from a local file of the same name.
    let plain: Value = serde_json::from_str(v["plaintext"].as_str().unwrap()).unwrap();
    let content = |name: &str| -> Vec<u8> {
        let s = plain["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        agent_init::protocol::token::b64u_decode(s["value"].as_str().unwrap()).unwrap()
    };
    let creds = dir.join("creds");
    std::fs::create_dir(&creds).unwrap();
    for n in ["google-credentials.json", "raw.bin"] {
        std::fs::write(creds.join(n), content(n)).unwrap();
    }
    let files_dir = shm_dir("mount");
    let report = dir.join("report.json");
    let mut args: Vec<String> = vec![
        "--supervise".into(),
        "--secret-mount".into(),
        format!(
            "GOOGLE_APPLICATION_CREDENTIALS={}",
            creds.join("google-credentials.json").display()
        ),
        format!("--secret-mount={}", creds.join("raw.bin").display()),
    ];
    for (k, val) in v["env"].as_object().unwrap() {
        args.push("--secrets".into());
        args.push(format!("{k}={}", val.as_str().unwrap()));
    }
    args.extend(report_command(&files_dir, &report));
    let out = Run::new(&dir)
        .env("AGENT_INIT_SECRETS_DIR", &files_dir)
        .args(&args)
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_report_matches_vector(&report, &files_dir);
    assert!(!files_dir.exists());
    // --list shows where each goes, without reading any content out.
    let out = Run::new(&dir)
        .env("AGENT_INIT_SECRETS_DIR", &files_dir)
        .args([
            "--list".to_string(),
            "--secret-mount".into(),
            format!("G={}", creds.join("google-credentials.json").display()),
        ])
        .output();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!(
            "google-credentials.json\tfile {}\n",
            files_dir.join("google-credentials.json").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("G\tpath of file secret google-credentials.json\n"),
        "{text}"
    );
    support::assert_no_leak(&out, &["service_account", &b64u(&content("raw.bin"))]);
}
