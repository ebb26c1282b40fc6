//! `agent-secrets serve`: the secrets service (PROTOCOL.md §4 and §10).
//!
//! ```text
//! accept (connection cap) → TLS handshake (deadline) → HTTP/1.1 (header deadline, size caps)
//!   → gate (bounded queue, capped concurrency, 503 + Retry-After when full)
//!   → http::parse (route, admin key, ID, body) → http::execute → store
//! ```
//!
//! Plain HTTP is served only on a loopback address; any other address needs
//! `--tls-cert` and `--tls-key` (refused with 78 otherwise). Each request
//! logs one line with its method, route, token ID, version, status and
//! time; never a header, a key, a token or a body.

pub mod gate;
pub mod http;
pub mod store;

use crate::args::{self, Flag};
use crate::{Error, Result};
use gate::Gate;
use http::{AdminKey, Headers, Reply};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Whole request headers must arrive within this (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request line plus headers, at most.
const MAX_HEAD: usize = 16 * 1024;
/// Open connections at most; further ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 4096;
/// Connections the kernel holds before `accept`: a fleet's burst of
/// connects. tokio's `TcpListener::bind` asks for 128, and a storm of 1,000
/// agents overflowed it: the kernel dropped the handshakes past 128 (1,291
/// listen overflows, 1,032 SYN retransmissions in one storm) and the
/// clients' TCP resent them 1 s and 3 s later, unseen by the gate and by
/// agent-init's retry count. With this backlog, none. The kernel caps it at
/// `net.core.somaxconn` (4096 by default).
const BACKLOG: u32 = MAX_CONNECTIONS as u32;

const FLAGS: &[Flag] = &[
    Flag::value("--listen", "AGENT_SECRETS_LISTEN"),
    Flag::value("--data", "AGENT_SECRETS_DATA"),
    Flag::value("--database", "AGENT_SECRETS_DATABASE"),
    Flag::value("--tls-cert", "AGENT_SECRETS_TLS_CERT"),
    Flag::value("--tls-key", "AGENT_SECRETS_TLS_KEY"),
    Flag::value("--admin-key-file", "AGENT_SECRETS_ADMIN_KEY_FILE"),
    Flag::value("--concurrency", "AGENT_SECRETS_CONCURRENCY"),
    Flag::value("--queue", "AGENT_SECRETS_QUEUE"),
];

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// `None`: SQLite in `data`.
    pub database: Option<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub admin_key_file: Option<PathBuf>,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Requests waiting for a handler, at most.
    pub queue: usize,
}

impl Config {
    /// Parses the flags and their `AGENT_SECRETS_*` variables.
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let p = args::parse("serve", args, FLAGS, env)?;
        if let Some(extra) = p.positional.first() {
            return Err(Error::Usage(format!(
                "serve: unexpected argument {extra:?}"
            )));
        }
        let listen_text = p.get("--listen").unwrap_or("127.0.0.1:8077");
        let listen = parse_listen(listen_text).ok_or_else(|| {
            Error::Config(format!(
                "--listen {listen_text:?} is not ADDR:PORT (e.g. 127.0.0.1:8077, [::1]:8077, 0.0.0.0:443)"
            ))
        })?;
        let tls = match (p.get("--tls-cert"), p.get("--tls-key")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            _ => return Err(Error::Config("--tls-cert and --tls-key go together".into())),
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(Error::Config(format!(
                "--listen {listen}: plain HTTP is served only on a loopback address; \
                 give --tls-cert and --tls-key to listen on {}",
                listen.ip()
            )));
        }
        let database = p.get("--database").map(str::to_string);
        if let Some(url) = &database {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(Error::Config(
                    "--database takes a postgres:// URL (without it, SQLite in --data)".into(),
                ));
            }
        }
        let number = |flag: &str, default: usize| -> Result<usize> {
            match p.get(flag) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| {
                        Error::Config(format!("{flag} {v:?} is not a number from 1 to 1000000"))
                    }),
            }
        };
        Ok(Config {
            listen,
            data: PathBuf::from(p.get("--data").unwrap_or("agent-secrets-data")),
            database,
            tls,
            admin_key_file: p.get("--admin-key-file").map(PathBuf::from),
            concurrency: number("--concurrency", 64)?,
            queue: number("--queue", 4096)?,
        })
    }
}

/// A listening socket with [`BACKLOG`] (and `SO_REUSEADDR`, as tokio's
/// `bind` sets it, for a quick restart on the same port).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

