//! A real `agent-secrets serve` (SQLite, HTTPS with a CA the test makes)
//! and its CLI, for the suites where agent-init fetches from the service.
//!
//! The binary is the one `AGENT_SECRETS_BIN` names (a relative path from
//! the workspace root), else the one `cargo test --workspace` built next to
//! the test executable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The agent-secrets binary.
pub fn bin() -> PathBuf {
    let p = match std::env::var_os("AGENT_SECRETS_BIN").filter(|p| !p.is_empty()) {
        Some(p) => Path::new(env!("CARGO_MANIFEST_DIR")).join(p),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("agent-secrets")
        }
    };
    assert!(
        p.is_file(),
        "no agent-secrets binary at {} (set AGENT_SECRETS_BIN, or cargo build -p agent-secrets)",
        p.display()
    );
    p
}

/// A running service and what its CLI needs to reach it.
pub struct Secrets {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The test CA, for `AGENT_INIT_CA_FILE` and `--ca-file`.
    pub ca: PathBuf,
    key_file: PathBuf,
    log: PathBuf,
}

impl Secrets {
    /// Starts a service with its data, certificates and log in `dir`.
    pub fn start(dir: &Path) -> Secrets {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "agent-init test CA for agent-secrets");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        let (ca, cert_pem, key_pem, key_file, log) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("admin-key"),
            dir.join("agent-secrets.log"),
        );
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(&cert_pem, cert.pem()).unwrap();
        std::fs::write(&key_pem, key.serialize_pem()).unwrap();
        std::fs::write(&key_file, "admin-key-for-the-watch-tests-8d2c61\n").unwrap();
        let child = Command::new(bin())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("data"))
            .arg("--admin-key-file")
            .arg(&key_file)
            .arg("--tls-cert")
            .arg(&cert_pem)
            .arg("--tls-key")
            .arg(&key_pem)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("agent-secrets starts");
        let t0 = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                let url = rest.split_whitespace().next().unwrap();
                break url.split("://").nth(1).unwrap().to_string();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "agent-secrets did not start listening: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Secrets {
            child,
            url: format!("https://{addr}"),
            ca,
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

    /// `agent-secrets VERB ARGS` against this service, in `cwd`.
    pub fn cli(&self, cwd: &Path, verb: &str, args: &[&str]) -> Output {
        Command::new(bin())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(cwd)
            .arg(verb)
            .args(args)
            .arg("--service")
            .arg(&self.url)
            .arg("--admin-key-file")
            .arg(&self.key_file)
            .arg("--ca-file")
            .arg(&self.ca)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `create ARGS`: the token goes to `cwd/token` (mode 0600) and is returned.
    pub fn create(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.cli(cwd, "create", args);
        assert!(out.status.success(), "agent-secrets create: {out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let path = cwd.join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        token
    }

    /// `update-secrets --token-file cwd/token ARGS`.
    pub fn update(&self, cwd: &Path, args: &[&str]) {
        let mut all = vec!["--token-file", "token"];
        all.extend(args);
        let out = self.cli(cwd, "update-secrets", &all);
        assert!(
            out.status.success(),
            "agent-secrets update-secrets: {out:?}"
        );
    }

    /// `revoke ID`.
    pub fn revoke(&self, cwd: &Path, id: &str) {
        let out = self.cli(cwd, "revoke", &[id]);
        assert!(out.status.success(), "agent-secrets revoke: {out:?}");
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
