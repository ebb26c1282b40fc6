//! Sealed bundles for tests, made with the crate's own `bundle::seal`, and
//! the token strings that must never appear in anything agent-init prints.

use agent_init::protocol::token::{b64u, Token};
use serde_json::{json, Value};

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
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
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