fn parse_listen(s: &str) -> Option<SocketAddr> {
    if let Some(port) = s.strip_prefix("localhost:") {
        return Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)));
    }
    s.parse().ok()
}

/// One log line on stderr, prefixed with the program's name and the time.
pub fn log(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "agent-secrets: {} {line}",
        http::now_rfc3339()
    );
}

/// Runs the service until SIGINT or SIGTERM.
pub fn main(args: &[String]) -> Result<i32> {
    let cfg = Config::parse(args, |v| std::env::var(v).ok())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    // The accept loop runs on a worker, not on this thread: a connection's
    // task then starts on the worker that accepted it, instead of every
    // accept waking a worker from here (measured: less CPU per fetch).
    rt.block_on(async {
        tokio::spawn(run(cfg))
            .await
            .map_err(|e| Error::Internal(format!("the service's main task failed: {e}")))?
    })
}

/// What every connection shares.
pub struct State {
    pub store: Store,
    pub admin: AdminKey,
    pub gate: Gate,
}

async fn run(cfg: Config) -> Result<i32> {
    let needs_data = cfg.database.is_none() || cfg.admin_key_file.is_none();
    if needs_data {
        create_private_dir(&cfg.data)?;
    }
    let admin = load_admin_key(&cfg)?;
    let tls = cfg
        .tls
        .as_ref()
        .map(|(c, k)| tls_acceptor(c, k))
        .transpose()?;
    // Database connections per process: enough for the handlers that run
    // at once, and few enough that replicas fit PostgreSQL's default
    // max_connections (100); a handler beyond them waits for one.
    let pool = (cfg.concurrency as u32).clamp(2, 16);
    let store = match &cfg.database {
        None => Store::sqlite(&cfg.data, pool).await?,
        Some(url) => Store::postgres(url, pool).await?,
    };
    let listener = listen(cfg.listen)
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("listener address: {e}")))?;
    let state = Arc::new(State {
        store,
        admin,
        gate: Gate::new(cfg.concurrency, cfg.queue),
    });
    let where_ = match &cfg.database {
        None => format!("SQLite in {}", cfg.data.display()),
        Some(_) => "PostgreSQL".to_string(),
    };
    log(&format!(
        "listening on {}://{local} ({where_}; {} at once, {} queued at most)",
        if tls.is_some() { "https" } else { "http" },
        cfg.concurrency,
        cfg.queue
    ));
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Internal(format!("cannot watch SIGTERM: {e}")))?;
    loop {
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait for connections to close.
                    log(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_connection(tcp, state).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(stream, state).await;
                    }
                }
            }
        });
    }
    // Stop accepting; let requests in flight finish (idle connections close
    // at the header deadline), for a rolling restart that loses nothing.
    log("stopping: draining open connections");
    let all = MAX_CONNECTIONS as u32;
    let _ = tokio::time::timeout(HEADER_TIMEOUT, connections.acquire_many(all)).await;
    log("stopped");
    Ok(0)
}

async fn serve_connection<I>(io: I, state: Arc<State>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(req, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD.max(8192))
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// One request: head parsed (admin key checked), body read within its cap
/// and deadline, then through the gate to the store; logged.
pub async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route_label = route_label(req.uri().path());
    let reply = match prepare(req, state).await {
        Err(reply) => reply,
        Ok(op) => {
            let id = op.id().map(str::to_string);
            let mut reply = match state.gate.enter().await {
                Err(retry_after) => {
                    Reply::unavailable(retry_after, "the service is at capacity; retry later")
                }
                Ok(_pass) => http::execute(op, &state.store).await,
            };
            if reply.id.is_none() {
                reply.id = id;
            }
            reply
        }
    };
    log(&format!(
        "{method} {route_label} id={} version={} -> {} {}ms",
        reply.id.as_deref().unwrap_or("-"),
        reply.version.map_or("-".to_string(), |v| v.to_string()),
        reply.status,
        started.elapsed().as_millis()
    ));
    to_response(reply)
}

/// The route for the log: the path's shape, never what a client typed.
fn route_label(path: &str) -> &'static str {
    match http::route(path) {
        Ok(http::Route::Bundle) => "/v1/bundle",
        Ok(http::Route::Tokens) => "/v1/tokens",
        Ok(http::Route::Token(_)) => "/v1/tokens/{id}",
        Err(_) => "(unknown path)",
    }
}

