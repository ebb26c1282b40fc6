//! Test support for agent-secrets: start the real service binary (SQLite
//! or PostgreSQL, plain HTTP or TLS with a CA the test makes), speak
//! HTTP/1.1 to it with a client written from PROTOCOL.md (not the CLI),
//! kill it, restart it, read its log and memory.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The binary under test: `AGENT_SECRETS_BIN` (a relative path is taken
/// from the workspace root; scripts/test.sh points it at the `service`
/// profile build, the one that ships), else the one cargo built for this run.
pub fn bin() -> PathBuf {
    workspace::agent_secrets()
}

/// The PostgreSQL server the suite runs against: scripts/test.sh starts a
/// throwaway cluster and exports its URL. A PostgreSQL test without it
/// fails, saying so; it is never skipped.
pub fn postgres_url() -> String {
    std::env::var("AGENT_SECRETS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "AGENT_SECRETS_TEST_DATABASE_URL is not set: run scripts/test.sh, or \
             `eval \"$(bash scripts/postgres-test.sh start)\"` first"
        )
    })
}

/// Fresh random bytes from the system (tests need distinct IDs and keys).
pub fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

pub fn b64u(b: &[u8]) -> String {
    agent_init::protocol::token::b64u(b)
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// Which database a server uses.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    Postgres(String),
}

impl Db {
    pub fn postgres() -> Db {
        Db::Postgres(postgres_url())
    }
}

/// Each scenario as two tests with the same body: one on SQLite, and one on
/// a real PostgreSQL server, `#[ignore]`d because it needs one (scripts/test.sh
/// starts a throwaway cluster and runs it):
/// `on_both_databases! { body => name_on_sqlite, name_on_postgres; … }`,
/// where `body` is a function or closure taking the [`Db`].
#[macro_export]
macro_rules! on_both_databases {
    ($($body:expr => $sqlite:ident, $postgres:ident;)*) => {
        $(
            #[test]
            fn $sqlite() {
                ($body)($crate::support::Db::Sqlite);
            }

            #[test]
            #[ignore = "needs PostgreSQL (scripts/test.sh starts a throwaway cluster)"]
            fn $postgres() {
                ($body)($crate::support::Db::postgres());
            }
        )*
    };
}

/// A TLS identity for the service, from a CA made for the test.
pub struct Tls {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// A CA and a certificate for 127.0.0.1 and localhost, written to `dir`.
    pub fn new(dir: &Path) -> Tls {
        let certs =
            service::certificates(dir, "agent-secrets test CA", &["127.0.0.1", "localhost"]);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs.ca_der.into()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls {
            ca_pem: certs.ca_pem,
            cert_pem: certs.cert_pem,
            key_pem: certs.key_pem,
            client: Arc::new(client),
        }
    }
}

/// How to start a server.
pub struct Options {
    pub db: Db,
    pub tls: Option<Arc<Tls>>,
    /// `--admin-key-file`; without it the service makes one in its data dir
    /// (SQLite only).
    pub admin_key_file: Option<PathBuf>,
    pub extra: Vec<String>,
}

impl Options {
    pub fn sqlite() -> Options {
        Options {
            db: Db::Sqlite,
            tls: None,
            admin_key_file: None,
            extra: vec![],
        }
    }
    pub fn on(db: Db, dir: &Path) -> Options {
        let admin_key_file = match db {
            Db::Sqlite => None,
            Db::Postgres(_) => Some(shared_admin_key(dir)),
        };
        Options {
            db,
            tls: None,
            admin_key_file,
            extra: vec![],
        }
    }
}

/// An admin key file in `dir`, made once, for replicas that share it.
pub fn shared_admin_key(dir: &Path) -> PathBuf {
    let path = dir.join("shared-admin-key");
    if !path.exists() {
        std::fs::write(&path, format!("{}\n", b64u(&random::<32>()))).unwrap();
    }
    path
}

/// A running `agent-secrets serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub log: PathBuf,
    pub admin_key: String,
    pub tls: Option<Arc<Tls>>,
    args: Vec<String>,
}

impl Server {
    /// Starts a server with its data in `dir` (a fresh port each time).
    pub fn start(dir: &Path, opts: &Options) -> Server {
        let data = dir.join("data");
        let mut args = vec![
            "serve".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data".into(),
            data.display().to_string(),
        ];
        if let Db::Postgres(url) = &opts.db {
            args.extend(["--database".into(), url.clone()]);
        }
        if let Some(f) = &opts.admin_key_file {
            args.extend(["--admin-key-file".into(), f.display().to_string()]);
        }
        if let Some(t) = &opts.tls {
            args.extend([
                "--tls-cert".into(),
                t.cert_pem.display().to_string(),
                "--tls-key".into(),
                t.key_pem.display().to_string(),
            ]);
        }
        args.extend(opts.extra.iter().cloned());
        Server::spawn(dir, args, opts.tls.clone(), opts.admin_key_file.clone())
    }

