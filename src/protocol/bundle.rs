//! The sealed bundle (PROTOCOL.md §5): parse, open, and seal.
//!
//! After [`open`] returns, the plaintext authenticated under the token's
//! `seal_key` with AAD `"lkbt1." ID`, so it was sealed for this very token and
//! not altered since. Every failure is [`Error::Refused`] (exit 65) and says
//! which part failed, never what the bytes were.

use crate::base::error::{Error, Result};
use crate::base::sensitive::SecretBytes;
use crate::protocol::token::{b64u, b64u_decode, Token};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::SecureRandom;
use serde::Deserialize;

/// The only format this version reads.
pub const FORMAT: &str = "lkbt1";
/// The default size cap for a bundle, fetched (`AGENT_INIT_MAX_BUNDLE_BYTES`
/// unset) or read back for an update; the service stores no larger one.
pub const DEFAULT_MAX_BUNDLE: u64 = 8 << 20;

/// A string member, borrowed from the body unless it has escapes. serde's
/// `borrow` makes a bare `Cow` borrow but not an `Option<Cow>`, which would
/// copy the whole ciphertext: a second bundle-sized buffer at peak.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

#[derive(Deserialize)]
struct Sealed<'a> {
    #[serde(borrow)]
    format: Option<Text<'a>>,
    #[serde(borrow)]
    nonce: Option<Text<'a>>,
    #[serde(borrow)]
    ciphertext: Option<Text<'a>>,
}

fn refused(what: &str) -> Error {
    Error::Refused(format!("sealed bundle refused: {what}"))
}