async fn prepare(req: Request<Incoming>, state: &State) -> std::result::Result<http::Op, Reply> {
    let (parts, body) = req.into_parts();
    // A header sent twice is ambiguous: refused rather than guessed at.
    for name in ["authorization", "if-match", "if-none-match"] {
        if parts.headers.get_all(name).iter().count() > 1 {
            return Err(Reply::error(
                400,
                format!("the {name} header is given more than once"),
            ));
        }
    }
    let header = |name: &str| parts.headers.get(name).map(|v| v.as_bytes());
    let headers = Headers {
        authorization: header("authorization"),
        if_match: header("if-match"),
        if_none_match: header("if-none-match"),
    };
    let head = http::parse_head(
        parts.method.as_str(),
        parts.uri.path(),
        &headers,
        &state.admin,
    )?;
    let (id, precondition) = match head {
        http::Head::Ready(op) => return Ok(op),
        http::Head::Put { id, precondition } => (id, precondition),
    };
    // Only a PUT has a body worth reading: within a size cap and a deadline.
    let limited = Limited::new(body, http::MAX_BODY).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, limited).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Reply::error(
                413,
                format!("the body is over {} bytes", http::MAX_BODY),
            ))
        }
        Ok(Err(_)) => return Err(Reply::error(400, "the body could not be read")),
        Err(_) => return Err(Reply::error(408, "the body did not arrive in time")),
    };
    Ok(http::Op::Put {
        request: http::put_body(&body)?,
        id,
        precondition,
    })
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Config(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))),
    }
}

/// Reads the admin key from `--admin-key-file`, or from the data
/// directory's `admin-key`, creating that one (mode 0600) when missing. The
/// key itself is never printed; the log says where it is.
fn load_admin_key(cfg: &Config) -> Result<AdminKey> {
    let (path, may_create) = match &cfg.admin_key_file {
        Some(p) => (p.clone(), false),
        None => (cfg.data.join("admin-key"), true),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim();
            if key.len() < 16 {
                return Err(Error::Config(format!(
                    "the admin key in {} is shorter than 16 characters",
                    path.display()
                )));
            }
            Ok(AdminKey::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            if cfg.database.is_some() {
                return Err(Error::Config(
                    "--database: give every replica the same --admin-key-file".into(),
                ));
            }
            let key = new_admin_key()?;
            write_new_private(&path, format!("{}\n", key.as_str()).as_bytes())?;
            log(&format!(
                "created an admin key in {} (mode 0600); clients read it with --admin-key-file",
                path.display()
            ));
            Ok(AdminKey::new(&key))
        }
        Err(e) => Err(Error::Config(format!(
            "cannot read the admin key file {}: {e}",
            path.display()
        ))),
    }
}

fn new_admin_key() -> Result<zeroize::Zeroizing<String>> {
    use ring::rand::SecureRandom;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| Error::Internal("the system's random generator failed".into()))?;
    Ok(zeroize::Zeroizing::new(agent_init::protocol::token::b64u(
        &bytes[..],
    )))
}

fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(fail)
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::Config(format!("--tls-cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(Error::Config(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Config(format!("--tls-key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            Error::Config(format!(
                "--tls-cert/--tls-key do not make a TLS identity: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config> {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Config::parse(&a, |_| None)
    }

    #[test]
    fn defaults_are_loopback_sqlite_in_the_data_directory() {
        let c = cfg(&[]).unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.data, PathBuf::from("agent-secrets-data"));
        assert!(c.database.is_none() && c.tls.is_none());
    }

    #[test]
    fn a_non_loopback_address_without_tls_is_refused_with_78() {
        for addr in ["0.0.0.0:8077", "192.0.2.1:80", "[::]:8077"] {
            assert_eq!(
                cfg(&["--listen", addr]).unwrap_err().exit_code(),
                78,
                "{addr}"
            );
        }
        assert!(cfg(&["--listen", "0.0.0.0:1", "--tls-cert", "c", "--tls-key", "k"]).is_ok());
        assert_eq!(cfg(&["--tls-cert", "c"]).unwrap_err().exit_code(), 78);
        assert_eq!(
            cfg(&["--database", "mysql://x"]).unwrap_err().exit_code(),
            78
        );
        assert_eq!(cfg(&["--listen", "nowhere"]).unwrap_err().exit_code(), 78);
    }

    #[test]
    fn variables_mirror_the_flags() {
        let env = |v: &str| match v {
            "AGENT_SECRETS_LISTEN" => Some("127.0.0.2:9".to_string()),
            "AGENT_SECRETS_CONCURRENCY" => Some("3".to_string()),
            _ => None,
        };
        let c = Config::parse(&[], env).unwrap();
        assert_eq!(c.listen, "127.0.0.2:9".parse().unwrap());
        assert_eq!(c.concurrency, 3);
    }
}
