//! The fetch from the secrets service: one GET, retried with exponential
//! backoff and full jitter, honouring `Retry-After` (never earlier; the
//! jitter is added to it), inside one overall deadline (PROTOCOL.md §4).
//!
//! Guarantees: no attempt runs past the deadline; the body is never accepted
//! past the size cap, and at most [`INPUT_BUFFER`] bytes of the connection
//! are read ahead of need; 401/403, 404, an unverifiable certificate and an oversized
//! body stop at once; redirects are not followed (a 3xx is "unexpected", 69),
//! so the Authorization header goes to no other host. A proxy named by
//! `https_proxy`/`HTTPS_PROXY`, else `all_proxy`/`ALL_PROXY` (less
//! `NO_PROXY`), is used as curl uses it, except for a loopback host, which is
//! always reached directly. Plain `http://` goes only to loopback addresses.
//! The waits between attempts are [`super::retry`]'s, the TLS under the
//! request [`super::tls`]'s.

use super::retry::{retry_after, with_retries, Attempt};
use super::tls::{cert_reason, client_config, tls_cause, Tls};
use super::FetchOptions;
use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::protocol::token::Token;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, NextTimeout, TcpConnector};

/// One attempt's own limit, inside the overall deadline: a server that
/// accepts and never answers costs one slot, not the whole deadline.
const ATTEMPT: Duration = Duration::from_secs(15);
/// Connecting (TCP and TLS) gets this much of an attempt.
const CONNECT: Duration = Duration::from_secs(5);
/// ureq's input buffer, and so the most it reads from the connection ahead
/// of need: the response head, then the body in pieces this size. A body
/// over the cap is refused having read at most this much of it (ureq's
/// default is 128 KiB). Response heads larger than this are not accepted.
const INPUT_BUFFER: usize = 16 << 10;

/// What a fetch gives: the bundle and its ETag when the service sent a
/// printable one; `None` for a 304 (the bundle named by `If-None-Match` is
/// still current).
type Fetched = Option<(SecretBytes, Option<String>)>;

/// What one attempt came to.
type Outcome = Attempt<Fetched>;

/// The proxy for `url`, as curl picks it: none for a loopback host (the
/// proxy's loopback is not this container's, and plain `http://` is allowed
/// only because the request never leaves the host) or a host `NO_PROXY`
/// names; else `https_proxy`, `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY`, the
/// first that is set and not empty (`HTTP_PROXY` is for `http://` URLs,
/// which are loopback only). One that does not parse as an `http://` or
/// `https://` proxy is 78, naming the variable, never its value.
fn proxy_for(url: &str) -> Result<Option<ureq::Proxy>> {
    if super::is_loopback_url(url) || no_proxy(&super::host_of_url(url)) {
        return Ok(None);
    }
    for name in ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"] {
        let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let bad = || {
            Error::Config(format!(
                "{name} is not a valid proxy URL (http://HOST:PORT or https://HOST:PORT)"
            ))
        };
        let proxy = ureq::Proxy::new(value.to_str().ok_or_else(bad)?).map_err(|_| bad())?;
        if !matches!(
            proxy.protocol(),
            ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https
        ) {
            return Err(bad());
        }
        return Ok(Some(proxy));
    }
    Ok(None)
}

/// Whether `no_proxy` (else `NO_PROXY`) exempts `host`.
fn no_proxy(host: &str) -> bool {
    ["no_proxy", "NO_PROXY"]
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        .is_some_and(|list| exempted_by(&list, host))
}

/// Whether the comma-separated `list` exempts `host`: `*`, the host itself,
/// or a domain it is in (a leading `.` or `*.` is ignored), as curl reads it.
fn exempted_by(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    list.split(',').map(str::trim).any(|entry| {
        let e = entry.trim_start_matches("*.").trim_start_matches('.');
        let e = e.trim_end_matches('.').to_ascii_lowercase();
        entry == "*"
            || (!e.is_empty()
                && (host == e || host.strip_suffix(&e).is_some_and(|h| h.ends_with('.'))))
    })
}

/// ureq's resolver, and for a plain `http://` URL a check of what the name
/// resolved to: every address must be loopback (127.0.0.0/8, ::1), or
/// nothing is sent. The name alone proves nothing: `localhost.` goes to DNS,
/// and `/etc/hosts` may map `localhost` anywhere. The agent-secrets CLI
/// uses it too.
#[derive(Debug)]
pub struct Resolver {
    loopback_only: bool,
}

impl Resolver {
    /// The resolver for requests to `url`: loopback addresses only when it
    /// is plain `http://`.
    pub fn for_url(url: &str) -> Resolver {
        Resolver {
            loopback_only: url
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://")),
        }
    }
}

