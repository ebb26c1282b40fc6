//! The bootstrap token (PROTOCOL.md §2) and the keys derived from it (§3).
//!
//! After [`Token::parse`] returns, the token matched the grammar exactly: the
//! prefix `lkbt1.`, a 22-character ID that decodes to 16 bytes and a
//! 43-character KEY that decodes to 32 bytes, both strict base64url without
//! padding. The KEY and every key derived from it live only in zeroizing
//! buffers and never print.

use crate::base::error::{Error, Result};
use crate::base::sensitive::{Key32, SecretString};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hkdf;
use ring::rand::SecureRandom;
use std::fmt;
use zeroize::Zeroizing;

/// The version prefix of every token, with its dot.
pub const PREFIX: &str = "lkbt1.";
/// The HKDF salt of §3.
const SALT: &[u8] = b"lkbt1";
/// Largest token file read: a token is 70 characters, and a file holds
/// one (with perhaps a newline); anything much larger is not a token file.
pub const MAX_TOKEN_FILE: u64 = 4096;

/// `b64u(x)`: base64url without padding (§1).
pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url: no padding, no foreign character, zero trailing bits (§1).
pub fn b64u_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// A parsed bootstrap token.
pub struct Token {
    id: [u8; 16],
    /// On the heap: moving a `Token` (out of a `Result`, into a `Config`)
    /// then copies a pointer, and never leaves the KEY in a stack frame.
    key: Box<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token {{ id: {}, key: [redacted] }}", self.id_b64())
    }
}

impl Token {
    /// Parses `lkbt1.ID.KEY`, trimming surrounding ASCII whitespace first.
    /// The error names what is wrong with the shape, never a character of KEY.
    pub fn parse(text: &str) -> Result<Token> {
        let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let bad = |why: &str| Error::Config(format!("bootstrap token is malformed: {why}"));
        let rest = t
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("it does not start with \"lkbt1.\""))?;
        let (id, key) = rest
            .split_once('.')
            .ok_or_else(|| bad("it has no KEY part (expected lkbt1.ID.KEY)"))?;
        if id.len() != 22 {
            return Err(bad("its ID is not 22 characters"));
        }
        if key.len() != 43 {
            return Err(bad("its KEY is not 43 characters"));
        }
        let id_bytes = b64u_decode(id).ok_or_else(|| bad("its ID is not base64url"))?;
        let key_bytes =
            Zeroizing::new(b64u_decode(key).ok_or_else(|| bad("its KEY is not base64url"))?);
        let mut token = Token {
            id: [0; 16],
            key: Box::new(Zeroizing::new([0; 32])),
        };
        token.id.copy_from_slice(&id_bytes);
        token.key.copy_from_slice(&key_bytes);
        Ok(token)
    }

    /// Builds a token from its two parts.
    pub fn from_parts(id: [u8; 16], key: [u8; 32]) -> Token {
        Token {
            id,
            key: Box::new(Zeroizing::new(key)),
        }
    }

    /// A fresh token from the system's CSPRNG.
    pub fn generate() -> Result<Token> {
        let rng = ring::rand::SystemRandom::new();
        let mut id = [0u8; 16];
        let mut key = Box::new(Zeroizing::new([0u8; 32]));
        rng.fill(&mut id)
            .and_then(|_| rng.fill(&mut key[..]))
            .map_err(|_| Error::Internal("the system's random generator failed".into()))?;
        Ok(Token { id, key })
    }

    /// The ID's encoded form: names the token, not secret.
    pub fn id_b64(&self) -> String {
        b64u(&self.id)
    }

    /// The token's text, `lkbt1.ID.KEY`. Secret.
    pub fn encode(&self) -> SecretString {
        let mut s = String::with_capacity(72);
        s.push_str(PREFIX);
        s.push_str(&self.id_b64());
        s.push('.');
        let key = Zeroizing::new(b64u(&self.key[..]));
        s.push_str(&key);
        SecretString::new(s)
    }

    /// `aad = "lkbt1." ID` (§5): binds a bundle to this token.
    pub fn aad(&self) -> Vec<u8> {
        format!("{PREFIX}{}", self.id_b64()).into_bytes()
    }

    /// `auth_key = HKDF-SHA256(salt = "lkbt1", IKM = KEY, info = "auth", L = 32)`.
    pub fn auth_key(&self) -> Key32 {
        self.derive(b"auth")
    }

    /// `seal_key = HKDF-SHA256(salt = "lkbt1", IKM = KEY, info = "seal", L = 32)`.
    pub fn seal_key(&self) -> Key32 {
        self.derive(b"seal")
    }

    /// `Authorization: Bearer lkbt1.<ID>.<b64u(auth_key)>` (§4). Secret.
    pub fn authorization(&self) -> SecretString {
        let auth = self.auth_key();
        let enc = Zeroizing::new(b64u(&auth[..]));
        let mut s = String::with_capacity(80);
        s.push_str("Bearer ");
        s.push_str(PREFIX);
        s.push_str(&self.id_b64());
        s.push('.');
        s.push_str(&enc);
        SecretString::new(s)
    }

    fn derive(&self, info: &[u8]) -> Key32 {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.key[..]);
        let mut out = Key32::zeroed();
        let info = [info];
        // Expanding 32 bytes from SHA-256 cannot exceed HKDF's 255 * 32 limit.
        prk.expand(&info, hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out[..]))
            .expect("HKDF-SHA256 expands 32 bytes");
        out
    }
}

