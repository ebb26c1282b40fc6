//! A scriptable HTTPS secrets server on 127.0.0.1, for driving agent-init
//! through every answer of PROTOCOL.md §4.
//!
//! The server is rustls over a real TCP socket (or plain TCP, for the
//! loopback `http://` that PROTOCOL.md §4 allows), one thread per connection.
//! Each connection gets the next [`Reply`] of its script; the last reply
//! repeats for every later connection. Every accepted connection and every
//! request (its line and headers, and when it arrived) is recorded, so tests
//! can assert the exact `Authorization` header, count attempts, and measure
//! the client's waits from the server's side rather than their own.

use super::tls::ServerCert;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long a test waits for something the server should see before failing.
/// A bound against hanging forever, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the server does with one connection.
#[derive(Clone, Debug)]
pub struct Reply {
    action: Action,
    status: u16,
    headers: Vec<(String, String)>,
    retry_after_date_in: Option<Duration>,
    body: Vec<u8>,
    framing: Framing,
    send_only: Option<usize>,
    hang_after: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Respond,
    CloseWithoutAnswer,
    Hang,
    CutHandshake,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    ContentLength,
    Chunked,
    CloseDelimited,
}

impl Reply {
    fn new(action: Action, status: u16, body: Vec<u8>) -> Reply {
        Reply {
            action,
            status,
            headers: Vec::new(),
            retry_after_date_in: None,
            body,
            framing: Framing::ContentLength,
            send_only: None,
            hang_after: false,
        }
    }

    /// `200 OK` with `body` (a sealed bundle, usually).
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(Action::Respond, 200, body.into())
    }

    /// A response with `status` and an empty body.
    pub fn status(status: u16) -> Reply {
        Reply::new(Action::Respond, status, Vec::new())
    }

    /// Reads the request, then closes the connection without a response.
    pub fn close_without_answer() -> Reply {
        Reply::new(Action::CloseWithoutAnswer, 0, Vec::new())
    }

    /// Completes the TLS handshake and reads the request, then never answers
    /// and never closes (until the server is dropped).
    pub fn hang() -> Reply {
        Reply::new(Action::Hang, 0, Vec::new())
    }

    /// Reads the client's hello, sends part of the server's first TLS flight,
    /// then closes the connection.
    pub fn cut_handshake() -> Reply {
        Reply::new(Action::CutHandshake, 0, Vec::new())
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `Retry-After` as an HTTP date `d` after the moment the response is written.
    pub fn retry_after_date_in(mut self, d: Duration) -> Reply {
        self.retry_after_date_in = Some(d);
        self
    }

    /// Declares the full body length (or chunks) but sends only `n` body
    /// bytes, then cuts the connection without a TLS close_notify.
    pub fn truncated_to(mut self, n: usize) -> Reply {
        self.send_only = Some(n);
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked` (no `Content-Length`).
    pub fn chunked(mut self) -> Reply {
        self.framing = Framing::Chunked;
        self
    }

    /// Sends the body with no length at all; its end is the connection's end.
    pub fn without_length(mut self) -> Reply {
        self.framing = Framing::CloseDelimited;
        self
    }

    /// After sending what it sends, keeps the connection open and silent
    /// instead of finishing the body: a client that waits for the end of the
    /// body waits until its deadline.
    pub fn then_hang(mut self) -> Reply {
        self.hang_after = true;
        self
    }
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// When its head had been read.
    pub at: Instant,
    pub method: String,
    pub target: String,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics if it is absent or repeated.
    pub fn header(&self, name: &str) -> &str {
        match self.header_values(name).as_slice() {
            [v] => v,
            other => panic!("header {name}: expected exactly one, got {}", other.len()),
        }
    }
}

#[derive(Default)]
struct Log {
    connections: usize,
    requests: Vec<Request>,
}

struct State {
    script: Vec<Reply>,
    /// `None` for plain HTTP.
    config: Option<Arc<rustls::ServerConfig>>,
    stop: AtomicBool,
    log: Mutex<Log>,
    changed: Condvar,
}

impl State {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Holds the connection open, silent, until the server is dropped.
    fn hold<T>(&self, conn: T) {
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(conn);
    }
}

/// The running server. Dropping it stops it and releases held connections.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a server presenting `cert` that answers with `script` (the last
    /// reply repeats).
    pub fn start(cert: &ServerCert, script: Vec<Reply>) -> Server {
        Server::listen(Some(cert.server_config()), script)
    }

    /// Starts a TLS server with its own `config` that answers with `script`.
    pub fn start_with_config(config: Arc<rustls::ServerConfig>, script: Vec<Reply>) -> Server {
        Server::listen(Some(config), script)
    }

    /// Starts a plain-HTTP server (no TLS) that answers with `script`.
    pub fn start_plain(script: Vec<Reply>) -> Server {
        Server::listen(None, script)
    }

    fn listen(config: Option<Arc<rustls::ServerConfig>>, script: Vec<Reply>) -> Server {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            script,
            config,
            stop: AtomicBool::new(false),
            log: Mutex::new(Log::default()),
            changed: Condvar::new(),
        });
        let st = Arc::clone(&state);
        let accept = std::thread::spawn(move || {
            for (index, tcp) in listener.incoming().enumerate() {
                if st.stopped() {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                st.log.lock().unwrap().connections += 1;
                st.changed.notify_all();
                let reply = st.script[index.min(st.script.len() - 1)].clone();
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve(&st, tcp, &reply));
            }
        });
        Server {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT/v1/secrets` (`http://` for a plain server).
    pub fn url(&self) -> String {
        self.url_for_host("127.0.0.1")
    }

    /// The secrets URL with another host name for 127.0.0.1 (one that
    /// `/etc/hosts` or the test proxy maps there).
    pub fn url_for_host(&self, host: &str) -> String {
        let scheme = if self.state.config.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}:{}/v1/secrets", self.port())
    }

    /// Connections accepted so far (TLS handshake or not).
    pub fn connections(&self) -> usize {
        self.state.log.lock().unwrap().connections
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests have arrived; panics after [`PATIENCE`].
    pub fn wait_for_requests(&self, n: usize) {
        let log = self.state.log.lock().unwrap();
        let (log, timeout) = self
            .state
            .changed
            .wait_timeout_while(log, PATIENCE, |l| l.requests.len() < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the server saw {} of {n} expected requests",
            log.requests.len()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_accepting(&self.state.stop, self.addr, &mut self.accept);
    }
}

/// Stops the accept loop of a listener on `addr`: sets `stop`, wakes the
/// loop (blocked in accept) with a connection so it sees the flag, and
/// waits for its thread.
pub fn stop_accepting(stop: &AtomicBool, addr: SocketAddr, accept: &mut Option<JoinHandle<()>>) {
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(addr);
    if let Some(t) = accept.take() {
        let _ = t.join();
    }
}

/// A loopback port with nothing listening: connections to it are refused.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn serve(state: &State, tcp: TcpStream, reply: &Reply) {
    let _ = tcp.set_read_timeout(Some(PATIENCE));
    let _ = tcp.set_write_timeout(Some(PATIENCE));
    let _ = tcp.set_nodelay(true);
    let Some(config) = &state.config else {
        exchange(state, tcp, reply);
        return;
    };
    if reply.action == Action::CutHandshake {
        cut_handshake(config, tcp);
        return;
    }
    let Ok(conn) = rustls::ServerConnection::new(Arc::clone(config)) else {
        return;
    };
    exchange(state, rustls::StreamOwned::new(conn, tcp), reply);
}

/// A connection the server talks HTTP over: TLS or plain TCP.
trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
    /// Announces a clean end (TLS close_notify; nothing for plain TCP).
    fn close_notify(&mut self) {}
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
    }
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// Reads the request, records it, and does what the reply says.
fn exchange(state: &State, mut conn: impl Conn, reply: &Reply) {
    // A handshake the client rejects (bad certificate) ends here.
    let Some(request) = read_head(&mut conn) else {
        return;
    };
    state.log.lock().unwrap().requests.push(request);
    state.changed.notify_all();
    match reply.action {
        Action::Hang => state.hold(conn),
        Action::CloseWithoutAnswer => finish(conn),
        Action::Respond => respond(state, conn, reply),
        // Plain HTTP has no handshake to cut: close at once.
        Action::CutHandshake => {}
    }
}

