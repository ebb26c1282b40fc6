//! The leaves every stage uses, with no dependency inside the crate (and none
//! on `sys`, the one module with `unsafe`):
//!
//! - [`error`]: the one error enum, its exit code (PROTOCOL.md §8) and its
//!   message, which never holds a value;
//! - [`log`]: one line per event on stderr, at a level;
//! - [`sensitive`]: the zeroizing, redacting types every secret lives in;
//! - [`time`]: the calendar, HTTP dates and RFC 3339 timestamps.

pub mod error;
pub mod log;
pub mod sensitive;
pub mod time;