/// Whether `e` is [`Resolver`]'s refusal: the name resolved to an address
/// that is not loopback, and nothing was sent.
fn is_not_loopback(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<NotLoopback>()))
}

impl ureq::unversioned::resolver::Resolver for Resolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if self.loopback_only && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(ureq::Error::Io(std::io::Error::other(NotLoopback)));
        }
        Ok(addrs)
    }
}

/// The resolver's refusal, carried through ureq inside an `io::Error`.
#[derive(Debug)]
struct NotLoopback;

impl std::fmt::Display for NotLoopback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("resolves to an address that is not loopback")
    }
}

impl std::error::Error for NotLoopback {}

/// The body and its ETag; `None` for a 304 to `If-None-Match: seen`.
pub(super) fn fetch(
    url: &str,
    opts: &FetchOptions,
    token: &Token,
    seen: Option<&str>,
) -> Result<Fetched> {
    let start = Instant::now();
    let deadline = start + opts.deadline;
    let config = ureq::Agent::config_builder()
        .proxy(proxy_for(url)?)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("agent-init/", env!("CARGO_PKG_VERSION")))
        .accept("application/json")
        .accept_encoding("identity")
        .max_idle_connections(0)
        .input_buffer_size(INPUT_BUFFER)
        .max_response_header_size(INPUT_BUFFER)
        .build();
    // ureq's default chain less SOCKS, with our TLS link (see `Tls`).
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(Tls(client_config(opts, opts.deadline)?));
    let agent = ureq::Agent::with_parts(config, connector, Resolver::for_url(url));
    let auth = token.authorization();
    with_retries(
        start,
        deadline,
        "AGENT_INIT_TIMEOUT",
        |attempt, remaining| {
            let outcome =
                attempt_once(&agent, url, auth.expose(), seen, remaining, opts.max_bundle);
            if let Attempt::Done(Some((b, _))) = &outcome {
                crate::debug!("fetched {} bytes in attempt {attempt}", b.len());
            }
            outcome
        },
        |attempt, what, wait, asked| {
            crate::info!(
                "attempt {attempt} failed ({what}); retrying in {:.3}s{}",
                wait.as_secs_f64(),
                if asked {
                    " (Retry-After, plus jitter)"
                } else {
                    ""
                }
            );
        },
    )
}

fn attempt_once(
    agent: &ureq::Agent,
    url: &str,
    auth: &str,
    seen: Option<&str>,
    remaining: Duration,
    cap: u64,
) -> Outcome {
    let budget = remaining.min(ATTEMPT);
    let mut req = agent
        .get(url)
        .config()
        .timeout_global(Some(budget))
        .timeout_connect(Some(budget.min(CONNECT)))
        .build()
        .header("Authorization", auth);
    if let Some(etag) = seen {
        req = req.header("If-None-Match", etag);
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(e) => return classify(e),
    };
    let status = resp.status().as_u16();
    match status {
        200 => {}
        304 if seen.is_some() => return Attempt::Done(None),
        401 | 403 => {
            return Attempt::Fatal(Error::Denied(format!(
                "the secrets service refused the bootstrap token (HTTP {status}): it is unknown, revoked or expired"
            )))
        }
        404 => {
            return Attempt::Fatal(Error::Config(
                "LIVEKIT_SECRETS_URL: the secrets service has nothing at this URL (HTTP 404)".into(),
            ))
        }
        408 | 425 | 429 | 500 | 502 | 503 | 504 => {
            return Attempt::Transient(format!("HTTP {status}"), retry_after(resp.headers()));
        }
        _ => {
            return Attempt::Fatal(Error::Unavailable(format!(
                "the secrets service answered HTTP {status}, which agent-init does not expect"
            )))
        }
    }
    if let Some(len) = resp.body().content_length() {
        if len > cap {
            return Attempt::Fatal(too_big(cap));
        }
    }
    let mut body = SecretBytes::new(Vec::new());
    match resp.body_mut().with_config().limit(cap).read_to_vec() {
        Ok(v) => body = SecretBytes::new(v),
        Err(ureq::Error::BodyExceedsLimit(_)) => return Attempt::Fatal(too_big(cap)),
        Err(e) => {
            drop(body);
            return Attempt::body_cut_short(sort_transport_error(e, &AGENT_INIT));
        }
    }
    // An ETag is echoed in If-None-Match and printed: printable ASCII only.
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| (0x21..0x7f).contains(&b)))
        .map(str::to_string);
    Attempt::Done(Some((body, etag)))
}

fn too_big(cap: u64) -> Error {
    Error::Refused(format!(
        "the bundle is larger than the cap of {cap} bytes (AGENT_INIT_MAX_BUNDLE); not retried"
    ))
}

