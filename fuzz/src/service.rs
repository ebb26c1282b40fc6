//! The check behind the `service_request` fuzz target: any request head and
//! body, through agent-secrets' request parser (`serve::http::parse`, what
//! runs before the store on every request).
//!
//! Kept out of `lib.rs` because only this target links agent-secrets (and
//! its async stack); `fuzz_targets/service_request.rs` and
//! `service/tests/fuzz_replay.rs` include this file by path.
//!
//! The input is text (see [`split`]): five lines, then the body.
//!
//! Asserts: no input panics; a refusal is a 4xx with a JSON `error`, and
//! every 401 is the same bytes; no answer repeats the admin key or the
//! presented Authorization; an accepted admin request carried exactly the
//! admin key; an accepted PUT is within the caps and re-serializes to a body
//! that parses to the same request.

use agent_secrets::serve::http::{self, AdminKey, Headers, Op};

/// The admin key of the fuzzed service.
pub const ADMIN_KEY: &str = "fuzz-admin-key-0123456789abcdef";

/// Splits the input into the request's parts: five lines (method, path,
/// Authorization, If-Match, If-None-Match), then the body. A header line
/// `-` means the header is absent; an Authorization line starting with
/// `@admin` stands for `Bearer <ADMIN_KEY>` followed by the rest of the line,
/// so the fuzzer reaches past the admin check. Text in, so seeds are plain
/// requests and the JSON dictionary applies to the body.
struct Request<'a> {
    method: &'a [u8],
    path: &'a [u8],
    auth: Option<Vec<u8>>,
    if_match: Option<&'a [u8]>,
    if_none_match: Option<&'a [u8]>,
    body: &'a [u8],
}

fn split<'a>(data: &'a [u8]) -> Option<Request<'a>> {
    let mut rest = data;
    let mut line = || {
        let i = rest.iter().position(|&b| b == b'\n')?;
        let (l, r) = (&rest[..i], &rest[i + 1..]);
        rest = r;
        Some(l)
    };
    let (method, path, auth, if_match, if_none_match) =
        (line()?, line()?, line()?, line()?, line()?);
    let header = |h: &'a [u8]| (h != b"-").then_some(h);
    let auth = header(auth).map(|a| match a.strip_prefix(b"@admin") {
        Some(extra) => [format!("Bearer {ADMIN_KEY}").as_bytes(), extra].concat(),
        None => a.to_vec(),
    });
    Some(Request {
        method,
        path,
        auth,
        if_match: header(if_match),
        if_none_match: header(if_none_match),
        body: rest,
    })
}

/// What the parser made of an input, for the replay's own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unsplit,
    Refused(u16),
    Fetch,
    Put,
    OtherAdmin,
}

pub fn service_request(data: &[u8]) -> Outcome {
    let Some(req) = split(data) else {
        return Outcome::Unsplit;
    };
    // hyper hands the handlers a method and a path that are valid UTF-8.
    let (Ok(method), Ok(path)) = (
        std::str::from_utf8(req.method),
        std::str::from_utf8(req.path),
    ) else {
        return Outcome::Unsplit;
    };
    let auth = req.auth.clone();
    let headers = Headers {
        authorization: auth.as_deref(),
        if_match: req.if_match,
        if_none_match: req.if_none_match,
    };
    let admin = AdminKey::new(ADMIN_KEY);
    match http::parse(method, path, &headers, req.body, &admin) {
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
            // Reasons are printable ASCII, and every 401 is the constant
            // checked above: a header that is itself such text (the fuzzer
            // once sent `ror":"unauthorized"}`) proves nothing, so only a
            // header with a byte no reason has is looked for.
            if let Some(a) = &auth {
                let foreign = a.iter().any(|&b| !(0x20..0x7f).contains(&b));
                if a.len() >= 12 && foreign && reply.status != 401 {
                    assert!(
                        !reply.body.windows(a.len()).any(|w| w == a.as_slice()),
                        "a refusal repeats the Authorization header"
                    );
                }
            }
            Outcome::Refused(reply.status)
        }
        Ok(Op::Fetch { id, .. }) => {
            assert_eq!(method, "GET");
            assert_eq!(id.len(), 22);
            Outcome::Fetch
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
                return Outcome::Put;
            }
            Outcome::OtherAdmin
        }
    }
}