/// Reads the request line and headers (no body: agent-init only GETs).
fn read_head(tls: &mut impl Conn) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect();
    Some(Request {
        at,
        method,
        target,
        headers,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        418 => "I'm a teapot",
        425 => "Too Early",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn respond(state: &State, mut tls: impl Conn, reply: &Reply) {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(d) = reply.retry_after_date_in {
        head.push_str(&format!(
            "Retry-After: {}\r\n",
            http_date(SystemTime::now() + d)
        ));
    }
    match reply.framing {
        Framing::ContentLength => {
            head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()))
        }
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::CloseDelimited => {}
    }
    head.push_str("Content-Type: application/json\r\nConnection: close\r\n\r\n");
    let sent = &reply.body[..reply
        .send_only
        .unwrap_or(reply.body.len())
        .min(reply.body.len())];
    let complete = reply.send_only.is_none() && !reply.hang_after;
    let mut wire = head.into_bytes();
    match reply.framing {
        Framing::Chunked => {
            for c in sent.chunks(4096) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            if complete {
                wire.extend_from_slice(b"0\r\n\r\n");
            }
        }
        _ => wire.extend_from_slice(sent),
    }
    // The client may stop reading (a body over its cap) and close: errors are expected.
    let written = tls.write_all(&wire).and_then(|_| tls.flush()).is_ok();
    if reply.hang_after {
        state.hold(tls);
    } else if reply.send_only.is_some() || !written {
        // Cut: TCP closes, no TLS close_notify, as when a connection drops.
        let _ = tls.tcp().shutdown(Shutdown::Both);
    } else {
        finish(tls);
    }
}

/// Ends the connection cleanly: close_notify, then wait for the client to close.
fn finish(mut conn: impl Conn) {
    conn.close_notify();
    let _ = conn.flush();
    let mut tcp = conn.tcp();
    let _ = tcp.shutdown(Shutdown::Write);
    // Drain until the client closes, so closing never resets data it has not read.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let mut sink = [0u8; 4096];
    while matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
}

/// Reads until the client's hello is complete, sends half of the server's
/// first flight, and closes.
fn cut_handshake(config: &Arc<rustls::ServerConfig>, mut tcp: TcpStream) {
    let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(config)) else {
        return;
    };
    while !conn.wants_write() {
        match conn.read_tls(&mut tcp) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    return;
                }
            }
        }
    }
    let mut flight = Vec::new();
    while conn.wants_write() {
        if conn.write_tls(&mut flight).is_err() {
            return;
        }
    }
    let _ = tcp.write_all(&flight[..flight.len() / 2]);
    let _ = tcp.flush();
    let _ = tcp.shutdown(Shutdown::Both);
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, RFC 9110 §5.6.7).
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = agent_init::base::time::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
