//! Types for secret material.
//!
//! A [`SecretBytes`] or [`SecretString`] wipes its heap buffer when dropped,
//! prints as `[redacted N bytes]` under `Debug`, and has no `Display`, so a
//! secret cannot reach a log line or an error message by accident. Reading the
//! content takes an explicit `expose()`. A [`Key32`] (a derived key) wipes
//! itself on drop and prints as `[redacted key]`. None of them implements
//! `PartialEq`: `==` on secrets would be a byte-by-byte, early-exit compare;
//! code that must compare uses `expose()` (tests) or a constant-time compare
//! (the service). Redaction is this module's own `Debug`, never a
//! dependency's.

use std::fmt;
use zeroize::Zeroizing;

/// Secret bytes, wiped on drop.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `v`; its buffer is wiped when this value drops.
    pub fn new(v: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(v))
    }
    /// An empty buffer with room for `n` bytes, so that filling it never reallocates.
    pub fn with_capacity(n: usize) -> Self {
        SecretBytes(Zeroizing::new(Vec::with_capacity(n)))
    }
    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// The buffer, for filling in place.
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

/// A secret UTF-8 string, wiped on drop.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s`; its buffer is wiped when this value drops.
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }
    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Number of bytes of UTF-8 held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

/// A 32-byte key (a derived `auth_key` or `seal_key`, or a presented
/// `auth_key`), wiped on drop. It derefs to its bytes, as the key arrays it
/// replaces did, so `&key[..]` reads it.
pub struct Key32(Zeroizing<[u8; 32]>);

impl Key32 {
    /// All zeros, to be filled in place.
    pub fn zeroed() -> Self {
        Key32(Zeroizing::new([0; 32]))
    }
}

impl std::ops::Deref for Key32 {
    type Target = [u8; 32];
    fn deref(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::ops::DerefMut for Key32 {
    fn deref_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted key]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let s = SecretString::new("sk-very-secret".into());
        let b = SecretBytes::new(b"sk-very-secret".to_vec());
        assert_eq!(format!("{s:?}"), "[redacted 14 bytes]");
        assert_eq!(format!("{b:?}"), "[redacted 14 bytes]");
        assert!(!format!("{:?}", Some(&s)).contains("sk-"));
    }

    #[test]
    fn a_key_prints_as_redacted_whatever_it_holds() {
        let mut k = Key32::zeroed();
        k.copy_from_slice(&[0x41; 32]);
        assert_eq!(format!("{k:?}"), "[redacted key]");
        assert_eq!(k[..], [0x41; 32]);
    }
}