    fn spawn(
        dir: &Path,
        args: Vec<String>,
        tls: Option<Arc<Tls>>,
        admin_key_file: Option<PathBuf>,
    ) -> Server {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("server-{n}.log"));
        let child = Command::new(bin())
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("agent-secrets starts");
        let addr = service::wait_listening(&log).parse::<SocketAddr>().unwrap();
        let data = PathBuf::from(&args[args.iter().position(|a| a == "--data").unwrap() + 1]);
        let key_path = admin_key_file.unwrap_or_else(|| data.join("admin-key"));
        let admin_key = std::fs::read_to_string(key_path)
            .unwrap()
            .trim()
            .to_string();
        Server {
            child,
            addr,
            data,
            log,
            admin_key,
            tls,
            args,
        }
    }

    /// Starts the same server again (same data, database and flags), on a
    /// fresh port.
    pub fn restart(&self, dir: &Path) -> Server {
        let admin = self
            .args
            .iter()
            .position(|a| a == "--admin-key-file")
            .map(|i| PathBuf::from(&self.args[i + 1]));
        Server::spawn(dir, self.args.clone(), self.tls.clone(), admin)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// The admin key's `Authorization` value.
    pub fn admin_authorization(&self) -> String {
        format!("Bearer {}", self.admin_key)
    }

    /// One request with the admin key.
    pub fn admin(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let auth = self.admin_authorization();
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        self.request(method, path, &h, body)
    }

    /// The §4 fetch: `GET /v1/bundle` with `authorization` and `headers`.
    pub fn fetch(&self, authorization: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("Authorization", authorization)];
        h.extend_from_slice(headers);
        self.request("GET", "/v1/bundle", &h, b"")
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One request; an error when the connection fails (a killed server).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.try_raw(&bytes)
    }

    /// Sends `bytes` as they are and reads the answer.
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        self.try_raw(bytes)
            .unwrap_or_else(|e| panic!("request: {e}"))
    }

    pub fn try_raw(&self, bytes: &[u8]) -> std::io::Result<Resp> {
        let tcp = TcpStream::connect(self.addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
        match &self.tls {
            None => exchange(tcp, bytes),
            Some(t) => {
                let conn = rustls::ClientConnection::new(
                    t.client.clone(),
                    "localhost".try_into().unwrap(),
                )
                .unwrap();
                exchange(rustls::StreamOwned::new(conn, tcp), bytes)
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The `error` reason of a refusal.
    pub fn reason(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn exchange<S: Read + Write>(mut s: S, bytes: &[u8]) -> std::io::Result<Resp> {
    // A server may answer (413) and close before reading all of a large
    // body; the answer is still there to read.
    let _ = s.write_all(bytes).and_then(|_| s.flush());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A TLS peer that closes without close_notify, after a whole answer.
            Err(e) if complete(&buf) => {
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        }
        if complete(&buf) {
            break;
        }
    }
    if !complete(&buf) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no complete answer: {:?}", String::from_utf8_lossy(&buf)),
        ));
    }
    Ok(parse(&buf))
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn complete(buf: &[u8]) -> bool {
    let Some(end) = head_end(buf) else {
        return false;
    };
    let r = parse_head(&buf[..end]);
    let len = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + len
}

fn parse_head(head: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp {
        status,
        headers,
        body: vec![],
    }
}

fn parse(buf: &[u8]) -> Resp {
    let end = head_end(buf)
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(buf)));
    let mut r = parse_head(&buf[..end]);
    r.body = buf[end..].to_vec();
    r
}

/// A token made for a test, and what it takes to upload bundles for it.
pub struct TestToken {
    pub token: agent_init::protocol::token::Token,
    pub id: String,
}

impl TestToken {
    pub fn new() -> TestToken {
        let token = agent_init::protocol::token::Token::generate().unwrap();
        TestToken {
            id: token.id_b64(),
            token,
        }
    }
    /// `b64u(SHA-256(auth_key))`, what §10's PUT carries.
    pub fn auth_key_sha256(&self) -> String {
        b64u(&sha256(&self.token.auth_key()[..]))
    }
    /// The §4 `Authorization` value.
    pub fn authorization(&self) -> String {
        self.token.authorization().expose().to_string()
    }
    /// A PUT body sealing `plaintext` (§6 JSON), with a manifest naming `names`.
    pub fn put_body(&self, plaintext: &str, names: &[&str]) -> Vec<u8> {
        let bundle: serde_json::Value = serde_json::from_str(
            &agent_init::protocol::bundle::seal(&self.token, plaintext.as_bytes()).unwrap(),
        )
        .unwrap();
        let secrets: Vec<serde_json::Value> = names
            .iter()
            .map(|n| {
                serde_json::json!({"name": n, "kind": "env",
                    "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "auth_key_sha256": self.auth_key_sha256(),
            "bundle": bundle,
            "manifest": {"secrets": secrets},
        }))
        .unwrap()
    }
}

/// /proc: memory scans (read_memory, occurrences) and process state, the
/// one helper agent-init's suites use too.
#[path = "../../../tests/support/procfs.rs"]
pub mod procfs;
/// A service with TLS from a test CA, and its CLI, shared with agent-init's suites.
#[path = "../../../tests/support/service.rs"]
pub mod service;
/// The workspace's binaries and scratch directories, shared with agent-init's suites.
#[path = "../../../tests/support/workspace.rs"]
pub mod workspace;
#[allow(unused_imports)]
pub use procfs::{occurrences, read_memory};
#[allow(unused_imports)]
pub use workspace::scratch;