/// Decodes a token ID (§2): 22 characters of strict base64url naming 16 bytes.
/// The secrets service uses it for the `{ID}` of its management API (§10).
pub fn parse_id(id: &str) -> Option<[u8; 16]> {
    if id.len() != 22 {
        return None;
    }
    b64u_decode(id)?.try_into().ok()
}

/// The service's side of §4: splits `Authorization: Bearer lkbt1.<ID>.<b64u(auth_key)>`
/// into the ID and the presented auth_key (which is secret: it proves
/// possession of the token). `None` for any other shape.
pub fn parse_authorization(header: &str) -> Option<([u8; 16], Key32)> {
    let rest = header.strip_prefix("Bearer ")?.strip_prefix(PREFIX)?;
    let (id, auth) = rest.split_once('.')?;
    if auth.len() != 43 {
        return None;
    }
    let id = parse_id(id)?;
    let bytes = Zeroizing::new(b64u_decode(auth)?);
    let mut key = Key32::zeroed();
    key.copy_from_slice(bytes.get(..32)?);
    Some((id, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_TOKEN: &str =
        "lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn vector() -> serde_json::Value {
        serde_json::from_str(include_str!("../../testdata/lkbt1.json")).unwrap()
    }

    #[test]
    fn known_answer_vector_keys_and_header_match() {
        let v = vector();
        let t = Token::parse(v["token"].as_str().unwrap()).unwrap();
        assert_eq!(hex(&t.id), v["id_hex"].as_str().unwrap());
        assert_eq!(hex(&t.key[..]), v["key_hex"].as_str().unwrap());
        assert_eq!(hex(&t.auth_key()[..]), v["auth_key_hex"].as_str().unwrap());
        assert_eq!(hex(&t.seal_key()[..]), v["seal_key_hex"].as_str().unwrap());
        assert_eq!(
            t.authorization().expose(),
            v["authorization"].as_str().unwrap()
        );
        assert_eq!(t.aad(), v["aad"].as_str().unwrap().as_bytes());
        assert_eq!(t.encode().expose(), VECTOR_TOKEN);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert!(Token::parse(&format!("  {VECTOR_TOKEN}\n")).is_ok());
        assert!(Token::parse(&format!("\t{VECTOR_TOKEN}\r\n")).is_ok());
    }

    #[test]
    fn malformed_tokens_are_config_errors_that_never_echo_the_key() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let cases = [
            String::new(),
            format!("lkbt2.oKGio6SlpqeoqaqrrK2urw.{key}"),
            format!("LKBT1.oKGio6SlpqeoqaqrrK2urw.{key}"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw{key}"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2ur.{key}"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{key}A"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{key}="),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw=.{key}"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2ur+.{key}"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{}", &key.replace('A', "/")),
            // Non-zero trailing bits: last char 'x' instead of 'w' in the ID.
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urx.{key}"),
            // Non-zero trailing bits in KEY: 'h' instead of '8'... last char must encode 00 low bits.
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{}9", &key[..42]),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw.{key}.extra"),
            format!("lkbt1.oKGio6SlpqeoqaqrrK2urw. {}", &key[1..]),
        ];
        for c in &cases {
            let e = Token::parse(c).expect_err(c);
            assert_eq!(e.exit_code(), 78, "{c}");
            assert!(!e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn generated_tokens_round_trip_and_differ() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        let pa = Token::parse(a.encode().expose()).unwrap();
        assert_eq!(pa.id, a.id);
        assert_eq!(pa.seal_key()[..], a.seal_key()[..]);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn debug_shows_the_id_but_not_the_key() {
        let t = Token::parse(VECTOR_TOKEN).unwrap();
        let d = format!("{t:?}");
        assert!(d.contains("oKGio6SlpqeoqaqrrK2urw"));
        assert!(!d.contains("AAECAw"));
    }

    #[test]
    fn the_service_reads_back_the_header_a_token_sends() {
        let t = Token::parse(VECTOR_TOKEN).unwrap();
        let (id, auth) = parse_authorization(t.authorization().expose()).unwrap();
        assert_eq!(id, t.id);
        assert_eq!(auth[..], t.auth_key()[..]);
        assert_eq!(parse_id(&t.id_b64()), Some(t.id));
        for bad in [
            "",
            "Bearer ",
            "Basic lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "Bearer lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
            "Bearer lkbt1.oKGio6SlpqeoqaqrrK2ur.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "Bearer lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=",
            "Bearer lkbt1.oKGio6SlpqeoqaqrrK2urw.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",
        ] {
            assert!(parse_authorization(bad).is_none(), "{bad:?}");
        }
        assert_eq!(parse_id("oKGio6SlpqeoqaqrrK2ur"), None);
        assert_eq!(parse_id("oKGio6SlpqeoqaqrrK2urx"), None);
    }
}