/// Opens a sealed bundle with `token`, returning the plaintext.
pub fn open(token: &Token, body: &[u8]) -> Result<SecretBytes> {
    // JSON is UTF-8 (RFC 8259), and serde_json checks that only in the strings
    // it keeps, not in unknown members it skips.
    let body = std::str::from_utf8(body).map_err(|e| {
        refused(&format!(
            "it is not UTF-8 JSON (bad UTF-8 at byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    let sealed: Sealed<'_> = serde_json::from_str(body).map_err(|e| {
        refused(&format!(
            "not a JSON object with format, nonce and ciphertext (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    match sealed.format.as_ref().map(|t| t.0.as_ref()) {
        Some(FORMAT) => {}
        Some(_) => return Err(refused("its format is not \"lkbt1\"")),
        None => return Err(refused("it has no \"format\" member")),
    }
    let nonce_b64 = sealed
        .nonce
        .map(|t| t.0)
        .ok_or_else(|| refused("it has no \"nonce\" member"))?;
    let ct_b64 = sealed
        .ciphertext
        .map(|t| t.0)
        .ok_or_else(|| refused("it has no \"ciphertext\" member"))?;
    let nonce_bytes = b64u_decode(&nonce_b64).ok_or_else(|| refused("nonce is not base64url"))?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes)
        .map_err(|_| refused("nonce is not 12 bytes"))?;
    let mut buf = SecretBytes::new(
        b64u_decode(&ct_b64).ok_or_else(|| refused("ciphertext is not base64url"))?,
    );
    if buf.len() < AES_256_GCM.tag_len() {
        return Err(refused("ciphertext is shorter than its 16-byte tag"));
    }
    let seal_key = token.seal_key();
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &seal_key[..]).expect("AES-256 takes 32-byte keys"),
    );
    let aad = token.aad();
    let plain_len = key
        .open_in_place(nonce, Aad::from(&aad), buf.expose_mut())
        .map_err(|_| {
            refused(&format!(
                "it does not authenticate for token {} (tampered, or sealed for another token)",
                token.id_b64()
            ))
        })?
        .len();
    buf.expose_mut().truncate(plain_len);
    Ok(buf)
}

/// Seals `plaintext` for `token` with a fresh random nonce; returns the bundle JSON.
pub fn seal(token: &Token, plaintext: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Internal("the system's random generator failed".into()))?;
    Ok(seal_with_nonce(token, plaintext, nonce))
}

/// Seals with a given nonce. A nonce must never repeat under one token; use
/// [`seal`] unless reproducing a known-answer vector.
pub fn seal_with_nonce(token: &Token, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
    let seal_key = token.seal_key();
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &seal_key[..]).expect("AES-256 takes 32-byte keys"),
    );
    let mut buf = SecretBytes::with_capacity(plaintext.len() + AES_256_GCM.tag_len());
    buf.expose_mut().extend_from_slice(plaintext);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&token.aad()),
        buf.expose_mut(),
    )
    .expect("plaintext within AES-GCM's length limit");
    serde_json::json!({
        "format": FORMAT,
        "nonce": b64u(&nonce),
        "ciphertext": b64u(buf.expose()),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> serde_json::Value {
        serde_json::from_str(include_str!("../../testdata/lkbt1.json")).unwrap()
    }

    fn vector_token() -> Token {
        Token::parse(vector()["token"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn known_answer_bundle_opens_to_the_vector_plaintext() {
        let v = vector();
        let body = v["bundle"].to_string();
        let plain = open(&vector_token(), body.as_bytes()).unwrap();
        assert_eq!(plain.expose(), v["plaintext"].as_str().unwrap().as_bytes());
    }

    #[test]
    fn sealing_the_vector_plaintext_with_its_nonce_reproduces_the_ciphertext() {
        let v = vector();
        let nonce: [u8; 12] = (0x10..0x1c).collect::<Vec<u8>>().try_into().unwrap();
        let sealed = seal_with_nonce(
            &vector_token(),
            v["plaintext"].as_str().unwrap().as_bytes(),
            nonce,
        );
        let sealed: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(sealed["nonce"], v["bundle"]["nonce"]);
        assert_eq!(sealed["ciphertext"], v["bundle"]["ciphertext"]);
        assert_eq!(sealed["format"], "lkbt1");
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let v = vector();
        let mut b = v["bundle"].clone();
        let ct = b["ciphertext"].as_str().unwrap().to_string();
        let flipped = if ct.starts_with('-') { "A" } else { "-" };
        b["ciphertext"] = format!("{flipped}{}", &ct[1..]).into();
        let e = open(&vector_token(), b.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("authenticate"), "{e}");
    }

    #[test]
    fn a_bundle_sealed_for_another_token_does_not_open() {
        let other = Token::generate().unwrap();
        let sealed = seal(&other, b"{\"secrets\":[]}").unwrap();
        assert_eq!(
            open(&vector_token(), sealed.as_bytes())
                .unwrap_err()
                .exit_code(),
            65
        );
        assert!(open(&other, sealed.as_bytes()).is_ok());
    }

    #[test]
    fn same_key_different_id_does_not_open() {
        // Same KEY bytes, other ID: the AAD differs, so authentication fails.
        let a = Token::from_parts([1; 16], [7; 32]);
        let b = Token::from_parts([2; 16], [7; 32]);
        let sealed = seal(&a, b"{\"secrets\":[]}").unwrap();
        assert!(open(&b, sealed.as_bytes()).is_err());
    }

    #[test]
    fn malformed_envelopes_are_refused_with_a_reason() {
        let t = vector_token();
        let cases: &[(&str, &str)] = &[
            ("", "JSON"),
            ("[]", "JSON"),
            (
                "{\"format\":\"lkbt2\",\"nonce\":\"EBESExQVFhcYGRob\",\"ciphertext\":\"AAAA\"}",
                "format",
            ),
            (
                "{\"nonce\":\"EBESExQVFhcYGRob\",\"ciphertext\":\"AAAA\"}",
                "format",
            ),
            ("{\"format\":\"lkbt1\",\"ciphertext\":\"AAAA\"}", "nonce"),
            (
                "{\"format\":\"lkbt1\",\"nonce\":\"EBESExQVFhcYGRob\"}",
                "ciphertext",
            ),
            (
                "{\"format\":\"lkbt1\",\"nonce\":\"EBESExQVFhcYGRo\",\"ciphertext\":\"AAAA\"}",
                "nonce",
            ),
            (
                "{\"format\":\"lkbt1\",\"nonce\":\"EBESExQVFhcYGRob=\",\"ciphertext\":\"AAAA\"}",
                "nonce",
            ),
            (
                "{\"format\":\"lkbt1\",\"nonce\":\"EBESExQVFhcYGRob\",\"ciphertext\":\"AA+A\"}",
                "ciphertext",
            ),
            (
                "{\"format\":\"lkbt1\",\"nonce\":\"EBESExQVFhcYGRob\",\"ciphertext\":\"AAAA\"}",
                "tag",
            ),
            (
                "{\"format\":1,\"nonce\":\"EBESExQVFhcYGRob\",\"ciphertext\":\"AAAA\"}",
                "JSON",
            ),
        ];
        for (body, needle) in cases {
            let e = open(&t, body.as_bytes()).unwrap_err();
            assert_eq!(e.exit_code(), 65, "{body}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn invalid_utf8_in_an_unknown_envelope_member_is_refused() {
        // The `secrets_parse` finding, in the envelope:
        // serde_json skips unknown members without checking their UTF-8.
        let v = vector();
        let mut body = v["bundle"].to_string().into_bytes();
        body.pop();
        body.extend_from_slice(b",\"x\":\"\xc3\"}");
        let e = open(&vector_token(), &body).unwrap_err();
        assert_eq!(e.exit_code(), 65);
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn envelope_strings_borrow_from_the_body_instead_of_copying_it() {
        let s: Sealed<'_> = serde_json::from_str(r#"{"ciphertext":"AAAA"}"#).unwrap();
        assert!(matches!(
            s.ciphertext.unwrap().0,
            std::borrow::Cow::Borrowed(_)
        ));
        // An escaped string cannot borrow and still parses.
        let s: Sealed<'_> = serde_json::from_str(r#"{"format":"lkbt\u0031"}"#).unwrap();
        assert_eq!(s.format.unwrap().0, "lkbt1");
    }

    #[test]
    fn unknown_envelope_members_are_ignored() {
        let v = vector();
        let mut b = v["bundle"].clone();
        b["extra"] = serde_json::json!({"anything": [1, 2]});
        assert!(open(&vector_token(), b.to_string().as_bytes()).is_ok());
    }
}
