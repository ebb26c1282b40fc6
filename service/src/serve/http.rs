//! The requests of PROTOCOL.md §4 and §10: parse (pure, fuzzed), then run
//! against the store.
//!
//! [`parse`] turns a request's method, path, headers and body into an
//! [`Op`] or the answer that refuses it; it never touches the store, so the
//! fuzz target can throw any request shape at it. [`execute`] runs an `Op`.
//! Every answer is built here, with the rules that make them safe to send:
//! every 401 is the same bytes whatever was wrong (unknown ID, revoked,
//! wrong auth_key, wrong admin key), and no answer or log line repeats a
//! header, a key or a body.

use super::store::{Record, Store, Write};
use crate::api::{
    Bundle, ErrorResponse, ListEntry, ListResponse, Manifest, PutRequest, PutResponse,
    TokenResponse, BUNDLE_PATH, TOKENS_PATH,
};
use agent_init::protocol::token::{b64u, b64u_decode, parse_authorization, parse_id};
use ring::digest::{digest, SHA256};
use std::collections::HashSet;
use subtle::ConstantTimeEq;

/// The largest sealed bundle a PUT may store: agent-init's default cap
/// (§4), so every stored bundle can be fetched.
pub const MAX_BUNDLE: usize = agent_init::protocol::bundle::DEFAULT_MAX_BUNDLE as usize;
/// The largest manifest: names and dates only.
pub const MAX_MANIFEST: usize = 1 << 20;
/// The largest PUT body: a bundle, a manifest, and the JSON around them.
pub const MAX_BODY: usize = MAX_BUNDLE + MAX_MANIFEST + 4096;
/// The longest date string a manifest may carry.
const MAX_DATE: usize = 64;

/// The only 401 body: it says nothing about why.
const UNAUTHORIZED: &str = r#"{"error":"unauthorized"}"#;

/// An answer, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// For the log line: the token's ID and the version concerned, when known.
    pub id: Option<String>,
    pub version: Option<i64>,
}

impl Reply {
    fn json(status: u16, body: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(body).expect("API types serialize"),
            id: None,
            version: None,
        }
    }

    /// `{"error": reason}` with `status`.
    pub fn error(status: u16, reason: impl Into<String>) -> Reply {
        Reply::json(
            status,
            &ErrorResponse {
                error: reason.into(),
            },
        )
    }

    /// The one 401.
    pub fn unauthorized() -> Reply {
        Reply {
            status: 401,
            headers: vec![
                ("content-type", "application/json".into()),
                ("www-authenticate", "Bearer".into()),
            ],
            body: UNAUTHORIZED.as_bytes().to_vec(),
            id: None,
            version: None,
        }
    }

    /// 503 with `Retry-After`, for a full queue or a database that fails.
    pub fn unavailable(retry_after: u64, reason: &str) -> Reply {
        let mut r = Reply::error(503, reason);
        r.headers.push(("retry-after", retry_after.to_string()));
        r
    }

    fn with(mut self, id: &str, version: Option<i64>) -> Reply {
        self.id = Some(id.to_string());
        self.version = version;
        self
    }
}

/// The headers a handler reads, as raw bytes (any bytes a client sends).
#[derive(Debug, Default, Clone)]
pub struct Headers<'a> {
    pub authorization: Option<&'a [u8]>,
    pub if_match: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
}

/// A PUT's precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No header: create or replace.
    None,
    /// `If-None-Match: *`: create only.
    Create,
    /// `If-Match: <etag>, …` (or `*`): replace only that version.
    Match(Vec<String>),
}

/// A request that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// §4: `GET /v1/bundle`. `presented` is SHA-256 of the presented auth_key.
    Fetch {
        id: String,
        presented: [u8; 32],
        if_none_match: Option<Vec<String>>,
    },
    Put {
        id: String,
        precondition: Precondition,
        request: PutRequest,
    },
    Get {
        id: String,
    },
    List,
    Delete {
        id: String,
    },
}

impl Op {
    /// The ID the request names, for the log line.
    pub fn id(&self) -> Option<&str> {
        match self {
            Op::Fetch { id, .. } | Op::Put { id, .. } | Op::Get { id } | Op::Delete { id } => {
                Some(id)
            }
            Op::List => None,
        }
    }
}

