//! The protocol (PROTOCOL.md §1–§7), pure: no I/O, no `sys`, no process state.
//!
//! Everything here is a function of its arguments, so agent-init and
//! agent-secrets share one implementation and cannot disagree about the
//! format:
//!
//! | section | module |
//! | --- | --- |
//! | §1 base64url, §2 token, §3 key derivation | [`token`] |
//! | §5 the sealed bundle | [`bundle`] |
//! | §6 the plaintext, §6.1 file secrets | [`secrets`] |
//! | §6 names and values, §7 the platform variables and what is never passed on | [`rules`] |
//! | §6.2 updating a bundle, and its dates | [`update`] |
//!
//! Not even a log line: [`secrets::parse`] returns its warnings (a bundle
//! secret that the platform's value or §7 overrides) as
//! [`secrets::Warning`]s, and whoever opened the bundle prints them.

pub mod bundle;
pub mod rules;
pub mod secrets;
pub mod token;
pub mod update;
