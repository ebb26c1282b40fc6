//! The CLI's HTTP client for the management API (PROTOCOL.md §10).
//!
//! Blocking ureq 3 over rustls with ring, as agent-init fetches: the built-in
//! web roots plus `--ca-file`, no redirects followed (the admin key goes to
//! no other host), no proxy for a loopback service. Transient failures
//! (refused or reset connections, timeouts, 408, 425, 429, 500, 502, 503,
//! 504) are retried with agent-init's backoff (full jitter, on top of any
//! `Retry-After`) until one overall deadline. Every other answer is handed
//! back to the verb, which knows what its statuses mean.
//!
//! Guarantees: the admin key is held in a zeroizing buffer and appears in no
//! message; a response body is never read past its cap; no attempt runs past
//! the deadline.

use agent_init::base::error::{Error, Result};
use agent_init::base::sensitive::SecretString;
use agent_init::source::{
    is_loopback_url, retry_after, sort_transport_error, with_retries, Attempt, Endpoint, Resolver,
    SecretsUrl,
};
use std::path::Path;
use std::time::{Duration, Instant};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// One attempt's own limit, inside the overall deadline.
const ATTEMPT: Duration = Duration::from_secs(30);
/// Connecting (TCP and TLS) gets this much of an attempt.
const CONNECT: Duration = Duration::from_secs(5);

/// A checked service base URL: `https://HOST[:PORT][/PREFIX]`, or `http://`
/// to a loopback host, without a trailing `/`. The check is agent-init's
/// own (`SecretsUrl`), and at connect time agent-init's resolver refuses a
/// plain `http://` name that resolves to an address that is not loopback,
/// before anything is sent (see [`Admin::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

const SERVICE: &str = "--service (AGENT_SECRETS_URL)";

impl ServiceUrl {
    /// Checks `--service` / `AGENT_SECRETS_URL` (78 when it is not usable).
    pub fn parse(url: &str) -> Result<ServiceUrl> {
        let url = url.trim();
        let bad = |why: &str| Error::Config(format!("{SERVICE} {why}"));
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(bad(
                "must start with https:// (or http:// to a loopback host)",
            ));
        }
        if url.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        match SecretsUrl::parse_named(url, SERVICE)? {
            SecretsUrl::Http(u) => Ok(ServiceUrl(u.trim_end_matches('/').to_string())),
            SecretsUrl::File(_) => Err(bad("must be an https:// or http:// URL")),
        }
    }

    /// The base URL, as given (without a trailing `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL agent-init fetches from (`LIVEKIT_SECRETS_URL`).
    pub fn bundle_url(&self) -> String {
        format!("{}/v1/bundle", self.0)
    }

    fn is_loopback(&self) -> bool {
        is_loopback_url(&self.0)
    }
}

/// One answer of the service.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON of type `T`; a body that is not is the service's fault (69).
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Unavailable(format!(
                "the secrets service answered {what} with a body that is not the expected JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// The `reason` the service gives for a 4xx, for a message; only when it is
    /// short printable text (the service never holds a value to leak, but a
    /// message must not carry control characters either).
    pub fn reason(&self) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                ["reason", "error", "message"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(|r| r.as_str()).map(str::to_string))
            })
            .unwrap_or_default();
        let clean: String = text
            .chars()
            .take(200)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if clean.is_empty() {
            String::new()
        } else {
            format!(": {clean}")
        }
    }
}

/// The management API of one service, with its admin key.
pub struct Admin {
    base: ServiceUrl,
    agent: ureq::Agent,
    auth: SecretString,
    deadline: Duration,
}

/// What one attempt came to.
type Outcome = Attempt<Reply>;

