//! A real `agent-secrets serve` (SQLite, or the PostgreSQL a test names;
//! HTTPS with a CA the test makes) and its CLI, for the suites where
//! agent-init fetches from the service (tests/watch.rs) and for the CLI's
//! own end-to-end suite (service/tests/cli_end_to_end.rs, through
//! `#[path]`): this one file serves both. Its parent module provides
//! `workspace` (tests/support/workspace.rs).
#![allow(dead_code)]

use agent_init::protocol::token::Token;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `PATH` the service and its CLI run with.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The admin key of every service started here; no output may hold it.
pub const ADMIN_KEY: &str = "admin-key-for-the-service-tests-8d2c61";

/// A test CA and a certificate it signed, as PEM files in a directory.
pub struct Certificates {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    /// The CA certificate, DER, for a client's root store.
    pub ca_der: Vec<u8>,
}

/// A fresh CA named `ca_name` and a certificate for `names`, written to
/// `dir` as `ca.pem`, `cert.pem` and `key.pem`.
pub fn certificates(dir: &Path, ca_name: &str, names: &[&str]) -> Certificates {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let c = Certificates {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
        ca_der: ca.der().to_vec(),
    };
    std::fs::write(&c.ca_pem, ca.pem()).unwrap();
    std::fs::write(&c.cert_pem, cert.pem()).unwrap();
    std::fs::write(&c.key_pem, key.serialize_pem()).unwrap();
    c
}

/// Waits until the service logging to `log` says where it listens; its
/// `host:port`.
pub fn wait_listening(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap();
            return url.split("://").nth(1).unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "agent-secrets did not start listening; its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running service and what its CLI needs to reach it.
pub struct Secrets {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The test CA, for `AGENT_INIT_CA_FILE` and `--ca-file`.
    pub ca: PathBuf,
    /// The file holding [`ADMIN_KEY`], for `--admin-key-file`.
    pub key_file: PathBuf,
    log: PathBuf,
}

impl Secrets {
    /// Starts a service on SQLite with its data, certificates and log in `dir`.
    pub fn start(dir: &Path) -> Secrets {
        Secrets::start_with(dir, &[])
    }

    /// As [`Secrets::start`], with `extra` arguments to `serve` (`--database
    /// URL` for PostgreSQL).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Secrets {
        let certs = certificates(dir, "agent-init test CA for agent-secrets", &["127.0.0.1"]);
        let (key_file, log) = (dir.join("admin-key"), dir.join("agent-secrets.log"));
        std::fs::write(&key_file, format!("{ADMIN_KEY}\n")).unwrap();
        let child = Command::new(super::workspace::agent_secrets())
            .env_clear()
            .env("PATH", PATH)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("data"))
            .arg("--admin-key-file")
            .arg(&key_file)
            .arg("--tls-cert")
            .arg(&certs.cert_pem)
            .arg("--tls-key")
            .arg(&certs.key_pem)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("agent-secrets starts");
        let addr = wait_listening(&log);
        Secrets {
            child,
            url: format!("https://{addr}"),
            ca: certs.ca_pem,
            key_file,
            log,
        }
    }

    /// What agent-init's `LIVEKIT_SECRETS_URL` says.
    pub fn bundle_url(&self) -> String {
        format!("{}/v1/bundle", self.url)
    }

    /// The service's log: one line per request (`GET /v1/bundle id=… version=N -> STATUS`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The statuses of the bundle fetches so far, with the version served.
    pub fn fetches(&self) -> Vec<(String, u16)> {
        self.log()
            .lines()
            .filter(|l| l.contains("GET /v1/bundle "))
            .filter_map(|l| {
                let version = l.split("version=").nth(1)?.split(' ').next()?.to_string();
                let status = l.split("-> ").nth(1)?.split(' ').next()?.parse().ok()?;
                Some((version, status))
            })
            .collect()
    }

    /// `agent-secrets VERB ARGS --service --admin-key-file --ca-file`
    /// against this service, in `cwd`, to run.
    pub fn cli_command(&self, cwd: &Path, verb: &str, args: &[&str]) -> Command {
        let mut c = Command::new(super::workspace::agent_secrets());
        c.env_clear()
            .env("PATH", PATH)
            .current_dir(cwd)
            .arg(verb)
            .args(args)
            .arg("--service")
            .arg(&self.url)
            .arg("--admin-key-file")
            .arg(&self.key_file)
            .arg("--ca-file")
            .arg(&self.ca)
            .stdin(Stdio::null());
        c
    }

    /// [`Secrets::cli_command`], run.
    pub fn cli(&self, cwd: &Path, verb: &str, args: &[&str]) -> Output {
        self.cli_command(cwd, verb, args).output().unwrap()
    }

    /// `create ARGS`, which must succeed and print a well-formed token and
    /// only it, leaking neither it nor the admin key on stderr; the token
    /// goes to `cwd/token` (mode 0600) and is returned.
    pub fn create(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.cli(cwd, "create", args);
        assert_ok(&out, "create");
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            text.ends_with('\n') && text.lines().count() == 1,
            "{text:?}"
        );
        let token = text.trim().to_string();
        Token::parse(&token).expect("create prints a well-formed token, and only it");
        assert_no_leak(&out, &[&token, ADMIN_KEY]);
        let path = cwd.join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        token
    }

    /// `update-secrets --token-file cwd/token ARGS`, which must succeed.
    pub fn update(&self, cwd: &Path, args: &[&str]) {
        let mut all = vec!["--token-file", "token"];
        all.extend(args);
        assert_ok(&self.cli(cwd, "update-secrets", &all), "update-secrets");
    }

    /// `revoke ID`, which must succeed.
    pub fn revoke(&self, cwd: &Path, id: &str) {
        assert_ok(&self.cli(cwd, "revoke", &[id]), "revoke");
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("agent-secrets serve's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `what` exited 0, showing its stderr when not.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert_exit(out, 0, what);
}

/// Asserts that `what` exited `code`, showing its stderr when not.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that stderr holds none of `secrets`, nor the KEY part of a
/// token among them (a failure never shows the string).
#[track_caller]
pub fn assert_no_leak(out: &Output, secrets: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for s in secrets {
        assert!(!s.is_empty(), "an empty string cannot be checked for");
        assert!(!stderr.contains(s), "stderr leaks a secret string");
        if s.starts_with("lkbt1.") {
            let key = s.rsplit('.').next().unwrap();
            assert!(!stderr.contains(key), "stderr leaks a token's KEY");
        }
    }
}