/// Sorts a transport error into "try again" or "stop now", naming its class only.
fn classify(e: ureq::Error) -> Outcome {
    sort_transport_error(e, &AGENT_INIT).into()
}

/// agent-init's names for its own fetch.
const AGENT_INIT: Endpoint = Endpoint {
    url: "LIVEKIT_SECRETS_URL",
    check: "LIVEKIT_SECRETS_URL and AGENT_INIT_CA_FILE",
    proxies: "HTTPS_PROXY/ALL_PROXY",
    doing: "fetching from the secrets service",
};

/// Whose request failed: the names a transport error's message points at.
pub struct Endpoint {
    /// The setting that holds the URL.
    pub url: &'static str,
    /// What to check when the certificate does not verify.
    pub check: &'static str,
    /// The proxy variables this client reads.
    pub proxies: &'static str,
    /// What was being done, for an error of no known class.
    pub doing: &'static str,
}

/// A transport error, sorted: worth another attempt (what happened), or not.
pub enum TransportFailure {
    Transient(String),
    Fatal(Error),
}

/// Sorts a ureq transport error into "try again" or "stop now", naming its
/// class only, never a value: the one table for agent-init's fetch and the
/// agent-secrets CLI.
pub fn sort_transport_error(e: ureq::Error, at: &Endpoint) -> TransportFailure {
    use ureq::Error as E;
    use TransportFailure::{Fatal, Transient};
    if is_not_loopback(&e) {
        return Fatal(Error::Config(format!(
            "{} uses http:// to a name that resolves to an address that is not loopback (127.0.0.0/8, ::1); nothing was sent; use https://",
            at.url
        )));
    }
    if let E::Io(io) = &e {
        // Out of descriptors or memory is this host's failure, not the
        // service's: waiting will not fix it.
        if matches!(
            io.raw_os_error(),
            Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOMEM | nix::libc::ENOBUFS)
        ) {
            return Fatal(Error::Internal(format!(
                "the fetch failed on this host: {}",
                crate::sys::io_reason(io)
            )));
        }
    }
    match tls_cause(e) {
        E::Rustls(rustls::Error::InvalidCertificate(c)) => Fatal(Error::Config(format!(
            "the secrets service's TLS certificate does not verify ({}); check {}",
            cert_reason(&c),
            at.check
        ))),
        E::Rustls(other) => Transient(format!("TLS error: {other}")),
        E::Timeout(t) => Transient(format!("timed out ({t})")),
        E::HostNotFound => Transient("host not found".into()),
        E::ConnectionFailed => Transient("connection failed".into()),
        E::Io(io) => Transient(crate::sys::io_reason(&io)),
        E::Protocol(p) => Transient(format!("HTTP protocol error: {p}")),
        E::ConnectProxyFailed(m) => Transient(format!("proxy CONNECT failed: {m}")),
        E::BodyStalled => Transient("body stalled".into()),
        E::InvalidProxyUrl => Fatal(Error::Config(format!(
            "the proxy URL in {} is not valid",
            at.proxies
        ))),
        E::BadUri(_) | E::Http(_) => Fatal(Error::Config(format!("{} is not a valid URL", at.url))),
        E::BodyExceedsLimit(_) => Fatal(Error::Refused("bundle over the size cap".into())),
        E::LargeResponseHeader(_, _) => Transient("response headers too large".into()),
        other => Fatal(Error::Unavailable(format!("{} failed: {other}", at.doing))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_inside_io_errors_stop_at_once_with_78() {
        // The shape in which ureq reports a failed handshake.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        match classify(ureq::Error::Io(io)) {
            Attempt::Fatal(e) => {
                assert_eq!(e.exit_code(), 78);
                assert!(e.to_string().contains("unknown issuer"), "{e}");
            }
            _ => panic!("a certificate error must not be retried"),
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            classify(ureq::Error::Io(refused)),
            Attempt::Transient(..)
        ));
    }

    #[test]
    fn no_proxy_matches_hosts_and_domains_as_curl_does() {
        let list = "internal.example, .corp.test,*.svc.local , 10.1.2.3";
        for yes in [
            "internal.example",
            "a.internal.example",
            "corp.test",
            "x.y.corp.test",
            "svc.local",
            "db.svc.local",
            "10.1.2.3",
            "internal.example.",
        ] {
            assert!(exempted_by(list, yes), "{yes}");
        }
        for no in [
            "example",
            "xinternal.example",
            "corp.test.evil",
            "10.1.2.33",
            "",
        ] {
            assert!(!exempted_by(list, no), "{no}");
        }
        assert!(exempted_by("*", "anything.example"));
        assert!(!exempted_by("", "anything.example"));
        assert!(!exempted_by(" , ,", "anything.example"));
    }
}