/// The admin key, kept only as its SHA-256: comparing digests in constant
/// time takes the same time whatever the length or prefix presented.
pub struct AdminKey([u8; 32]);

impl AdminKey {
    pub fn new(key: &str) -> AdminKey {
        AdminKey(sha256(key.as_bytes()))
    }

    fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .map(sha256)
            .unwrap_or([0; 32]);
        // Compare even when there was no header, so both take one path.
        let equal: bool = presented.ct_eq(&self.0).into();
        equal && authorization.is_some()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// What the router needs before the body: the route, so `serve` knows
/// whether to read a body at all (only a PUT has one) and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Bundle,
    Token(&'a str),
    Tokens,
}

/// Matches the path (the query string is ignored), or 404.
pub fn route(path: &str) -> Result<Route<'_>, Reply> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path == BUNDLE_PATH {
        return Ok(Route::Bundle);
    }
    if path == TOKENS_PATH || path == "/v1/tokens/" {
        return Ok(Route::Tokens);
    }
    if let Some(id) = path
        .strip_prefix(TOKENS_PATH)
        .and_then(|r| r.strip_prefix('/'))
    {
        return Ok(Route::Token(id));
    }
    Err(Reply::error(404, "no such path"))
}

/// A request whose head (method, path, headers) parsed: ready to run, or a
/// PUT that still needs its body. The admin key is checked here, before any
/// body is read, so a caller without it can make the service read nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    Ready(Op),
    Put {
        id: String,
        precondition: Precondition,
    },
}

/// Parses a request into an [`Op`], or the answer that refuses it.
pub fn parse(
    method: &str,
    path: &str,
    headers: &Headers<'_>,
    body: &[u8],
    admin: &AdminKey,
) -> Result<Op, Reply> {
    match parse_head(method, path, headers, admin)? {
        Head::Ready(op) => Ok(op),
        Head::Put { id, precondition } => Ok(Op::Put {
            request: put_body(body)?,
            id,
            precondition,
        }),
    }
}

/// Parses a request's head.
pub fn parse_head(
    method: &str,
    path: &str,
    headers: &Headers<'_>,
    admin: &AdminKey,
) -> Result<Head, Reply> {
    let route = route(path)?;
    let allowed = |allow: &str| {
        let mut r = Reply::error(405, format!("method not allowed; allowed: {allow}"));
        r.headers.push(("allow", allow.to_string()));
        r
    };
    if let Route::Bundle = route {
        if method != "GET" {
            return Err(allowed("GET"));
        }
        let (id, auth_key) = headers
            .authorization
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(parse_authorization)
            .ok_or_else(Reply::unauthorized)?;
        return Ok(Head::Ready(Op::Fetch {
            id: b64u(&id),
            presented: sha256(&auth_key[..]),
            if_none_match: headers.if_none_match.map(etag_list).transpose()?,
        }));
    }
    // The admin API: the key first, so a caller without it learns nothing,
    // not even whether an ID is well formed.
    let allow = match route {
        Route::Tokens => "GET",
        _ => "GET, PUT, DELETE",
    };
    if !matches!(method, "GET" | "PUT" | "DELETE") || (route == Route::Tokens && method != "GET") {
        return Err(allowed(allow));
    }
    if !admin.accepts(headers.authorization) {
        return Err(Reply::unauthorized());
    }
    let id = match route {
        Route::Tokens => return Ok(Head::Ready(Op::List)),
        Route::Token(id) => check_id(id)?,
        Route::Bundle => unreachable!("answered above"),
    };
    match method {
        "GET" => Ok(Head::Ready(Op::Get { id })),
        "DELETE" => Ok(Head::Ready(Op::Delete { id })),
        _ => Ok(Head::Put {
            precondition: precondition(headers)?,
            id,
        }),
    }
}

fn check_id(id: &str) -> Result<String, Reply> {
    parse_id(id).map(|_| id.to_string()).ok_or_else(|| {
        Reply::error(
            400,
            "the token ID is not 22 characters of base64url naming 16 bytes",
        )
    })
}

