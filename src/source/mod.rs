//! Where the sealed bundle comes from (PROTOCOL.md §4): the secrets service
//! over HTTPS, or a file mounted into the container.
//!
//! After [`fetch`] returns, the caller holds the whole body, at most
//! `max_bundle` bytes, in a zeroizing buffer; a file was read no further
//! than the cap, a connection at most 16 KiB ahead of it.
//! `http://` is accepted only for loopback hosts. What the body means is the
//! next step's business ([`crate::protocol::bundle`]).

mod file;
mod https;
mod retry;
mod tls;

pub use file::{read_config, read_token_file, token_text};

use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::protocol::token::Token;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

pub use https::{sort_transport_error, Endpoint, Resolver, TransportFailure};
pub use retry::{parse_retry_after, retry_after, with_retries, Attempt, Backoff};

/// A secrets URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsUrl {
    /// `https://…`, or `http://` to a loopback host.
    Http(String),
    /// `file:///absolute/path`.
    File(PathBuf),
}

impl SecretsUrl {
    /// Checks a `LIVEKIT_SECRETS_URL` value. A bad one is a configuration error (78).
    pub fn parse(url: &str) -> Result<SecretsUrl> {
        SecretsUrl::parse_named(url, "LIVEKIT_SECRETS_URL")
    }

    /// [`SecretsUrl::parse`] for a URL that messages call `what` (the
    /// agent-secrets CLI checks its `--service` with it: one rule for both).
    pub fn parse_named(url: &str, what: &str) -> Result<SecretsUrl> {
        let url = url.trim();
        let bad = |why: &str| Error::Config(format!("{what} {why}"));
        let lower = url.to_ascii_lowercase();
        if let Some(path) = lower.strip_prefix("file://").map(|_| &url[7..]) {
            if !path.starts_with('/') {
                return Err(bad("must be file:///absolute/path (no host)"));
            }
            if path.contains(['?', '#']) {
                return Err(bad("is a file URL with a query or fragment"));
            }
            let path = percent_decode(path).ok_or_else(|| bad("has a bad %-escape in its path"))?;
            return Ok(SecretsUrl::File(PathBuf::from(
                std::ffi::OsString::from_vec(path),
            )));
        }
        let (rest, https) = if let Some(r) = lower.strip_prefix("https://") {
            (r, true)
        } else if let Some(r) = lower.strip_prefix("http://") {
            (r, false)
        } else {
            return Err(bad(
                "must start with https://, http:// (loopback only) or file:///",
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad("must not carry credentials (user:password@)"));
        }
        let host = host_of(authority);
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        if !https && !is_loopback(host) {
            return Err(bad(
                "uses http:// to a host that is not loopback; use https://",
            ));
        }
        Ok(SecretsUrl::Http(url.to_string()))
    }
}

/// A URL path with its `%XX` escapes decoded (RFC 3986 §2.1); `None` for a
/// `%` not followed by two hex digits, or an escaped NUL.
fn percent_decode(path: &str) -> Option<Vec<u8>> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let byte = hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?;
            if byte == 0 {
                return None;
            }
            out.push(byte as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether an `http://` or `https://` URL names a loopback host. A fetch
/// from one never goes through a proxy: the proxy's loopback is not this
/// container's, and plain `http://` is allowed only because the request
/// never leaves the host.
pub fn is_loopback_url(url: &str) -> bool {
    is_loopback(&host_of_url(url))
}

/// The host of an `http://` or `https://` URL, lower-cased (empty for others).
fn host_of_url(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    host_of(authority).to_string()
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// 127.0.0.0/8, ::1 and `localhost`.
fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host == "localhost." {
        return true;
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    false
}

/// How to fetch: the knobs of §4.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub url: SecretsUrl,
    /// Extra trusted CA certificates (PEM), added to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// The overall deadline for every attempt and wait together.
    pub deadline: Duration,
    /// Largest body accepted.
    pub max_bundle: u64,
}

/// Fetches the sealed bundle.
pub fn fetch(opts: &FetchOptions, token: &Token) -> Result<Fetched> {
    fetch_if_changed(opts, token, None)?
        .ok_or_else(|| Error::Internal("an unconditional fetch answered 304".into()))
}

/// A sealed bundle and the version that names it in logs and in the next
/// conditional fetch: the service's `ETag`, or `sha256:` and the start of
/// the body's digest (a `file://` bundle, a service that sends no ETag).
pub struct Fetched {
    pub body: SecretBytes,
    pub version: String,
}

/// Fetches the bundle unless it is still `seen` (a version from [`Fetched`]):
/// over HTTPS with `If-None-Match` (304 is `None`), from a file by content
/// (a Kubernetes ConfigMap update swaps a symlink and keeps the mtime).
pub fn fetch_if_changed(
    opts: &FetchOptions,
    token: &Token,
    seen: Option<&str>,
) -> Result<Option<Fetched>> {
    let (body, etag) = match &opts.url {
        SecretsUrl::File(path) => (file::read(path, opts.max_bundle, opts.deadline)?, None),
        SecretsUrl::Http(url) => match https::fetch(url, opts, token, seen)? {
            Some(got) => got,
            None => return Ok(None),
        },
    };
    let version = etag.unwrap_or_else(|| {
        let d = ring::digest::digest(&ring::digest::SHA256, body.expose());
        let hex: String = d.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    });
    if seen == Some(version.as_str()) {
        return Ok(None);
    }
    Ok(Some(Fetched { body, version }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_and_file_urls_are_accepted() {
        for ok in [
            "https://secrets.example.com/v1/agents/a",
            "HTTPS://Example.com",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/x",
            "http://localhost:1/x",
            "http://[::1]:9/x",
        ] {
            assert!(
                matches!(SecretsUrl::parse(ok), Ok(SecretsUrl::Http(_))),
                "{ok}"
            );
        }
        assert_eq!(
            SecretsUrl::parse("file:///run/bundle.json").unwrap(),
            SecretsUrl::File("/run/bundle.json".into())
        );
    }

    #[test]
    fn file_url_paths_are_percent_decoded() {
        assert_eq!(
            SecretsUrl::parse("file:///run/my%20bundle%2Ejson").unwrap(),
            SecretsUrl::File("/run/my bundle.json".into())
        );
        assert_eq!(
            SecretsUrl::parse("file:///run/%C3%A9t%c3%a9").unwrap(),
            SecretsUrl::File("/run/\u{e9}t\u{e9}".into())
        );
        for bad in [
            "file:///run/%",
            "file:///run/%2",
            "file:///run/%zz",
            "file:///a%00b",
        ] {
            assert_eq!(SecretsUrl::parse(bad).unwrap_err().exit_code(), 78, "{bad}");
        }
    }

    #[test]
    fn loopback_urls_are_recognised_for_bypassing_proxies() {
        for yes in [
            "http://127.0.0.1:8080/x",
            "https://LOCALHOST/x",
            "http://[::1]:9/x",
        ] {
            assert!(is_loopback_url(yes), "{yes}");
        }
        for no in [
            "https://secrets.example.com/x",
            "https://127.0.0.1.example.com/",
            "file:///run/b.json",
        ] {
            assert!(!is_loopback_url(no), "{no}");
        }
    }

    #[test]
    fn plain_http_to_other_hosts_and_odd_urls_are_config_errors() {
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/x",
            "http://127.0.0.1.example.com/x",
            "http://localhost.evil.com/",
            "ftp://x/y",
            "file://host/run/b.json",
            "file:relative",
            "https://user:pw@example.com/",
            "https:///nohost",
            "",
        ] {
            let e = SecretsUrl::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 78, "{bad}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }
}