impl Admin {
    /// A client for `base`, presenting the admin key read from `key_file`.
    pub fn new(
        base: ServiceUrl,
        key_file: &Path,
        ca_file: Option<&Path>,
        deadline: Duration,
    ) -> Result<Admin> {
        let key = read_admin_key(key_file)?;
        let mut auth = String::with_capacity(7 + key.len());
        auth.push_str("Bearer ");
        auth.push_str(key.expose());
        drop(key);
        let mut config = ureq::Agent::config_builder();
        if base.is_loopback() {
            config = config.proxy(None);
        }
        let config = config
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("agent-secrets/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .accept_encoding("identity")
            .tls_config(
                TlsConfig::builder()
                    .root_certs(root_certs(ca_file)?)
                    .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .build(),
            )
            .build();
        // agent-init's resolver: a plain http:// name must resolve to
        // loopback addresses only, or nothing is sent (the admin key in clear).
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            Resolver::for_url(base.as_str()),
        );
        Ok(Admin {
            base,
            agent,
            auth: SecretString::new(auth),
            deadline,
        })
    }

    /// The service's base URL.
    pub fn base(&self) -> &ServiceUrl {
        &self.base
    }

    /// `GET path`.
    pub fn get(&self, path: &str, cap: u64) -> Result<Reply> {
        self.send("GET", path, &[], None, cap)
    }

    /// `PUT path` with a JSON body and extra headers.
    pub fn put(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Reply> {
        self.send("PUT", path, headers, Some(body), 1 << 20)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Reply> {
        self.send("DELETE", path, &[], None, 1 << 20)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        cap: u64,
    ) -> Result<Reply> {
        let start = Instant::now();
        let deadline = start + self.deadline;
        let url = format!("{}{path}", self.base.0);
        with_retries(
            start,
            deadline,
            "AGENT_SECRETS_TIMEOUT",
            |_, remaining| self.attempt(method, &url, headers, body, remaining, cap),
            |attempt, what, wait, _| {
                crate::cli::note(&format!(
                    "{method} {path}: attempt {attempt} failed ({what}); retrying in {:.3}s",
                    wait.as_secs_f64()
                ))
            },
        )
    }

    fn attempt(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        remaining: Duration,
        cap: u64,
    ) -> Outcome {
        let budget = remaining.min(ATTEMPT);
        let auth = self.auth.expose();
        let result = match (method, body) {
            ("PUT", Some(b)) => {
                let mut req = self
                    .agent
                    .put(url)
                    .config()
                    .timeout_global(Some(budget))
                    .timeout_connect(Some(budget.min(CONNECT)))
                    .build()
                    .header("Authorization", auth)
                    .header("Content-Type", "application/json");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send(b)
            }
            _ => {
                let mut req = if method == "DELETE" {
                    self.agent.delete(url)
                } else {
                    self.agent.get(url)
                }
                .config()
                .timeout_global(Some(budget))
                .timeout_connect(Some(budget.min(CONNECT)))
                .build()
                .header("Authorization", auth);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let status = resp.status().as_u16();
        if matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504) {
            return Attempt::Transient(format!("HTTP {status}"), retry_after(resp.headers()));
        }
        match resp.body_mut().with_config().limit(cap).read_to_vec() {
            Ok(body) => Attempt::Done(Reply { status, body }),
            Err(ureq::Error::BodyExceedsLimit(_)) => Attempt::Fatal(Error::Unavailable(format!(
                "the secrets service answered with a body over {cap} bytes"
            ))),
            Err(e) => Attempt::body_cut_short(sort_transport_error(e, &CLI)),
        }
    }
}

/// Reads the admin key: the file's text, surrounding whitespace trimmed.
pub fn read_admin_key(path: &Path) -> Result<SecretString> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "--admin-key-file (AGENT_SECRETS_ADMIN_KEY_FILE) {}: {}",
            path.display(),
            agent_init::sys::io_reason(&e)
        ))
    })?);
    let text = std::str::from_utf8(&bytes)
        .ok()
        .map(|t| t.trim_matches(|c: char| c.is_ascii_whitespace()))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Error::Config(format!(
                "--admin-key-file {}: does not hold an admin key (one line of printable ASCII)",
                path.display()
            ))
        })?;
    Ok(SecretString::new(text.to_string()))
}

