//! `agent-init health`: the probe for `HEALTHCHECK` and Kubernetes exec
//! probes in images that ship no curl or wget (the slim Python and Node
//! images, `FROM scratch`).
//!
//! It sends `GET /` over HTTP/1.0 to `127.0.0.1:PORT` (default 8081, the
//! port of a LiveKit worker's health server) and exits 0 when a port answers
//! `200`, 1 otherwise; one line on stderr says what it saw. With several
//! `--port`s, the first 200 wins (during an `overlap` roll the two
//! generations listen on two ports). The whole probe ends by `--timeout`
//! (default 2 s): a server that accepts and never answers, or answers byte
//! by byte, is "unhealthy", never a hang.
//!
//! What a 200 means is the SDK's business: `@livekit/agents` (Node) answers
//! 200 only while its WebSocket to LiveKit is open; `livekit-agents`
//! (Python) answers 200 as soon as its HTTP server is up, while it is still
//! connecting, and 503 only after its connection attempts failed (about
//! 130 s) or when its inference process died.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The port a LiveKit worker's health server listens on in production.
pub const DEFAULT_PORT: u16 = 8081;
/// The whole probe's deadline unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probe was asked: the ports, in order, and the deadline (read by
/// [`crate::config::probe_args`]).
#[derive(Debug, PartialEq)]
pub struct Probe {
    pub ports: Vec<u16>,
    pub timeout: Duration,
}

impl Probe {
    /// Probes each port in turn, inside the one deadline; returns the exit
    /// status (0: a port answered 200) after printing one line.
    pub fn run(&self) -> i32 {
        let deadline = Instant::now() + self.timeout;
        let mut seen = Vec::with_capacity(self.ports.len());
        for &port in &self.ports {
            match get(port, deadline) {
                Ok(200) => {
                    say(&format!("127.0.0.1:{port} answered 200"));
                    return 0;
                }
                Ok(status) => seen.push(format!("127.0.0.1:{port} answered {status}")),
                Err(why) => seen.push(format!("127.0.0.1:{port}: {why}")),
            }
        }
        say(&format!("unhealthy: {}", seen.join("; ")));
        1
    }
}

/// One `GET /`; the status code, or why there is none.
pub fn get(port: u16, deadline: Instant) -> std::result::Result<u16, String> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "no answer before the deadline (--timeout)".to_string())
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, left()?).map_err(|e| io_why(&e))?;
    conn.set_write_timeout(Some(left()?))
        .map_err(|e| io_why(&e))?;
    conn.write_all(format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .map_err(|e| io_why(&e))?;
    // The status line is all that matters: `HTTP/1.x NNN ...`.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 1024 {
        conn.set_read_timeout(Some(left()?))
            .map_err(|e| io_why(&e))?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_why(&e)),
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with(b"HTTP/1.") && code.len() == 3 => {
            std::str::from_utf8(code)
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| "not an HTTP answer".into())
        }
        _ if head.is_empty() => Err("closed the connection without an answer".into()),
        _ => Err("not an HTTP answer".into()),
    }
}

/// The one line, whatever `AGENT_INIT_LOG` says: it is what the probe is for.
fn say(what: &str) {
    let _ = std::io::stderr().write_all(format!("agent-init: health: {what}\n").as_bytes());
}

fn io_why(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::WouldBlock | K::TimedOut => "no answer before the deadline (--timeout)".into(),
        _ => crate::sys::io_reason(e),
    }
}
