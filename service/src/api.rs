//! The JSON of the management API (PROTOCOL.md §10), shared by the server
//! (`serve`) and the CLI so both halves speak one set of types.
//!
//! Request types are strict about the members §10 names and drop every other
//! member: the server re-serializes what it parsed, so it stores exactly the
//! fields §10 lists and nothing a client adds. No type here can carry a secret
//! value: the bundle is ciphertext and the manifest holds names and dates.

use serde::{Deserialize, Serialize};

/// Path of the §4 fetch.
pub const BUNDLE_PATH: &str = "/v1/bundle";
/// Prefix of the per-token management paths: `/v1/tokens/{ID}`.
pub const TOKENS_PATH: &str = "/v1/tokens";

/// A sealed bundle (§5) as the management API carries it: a JSON object, not
/// a string. `format` is always `"lkbt1"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The manifest, `{"secrets": [{"name", "kind", "env"?, "created_at",
/// "updated_at"}]}`: agent-init's own type, the one `agent-init seal --list`
/// prints, so the CLI, the service and agent-init share one definition. §10
/// requires both dates; the library allows them absent (a bundle sealed
/// without dates), so the service refuses an entry without them (400) and
/// the CLI fills them in before it uploads.
pub use agent_init::protocol::secrets::{Manifest, ManifestEntry};

/// Body of `PUT /v1/tokens/{ID}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// `b64u(SHA-256(auth_key))`: 43 characters.
    pub auth_key_sha256: String,
    pub bundle: Bundle,
    pub manifest: Manifest,
}

/// Answer to a PUT: 201 created, 200 replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    pub id: String,
    pub version: i64,
    /// The `ETag` that §4 fetches of this bundle carry, with its quotes; what
    /// a client sends back in `If-Match`.
    pub etag: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Answer to `GET /v1/tokens/{ID}`. A revoked token has no bundle (`null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub id: String,
    pub version: i64,
    pub etag: String,
    pub created_at: String,
    pub updated_at: String,
    pub revoked: bool,
    pub manifest: Manifest,
    pub bundle: Option<Bundle>,
}

/// One row of `GET /v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: String,
    pub version: i64,
    pub updated_at: String,
    pub revoked: bool,
    /// How many secrets the manifest names.
    pub secrets: u64,
}

/// Answer to `GET /v1/tokens`, sorted by ID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    pub tokens: Vec<ListEntry>,
}

/// Body of every 4xx/5xx answer: `{"error": "<reason>"}`. The reason names
/// what is wrong (a member, a header, a status), never a value from the
/// request; every 401 carries the same reason, whatever was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}