fn precondition(h: &Headers<'_>) -> Result<Precondition, Reply> {
    match (h.if_match, h.if_none_match) {
        (Some(_), Some(_)) => Err(Reply::error(
            400,
            "send If-Match (to update) or If-None-Match: * (to create), not both",
        )),
        (None, Some(v)) if v.trim_ascii() == b"*" => Ok(Precondition::Create),
        (None, Some(_)) => Err(Reply::error(
            400,
            "a PUT takes only If-None-Match: * (create only)",
        )),
        (Some(v), None) => Ok(Precondition::Match(etag_list(v)?)),
        (None, None) => Ok(Precondition::None),
    }
}

/// An `If-Match` / `If-None-Match` value: `*` or a comma-separated list of
/// entity tags. A weak tag's `W/` is kept (it never equals a strong tag).
fn etag_list(v: &[u8]) -> Result<Vec<String>, Reply> {
    let v = std::str::from_utf8(v)
        .ok()
        .filter(|v| v.len() <= 4096)
        .ok_or_else(|| Reply::error(400, "a precondition header is not short ASCII"))?;
    let tags: Vec<String> = v
        .split(',')
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if tags.is_empty() {
        return Err(Reply::error(
            400,
            "a precondition header names no entity tag",
        ));
    }
    Ok(tags)
}

fn tags_match(tags: &[String], etag: &str, weak: bool) -> bool {
    tags.iter()
        .any(|t| t == "*" || t == etag || (weak && t.strip_prefix("W/") == Some(etag)))
}

