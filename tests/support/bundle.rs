//! Sealed bundles for tests, made with the crate's own `bundle::seal`, and
//! the token strings that must never appear in anything agent-init prints.

use super::harness::Harness;
use agent_init::protocol::token::{b64u, Token};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The known-answer vector (PROTOCOL.md §9), as the repository keeps it.
pub const VECTOR_JSON: &str = include_str!("../../testdata/lkbt1.json");

/// The parsed vector.
pub fn vector() -> Value {
    serde_json::from_str(VECTOR_JSON).unwrap()
}

/// The vector's token text, `lkbt1.ID.KEY`.
pub fn vector_token_text() -> String {
    vector()["token"].as_str().unwrap().to_string()
}

/// The vector's token.
pub fn vector_token() -> Token {
    Token::parse(&vector_token_text()).unwrap()
}

/// The exact `Authorization` header the vector says this token sends.
pub fn vector_authorization() -> String {
    vector()["authorization"].as_str().unwrap().to_string()
}

/// The values agent-init must never print for `token`: the token itself, its
/// KEY part, and `auth_key` and `seal_key` in base64url and hex.
pub fn token_strings(token: &Token) -> Vec<String> {
    let text = token.encode().expose().to_string();
    let key = text.rsplit('.').next().unwrap().to_string();
    let auth = token.auth_key();
    let seal = token.seal_key();
    vec![
        text,
        key,
        b64u(&auth[..]),
        hex(&auth[..]),
        b64u(&seal[..]),
        hex(&seal[..]),
    ]
}

/// The platform's three values, as the bundle's `livekit` member carries them.
pub const LIVEKIT: [(&str, &str); 3] = [
    ("LIVEKIT_URL", "wss://agents.example.livekit.cloud"),
    ("LIVEKIT_API_KEY", "APIkey-from-bundle-4f1c"),
    ("LIVEKIT_API_SECRET", "api-secret-from-bundle-9d2e"),
];

/// A bundle plaintext (PROTOCOL.md §6) with `secrets` and, if given, a
/// `livekit` member holding those of the three names present in `livekit`.
pub fn plaintext(secrets: &[(&str, &str)], livekit: &[(&str, &str)]) -> String {
    let list: Vec<Value> = secrets
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v, "updated_at": "2026-11-20T08:30:00Z"}))
        .collect();
    let mut plain = json!({ "secrets": list });
    if !livekit.is_empty() {
        let mut lk = serde_json::Map::new();
        for (name, value) in livekit {
            let member = match *name {
                "LIVEKIT_URL" => "url",
                "LIVEKIT_API_KEY" => "api_key",
                "LIVEKIT_API_SECRET" => "api_secret",
                other => panic!("{other} is not a livekit member"),
            };
            lk.insert(member.into(), json!(value));
        }
        plain["livekit"] = Value::Object(lk);
    }
    plain.to_string()
}

/// Seals `plaintext` for `token` (fresh nonce), as the secrets service would.
pub fn seal(token: &Token, plaintext: &str) -> String {
    agent_init::protocol::bundle::seal(token, plaintext.as_bytes()).unwrap()
}

/// Flips one byte of the ciphertext (base64url-decoded, then re-encoded).
pub fn tamper(bundle: &str) -> String {
    let mut b: Value = serde_json::from_str(bundle).unwrap();
    let ct = b["ciphertext"].as_str().unwrap();
    let mut raw = agent_init::protocol::token::b64u_decode(ct).unwrap();
    raw[0] ^= 0x01;
    b["ciphertext"] = json!(b64u(&raw));
    b.to_string()
}

/// The file secret (PROTOCOL.md §6.1) of the image and worker tests, as
/// `lk agent create --secret-mount` makes one: its name, and the variable
/// that gets the path of the file.
pub const CREDENTIALS_FILE: &str = "google-credentials.json";
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// The service-account JSON sealed as [`CREDENTIALS_FILE`] for the token
/// whose ID is `id`: its email names the run (the example workers log it),
/// its private key is [`credentials_key`].
pub fn credentials(id: &str) -> Vec<u8> {
    format!(
        "{{\"type\": \"service_account\", \"client_email\": \"{}\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n\"}}\n",
        credentials_email(id),
        credentials_key(id)
    )
    .into_bytes()
}

/// The `client_email` of [`credentials`].
pub fn credentials_email(id: &str) -> String {
    format!("test-{id}@example.iam.gserviceaccount.com")
}

/// The private key of [`credentials`]: nothing may print it.
pub fn credentials_key(id: &str) -> String {
    format!("pk-test-{id}")
}

/// Lower-case hex of the SHA-256 of `bytes`, as sha256sum, Python's
/// hexdigest and Node's digest('hex') print it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// `plaintext` (from [`plaintext`]) with `content` added as the file secret
/// [`CREDENTIALS_FILE`] for [`CREDENTIALS_VAR`].
pub fn with_credentials_file(plaintext: &str, content: &[u8]) -> String {
    let mut plain: Value = serde_json::from_str(plaintext).unwrap();
    plain["secrets"].as_array_mut().unwrap().push(json!({
        "name": CREDENTIALS_FILE,
        "kind": "file",
        "value": b64u(content),
        "env": CREDENTIALS_VAR,
    }));
    plain.to_string()
}

/// A run's token and sealed bundle, as files in its working directory.
impl Harness {
    /// Writes `token` to `token` in the working directory, readable by
    /// everyone (0644: as a mounted Kubernetes Secret, whatever the umask),
    /// and forbids its strings in output. Returns the file's path.
    pub fn write_token(&mut self, token: &Token) -> PathBuf {
        let path = self.file("token", format!("{}\n", token.encode().expose()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.forbidden.add_token(token);
        path
    }

    /// The token in the working directory's `token` file ([`Harness::write_token`]'s,
    /// or one a service's CLI wrote there).
    pub fn token(&self) -> Token {
        let text = std::fs::read_to_string(self.dir.join("token")).expect("the run has a token");
        Token::parse(text.trim()).unwrap()
    }

    /// Seals `plaintext` for [`Harness::token`] into `bundle.json` in the
    /// working directory (0644). Returns the file's path.
    pub fn write_bundle(&self, plaintext: &str) -> PathBuf {
        let path = self.file("bundle.json", seal(&self.token(), plaintext));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

/// The line in which an example worker's job process (examples/*/agent.*,
/// `prewarm`) logs that it read the [`credentials`] of token `id`, once
/// `logs` holds it: the line, that process's pid and its parent's. Checks
/// that it read exactly the sealed bytes.
pub fn prewarm_read(logs: &str, id: &str) -> Option<(String, i64, i64)> {
    let email = credentials_email(id);
    let line = logs
        .lines()
        .find(|l| l.contains("prewarm in process") && l.contains(&email))?;
    let sha256 = format!("sha256 {}", sha256_hex(&credentials(id)));
    assert!(
        line.contains(&sha256),
        "the job process read exactly the bundle's bytes ({sha256}): {line}"
    );
    let at = line.find("prewarm in process").unwrap();
    let pids: Vec<i64> = line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((line.to_string(), pids[0], pids[1]))
}

/// Replaces the file at `path` with `body` atomically (a temporary beside
/// it, renamed over it), as a Kubernetes ConfigMap update does.
pub fn replace(path: &std::path::Path, body: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Lower-case hex, as sha256sum and Python's hexdigest print it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
