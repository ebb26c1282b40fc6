//! The one definition of what agent-init must never print (PROTOCOL.md §8):
//! a secret value, the bootstrap token, its KEY part, `auth_key` and
//! `seal_key` (base64url and hex), and the platform's API key and secret.
//! Every suite that checks output builds a [`Forbidden`] and asks it.

use super::bundle::{token_strings, LIVEKIT};
use agent_init::protocol::token::Token;
use std::process::Output;

/// Strings no output may contain.
#[derive(Clone, Debug, Default)]
pub struct Forbidden(Vec<String>);

impl Forbidden {
    /// Nothing forbidden yet.
    pub fn new() -> Forbidden {
        Forbidden(Vec::new())
    }

    /// Also the token's text, its KEY and its derived keys.
    pub fn token(mut self, token: &Token) -> Forbidden {
        self.add_token(token);
        self
    }

    /// Also `value` (an empty value forbids nothing: it is in every text).
    pub fn value(mut self, value: impl Into<String>) -> Forbidden {
        self.add(value);
        self
    }

    /// Also every one of `values`.
    pub fn values<I, S>(mut self, values: I) -> Forbidden
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for v in values {
            self.add(v);
        }
        self
    }

    /// Also the platform's API key and secret that the test bundles carry
    /// ([`LIVEKIT`]; the URL is not a secret).
    pub fn livekit(self) -> Forbidden {
        self.values(LIVEKIT[1..].iter().map(|(_, v)| *v))
    }

    /// Adds `value` in place.
    pub fn add(&mut self, value: impl Into<String>) -> &mut Forbidden {
        let v = value.into();
        if !v.is_empty() && !self.0.contains(&v) {
            self.0.push(v);
        }
        self
    }

    /// Adds the token's strings in place.
    pub fn add_token(&mut self, token: &Token) -> &mut Forbidden {
        for s in token_strings(token) {
            self.add(s);
        }
        self
    }

    /// The forbidden strings.
    pub fn strings(&self) -> &[String] {
        &self.0
    }

    /// Those forbidden strings that `text` contains.
    pub fn found_in(&self, text: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| text.contains(s.as_str()))
            .cloned()
            .collect()
    }

    /// Asserts that `text` (named `what` in the failure) holds none of them;
    /// the failure names how many leaked, never the strings themselves.
    pub fn assert_not_in(&self, what: &str, text: &str) {
        let found = self.found_in(text);
        assert!(
            found.is_empty(),
            "{what} leaks {} forbidden string(s)",
            found.len()
        );
    }

    /// Asserts that neither stdout nor stderr of `out` holds any of them.
    pub fn assert_not_printed(&self, out: &Output) {
        self.assert_not_in("stdout", &String::from_utf8_lossy(&out.stdout));
        self.assert_not_in("stderr", &String::from_utf8_lossy(&out.stderr));
    }
}

impl<S: AsRef<str>> FromIterator<S> for Forbidden {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Forbidden {
        Forbidden::new().values(iter.into_iter().map(|s| s.as_ref().to_string()))
    }
}
