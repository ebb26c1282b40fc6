//! The check behind the `service_request` fuzz target: any request head and
//! body, through agent-secrets' request parser (`serve::http::parse`, what
//! runs before the store on every request).
//!
//! Kept out of `lib.rs` because only this target links agent-secrets (and
//! its async stack); `fuzz_targets/service_request.rs` and
//! `service/tests/fuzz_replay.rs` include this file by path.
//!
//! Asserts: no input panics; a refusal is a 4xx with a JSON `error`, and
//! every 401 is the same bytes; no answer repeats the admin key or the
//! presented Authorization; an accepted admin request carried exactly the
//! admin key; an accepted PUT is within the caps and re-serializes to a body
//! that parses to the same request.

use agent_secrets::serve::http::{self, AdminKey, Headers, Op};
use arbitrary::{Arbitrary, Unstructured};

/// The admin key of the fuzzed service.
pub const ADMIN_KEY: &str = "fuzz-admin-key-0123456789abcdef";

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Put,
    Delete,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    Bundle,
    Tokens,
    Token(String),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Admin,
    AdminWith(Vec<u8>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: Method,
    path: Path,
    auth: Auth,
    if_match: Option<Vec<u8>>,
    if_none_match: Option<Vec<u8>>,
    body: Vec<u8>,
}

pub fn service_request(data: &[u8]) {
    let Ok(req) = Request::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let method = match &req.method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Other(m) => m.as_str(),
    };
    let path = match &req.path {
        Path::Bundle => "/v1/bundle".to_string(),
        Path::Tokens => "/v1/tokens".to_string(),
        Path::Token(id) => format!("/v1/tokens/{id}"),
        Path::Other(p) => p.clone(),
    };
    let auth: Option<Vec<u8>> = match &req.auth {
        Auth::None => None,
        Auth::Admin => Some(format!("Bearer {ADMIN_KEY}").into_bytes()),
        Auth::AdminWith(extra) => {
            let mut v = format!("Bearer {ADMIN_KEY}").into_bytes();
            v.extend_from_slice(extra);
            Some(v)
        }
        Auth::Raw(v) => Some(v.clone()),
    };
    let headers = Headers {
        authorization: auth.as_deref(),
        if_match: req.if_match.as_deref(),
        if_none_match: req.if_none_match.as_deref(),
    };
    let admin = AdminKey::new(ADMIN_KEY);
    match http::parse(method, &path, &headers, &req.body, &admin) {
        Err(reply) => {
            assert!(
                (400..500).contains(&reply.status),
                "status {}",
                reply.status
            );
            let body: serde_json::Value =
                serde_json::from_slice(&reply.body).expect("a refusal is JSON");
            assert!(body["error"].is_string());
            if reply.status == 401 {
                assert_eq!(reply.body, http::Reply::unauthorized().body);
            }
            let text = String::from_utf8_lossy(&reply.body);
            assert!(!text.contains(ADMIN_KEY), "a refusal repeats the admin key");
            if let Some(a) = &auth {
                if a.len() >= 12 {
                    assert!(
                        !reply.body.windows(a.len()).any(|w| w == a.as_slice()),
                        "a refusal repeats the Authorization header"
                    );
                }
            }
        }
        Ok(Op::Fetch { id, .. }) => {
            assert_eq!(method, "GET");
            assert_eq!(id.len(), 22);
        }
        Ok(op) => {
            assert_eq!(
                auth.as_deref(),
                Some(format!("Bearer {ADMIN_KEY}").as_bytes()),
                "an admin request ran without the admin key"
            );
            if let Op::Put { request, .. } = op {
                assert!(req.body.len() <= http::MAX_BODY);
                let again = serde_json::to_vec(&request).unwrap();
                let reparsed = http::put_body(&again).expect("an accepted PUT re-serializes");
                assert_eq!(reparsed, request);
                assert!(http::bundle_json(&request.bundle).len() <= http::MAX_BUNDLE);
            }
        }
    }
}