fn root_certs(ca_file: Option<&Path>) -> Result<RootCerts> {
    let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()))
        .collect();
    if let Some(path) = ca_file {
        let bad = |why: String| Error::Config(format!("--ca-file {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(agent_init::sys::io_reason(&e)))?;
        let mut n = 0;
        for c in ureq::tls::parse_pem(&pem) {
            match c {
                Ok(ureq::tls::PemItem::Certificate(c)) => {
                    certs.push(c.to_owned());
                    n += 1;
                }
                Ok(_) => {}
                Err(_) => return Err(bad("not valid PEM".into())),
            }
        }
        if n == 0 {
            return Err(bad("holds no certificate".into()));
        }
    }
    Ok(RootCerts::Specific(std::sync::Arc::new(certs)))
}

/// The CLI's names in agent-init's transport error table.
const CLI: Endpoint = Endpoint {
    url: SERVICE,
    check: "--service and --ca-file",
    proxies: "HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
    doing: "talking to the secrets service",
};

/// Sorts a transport error into "try again" or "stop now": agent-init's
/// table, with the CLI's names.
fn classify(e: ureq::Error) -> Outcome {
    sort_transport_error(e, &CLI).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_that_does_not_verify_or_a_bad_url_stops_with_78_naming_the_clis_flags() {
        // A failed handshake, in the shape ureq reports it.
        let handshake = ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let cases: [(ureq::Error, &[&str]); 2] = [
            (
                handshake,
                &["unknown issuer", "check --service and --ca-file"],
            ),
            (
                ureq::Error::BadUri("x".into()),
                &["--service (AGENT_SECRETS_URL) is not a valid URL"],
            ),
        ];
        for (error, wanted) in cases {
            let Attempt::Fatal(e) = classify(error) else {
                panic!("{wanted:?}: not to be retried");
            };
            assert_eq!(e.exit_code(), 78, "{e}");
            for w in wanted {
                assert!(e.to_string().contains(w), "{e}");
            }
        }
    }

    #[test]
    fn service_urls_need_https_except_on_loopback() {
        for good in [
            "https://secrets.example.com",
            "https://secrets.example.com:8443/prefix/",
            "http://127.0.0.1:7000",
            "http://localhost:7000",
            "http://[::1]:7000",
        ] {
            ServiceUrl::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "http://secrets.example.com",
            "http://10.0.0.1:7000",
            "ftp://x",
            "https://user:pw@x",
            "https://",
            "https://x/?a",
            "secrets.example.com",
            "file:///run/bundle.json",
            "http://localhost.evil.example:7000",
        ] {
            assert_eq!(ServiceUrl::parse(bad).unwrap_err().exit_code(), 78, "{bad}");
        }
        assert_eq!(
            ServiceUrl::parse("https://s.example:8443/p/")
                .unwrap()
                .bundle_url(),
            "https://s.example:8443/p/v1/bundle"
        );
        assert!(ServiceUrl::parse("http://127.0.0.1:1")
            .unwrap()
            .is_loopback());
        assert!(!ServiceUrl::parse("https://s.example")
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn admin_key_file_is_trimmed_and_never_echoed() {
        let dir = std::env::temp_dir().join(format!("agent-secrets-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        std::fs::write(&p, "  admin-key-value-123\n").unwrap();
        assert_eq!(read_admin_key(&p).unwrap().expose(), "admin-key-value-123");
        std::fs::write(&p, "two words admin-key-value-123\n").unwrap();
        let e = read_admin_key(&p).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(!e.to_string().contains("admin-key-value"), "{e}");
        let e = read_admin_key(&dir.join("missing")).unwrap_err();
        assert_eq!(e.exit_code(), 78);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reasons_are_short_and_free_of_control_characters() {
        let r = Reply {
            status: 400,
            body: br#"{"reason":"bad\nid"}"#.to_vec(),
        };
        assert_eq!(r.reason(), ": bad?id");
        let r = Reply {
            status: 400,
            body: b"not json".to_vec(),
        };
        assert_eq!(r.reason(), "");
    }
}
