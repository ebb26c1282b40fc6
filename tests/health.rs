//! `agent-init health` against loopback servers that answer 200, 503,
//! nothing at all, or never: exit 0 only on a 200, 1 otherwise, one line on
//! stderr, never past `--timeout`. (Against real LiveKit workers:
//! tests/agents/health.rs.)

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

/// Serves every connection with `reply` after reading the request head
/// (`None`: read it, then hold the connection open and say nothing).
fn serve(reply: Option<&'static str>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 256];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            assert!(req.starts_with(b"GET / HTTP/1.0\r\n"), "{req:?}");
            match reply {
                Some(r) => {
                    let _ = conn.write_all(r.as_bytes());
                }
                None => held.push(conn),
            }
        }
    });
    port
}

fn probe(args: &[&str]) -> (Output, Duration) {
    let dir = support::scratch("health");
    let t0 = Instant::now();
    let out = support::Run::new(&dir).args(["health"]).args(args).output();
    let _ = std::fs::remove_dir_all(&dir);
    (out, t0.elapsed())
}

/// `probe(args)`, which must exit `code` with one stderr line that says `says`.
#[track_caller]
fn probe_says(args: &[&str], code: i32, says: &str) -> Output {
    let (out, _) = probe(args);
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(stderr_line(&out).contains(says), "{out:?}");
    out
}

fn stderr_line(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(s.lines().count(), 1, "one line on stderr: {s:?}");
    assert!(s.starts_with("agent-init: health: "), "{s}");
    s
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
const UNAVAILABLE: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 24\r\n\r\nnot connected to livekit";

#[test]
fn a_200_exits_0() {
    let port = serve(Some(OK)).to_string();
    let out = probe_says(&["--port", &port], 0, "answered 200");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_503_exits_1_and_says_so() {
    let port = serve(Some(UNAVAILABLE)).to_string();
    probe_says(&["--port", &port], 1, "answered 503");
}

#[test]
fn nothing_listening_exits_1() {
    // A port that was free a moment ago.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    probe_says(&["--port", &port], 1, "refused");
}

#[test]
fn a_server_that_never_answers_exits_1_at_the_timeout() {
    let port = serve(None).to_string();
    let (out, took) = probe(&["--port", &port, "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_line(&out).contains("deadline"));
    // A hang guard, not a timing assertion: 0.5 s asked, far under 30 s.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn something_that_is_not_http_exits_1() {
    let port = serve(Some("SSH-2.0-OpenSSH_9.2\r\n")).to_string();
    probe_says(&["--port", &port], 1, "not an HTTP answer");
}

#[test]
fn with_several_ports_any_200_is_healthy_and_all_failures_are_named() {
    let down = serve(Some(UNAVAILABLE)).to_string();
    let up = serve(Some(OK)).to_string();
    probe_says(
        &["--port", &down, "--port", &up],
        0,
        &format!("127.0.0.1:{up} answered 200"),
    );

    let (out, _) = probe(&["--port", &down, "--port", &down]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_line(&out).matches("answered 503").count(), 2);
}

#[test]
fn the_probe_reads_no_token_even_when_the_container_has_one() {
    // HEALTHCHECK runs with the container's environment: a token file that
    // cannot be read (or a missing LIVEKIT_SECRETS_URL) is not the probe's
    // business.
    let port = serve(Some(OK)).to_string();
    let dir = support::scratch("health-env");
    let out = support::Run::new(&dir)
        .env("LIVEKIT_BOOTSTRAP_TOKEN_FILE", "/nonexistent/token")
        .env("AGENT_INIT_LOG", "error")
        .args(["health", "--port", &port])
        .output();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    stderr_line(&out);
}

#[test]
fn bad_arguments_exit_64() {
    let (out, _) = probe(&["--port", "http"]);
    assert_eq!(out.status.code(), Some(64));
}