/// Reads a PUT body: JSON of the §10 shape, within the caps, with a bundle
/// agent-init could open (format, a 12-byte nonce, a ciphertext with room
/// for its tag) and a manifest of names and dates.
pub fn put_body(body: &[u8]) -> Result<PutRequest, Reply> {
    if body.len() > MAX_BODY {
        return Err(Reply::error(
            413,
            format!("the body is over {MAX_BODY} bytes"),
        ));
    }
    let req: PutRequest = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Syntax => {
                "is not JSON".to_string()
            }
            serde_json::error::Category::Eof => "ends early".to_string(),
            // serde's message can quote the offending value; only the
            // missing-member one is kept, as it names a member.
            serde_json::error::Category::Data => {
                let m = e.to_string();
                match m.find("missing field") {
                    Some(i) => m[i..].split(" at line").next().unwrap_or("").to_string(),
                    None => "has a member of the wrong type".to_string(),
                }
            }
        };
        Reply::error(
            400,
            format!(
                "the body {what} (line {}, column {}); expected {{\"auth_key_sha256\", \"bundle\", \"manifest\"}}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let bad = |m: &str| Err(Reply::error(400, m.to_string()));
    if req.auth_key_sha256.len() != 43
        || b64u_decode(&req.auth_key_sha256).is_none_or(|d| d.len() != 32)
    {
        return bad("auth_key_sha256 is not b64u of 32 bytes");
    }
    let b = &req.bundle;
    if b.format != agent_init::protocol::bundle::FORMAT {
        return bad("bundle.format is not \"lkbt1\"");
    }
    if b.nonce.len() != 16 || b64u_decode(&b.nonce).is_none_or(|d| d.len() != 12) {
        return bad("bundle.nonce is not b64u of 12 bytes");
    }
    if bundle_json(b).len() > MAX_BUNDLE {
        return Err(Reply::error(
            413,
            format!("the bundle is over {MAX_BUNDLE} bytes, agent-init's cap"),
        ));
    }
    if b64u_decode(&b.ciphertext).is_none_or(|d| d.len() < 16) {
        return bad("bundle.ciphertext is not b64u of at least 16 bytes (the tag)");
    }
    check_manifest(&req.manifest)?;
    Ok(req)
}

fn check_manifest(m: &Manifest) -> Result<(), Reply> {
    if serde_json::to_vec(m).map_or(0, |v| v.len()) > MAX_MANIFEST {
        return Err(Reply::error(
            413,
            format!("the manifest is over {MAX_MANIFEST} bytes"),
        ));
    }
    let mut names = HashSet::new();
    for (i, s) in m.secrets.iter().enumerate() {
        let bad = |what: String| Err(Reply::error(400, format!("manifest.secrets[{i}]: {what}")));
        match s.kind.as_str() {
            "env" => {
                if let Err(why) = agent_init::protocol::rules::check_name(&s.name) {
                    return bad(format!("name: {why}"));
                }
                if s.env.is_some() {
                    return bad("an env secret has no \"env\" member".into());
                }
            }
            "file" => {
                if s.name.is_empty() || s.name.len() > agent_init::protocol::rules::MAX_NAME {
                    return bad("a file name is 1 to 70 characters".into());
                }
                if let Some(env) = &s.env {
                    if let Err(why) = agent_init::protocol::rules::check_name(env) {
                        return bad(format!("env: {why}"));
                    }
                }
            }
            _ => return bad("kind is neither \"env\" nor \"file\"".into()),
        }
        let (Some(created), Some(updated)) = (&s.created_at, &s.updated_at) else {
            return bad("created_at and updated_at are required".into());
        };
        if created.len() > MAX_DATE || updated.len() > MAX_DATE {
            return bad(format!("a date is over {MAX_DATE} characters"));
        }
        if !names.insert((s.kind == "file", s.name.as_str())) {
            return bad("the same name twice".into());
        }
    }
    Ok(())
}

/// The bundle as §4 serves it.
pub fn bundle_json(b: &Bundle) -> Vec<u8> {
    serde_json::to_vec(b).expect("a bundle serializes")
}

/// The ETag of a token's bundle: its version and its nonce, which is fresh
/// for every seal. Not secret. A revoked token has no bundle and a tag no
/// fetch carries.
pub fn etag(r: &Record) -> String {
    match &r.bundle {
        Some(b) => format!("\"{}-{}\"", r.version, b.nonce),
        None => format!("\"{}-revoked\"", r.version),
    }
}

/// RFC 3339 UTC with seconds, the dates the service writes.
pub fn now_rfc3339() -> String {
    agent_init::base::time::rfc3339_now()
}

fn store_failed(e: crate::Error) -> Reply {
    super::log(&format!("store error: {e}"));
    Reply::unavailable(1, "the database is unavailable")
}

/// How often a PUT re-reads after losing a race before giving up (each loss
/// means another writer committed, so this bounds only unconditional PUTs).
const PUT_ROUNDS: usize = 8;

/// Runs a parsed request.
pub async fn execute(op: Op, store: &Store) -> Reply {
    match op {
        Op::Fetch {
            id,
            presented,
            if_none_match,
        } => fetch(store, id, presented, if_none_match).await,
        Op::Put {
            id,
            precondition,
            request,
        } => {
            for _ in 0..PUT_ROUNDS {
                match put_round(store, &id, &precondition, &request).await {
                    Ok(Some(reply)) => return reply,
                    Ok(None) => continue,
                    Err(e) => return store_failed(e).with(&id, None),
                }
            }
            Reply::error(409, "the token changed under every attempt; retry").with(&id, None)
        }
        Op::Get { id } => match store.get(&id).await {
            Ok(Some(r)) => Reply::json(
                200,
                &TokenResponse {
                    etag: etag(&r),
                    id: r.id.clone(),
                    version: r.version,
                    created_at: r.created_at.clone(),
                    updated_at: r.updated_at.clone(),
                    revoked: r.revoked,
                    manifest: r.manifest.clone(),
                    bundle: r.bundle.clone(),
                },
            )
            .with(&id, Some(r.version)),
            Ok(None) => Reply::error(404, "no such token").with(&id, None),
            Err(e) => store_failed(e).with(&id, None),
        },
        Op::List => match store.list().await {
            Ok(rows) => Reply::json(
                200,
                &ListResponse {
                    tokens: rows
                        .into_iter()
                        .map(|r| ListEntry {
                            secrets: r.manifest.secrets.len() as u64,
                            id: r.id,
                            version: r.version,
                            updated_at: r.updated_at,
                            revoked: r.revoked,
                        })
                        .collect(),
                },
            ),
            Err(e) => store_failed(e),
        },
        Op::Delete { id } => match store.revoke(&id, &now_rfc3339()).await {
            Ok(true) => Reply {
                status: 204,
                headers: vec![],
                body: vec![],
                id: None,
                version: None,
            }
            .with(&id, None),
            Ok(false) => Reply::error(404, "no such token").with(&id, None),
            Err(e) => store_failed(e).with(&id, None),
        },
    }
}

async fn fetch(
    store: &Store,
    id: String,
    presented: [u8; 32],
    if_none_match: Option<Vec<String>>,
) -> Reply {
    let row = match store.get(&id).await {
        Ok(r) => r,
        Err(e) => return store_failed(e).with(&id, None),
    };
    // Unknown, revoked and wrong key take the same comparison and give the
    // same 401.
    let stored = row
        .as_ref()
        .and_then(|r| b64u_decode(&r.auth_key_sha256))
        .filter(|d| d.len() == 32)
        .unwrap_or_else(|| vec![0xff; 32]);
    let key_ok: bool = presented[..].ct_eq(&stored[..]).into();
    let row = match row {
        Some(r) if key_ok && !r.revoked && r.bundle.is_some() => r,
        _ => return Reply::unauthorized().with(&id, None),
    };
    let tag = etag(&row);
    let common = vec![
        ("etag", tag.clone()),
        ("cache-control", "private, no-cache".to_string()),
    ];
    if if_none_match.is_some_and(|tags| tags_match(&tags, &tag, true)) {
        return Reply {
            status: 304,
            headers: common,
            body: vec![],
            id: None,
            version: None,
        }
        .with(&id, Some(row.version));
    }
    let mut headers = common;
    headers.push(("content-type", "application/json".into()));
    Reply {
        status: 200,
        headers,
        body: bundle_json(row.bundle.as_ref().expect("checked above")),
        id: None,
        version: None,
    }
    .with(&id, Some(row.version))
}

/// One read-decide-write round of a PUT; `Ok(None)` when the write lost a
/// race and the caller should decide again on what is now stored.
async fn put_round(
    store: &Store,
    id: &str,
    pre: &Precondition,
    req: &PutRequest,
) -> crate::Result<Option<Reply>> {
    let now = now_rfc3339();
    let current = store.get(id).await?;
    let answer = |status: u16, r: &Record| {
        let mut reply = Reply::json(
            status,
            &PutResponse {
                id: r.id.clone(),
                version: r.version,
                etag: etag(r),
                created_at: r.created_at.clone(),
                updated_at: r.updated_at.clone(),
            },
        );
        reply.headers.push(("etag", etag(r)));
        reply.with(id, Some(r.version))
    };
    let Some(cur) = current else {
        if let Precondition::Match(_) = pre {
            return Ok(Some(
                Reply::error(412, "If-Match: no such token").with(id, None),
            ));
        }
        let rec = Record {
            id: id.to_string(),
            auth_key_sha256: req.auth_key_sha256.clone(),
            bundle: Some(req.bundle.clone()),
            manifest: req.manifest.clone(),
            version: 1,
            created_at: now.clone(),
            updated_at: now,
            revoked: false,
        };
        return Ok(match store.insert(&rec).await? {
            Write::Done => Some(answer(201, &rec)),
            Write::Lost => None,
        });
    };
    if *pre == Precondition::Create {
        return Ok(Some(
            Reply::error(412, "If-None-Match: * but the token exists").with(id, Some(cur.version)),
        ));
    }
    if cur.revoked {
        return Ok(Some(
            Reply::error(409, "the token is revoked; make a new one").with(id, Some(cur.version)),
        ));
    }
    if let Precondition::Match(tags) = pre {
        if !tags_match(tags, &etag(&cur), false) {
            return Ok(Some(
                Reply::error(412, "If-Match does not name the current version")
                    .with(id, Some(cur.version)),
            ));
        }
    }
    let same_key: bool = req
        .auth_key_sha256
        .as_bytes()
        .ct_eq(cur.auth_key_sha256.as_bytes())
        .into();
    if !same_key {
        return Ok(Some(
            Reply::error(409, "auth_key_sha256 differs from the stored one")
                .with(id, Some(cur.version)),
        ));
    }
    let rec = Record {
        bundle: Some(req.bundle.clone()),
        manifest: req.manifest.clone(),
        version: cur.version + 1,
        updated_at: now,
        ..cur.clone()
    };
    Ok(match store.replace(&rec, cur.version).await? {
        Write::Done => Some(answer(200, &rec)),
        Write::Lost => None,
    })
}
