//! Logging: one line per event, on stderr, prefixed `agent-init:`.
//!
//! Nothing is ever written to stdout except what `--list` and `seal` exist to
//! print. Each line goes out in a single `write` so lines from agent-init and
//! the agent never interleave mid-line. Callers pass names, counts, statuses
//! and sizes; the secret-holding types have no `Display`, so they cannot be
//! formatted here.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much to say, least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    /// Parses `AGENT_INIT_LOG`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the most verbose level that is printed.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be printed.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line at `level`. Use the macros instead.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let prefix = match level {
        Level::Error => "agent-init: error: ",
        Level::Warn => "agent-init: warning: ",
        Level::Info | Level::Debug => "agent-init: ",
    };
    let mut line = String::with_capacity(128);
    line.push_str(prefix);
    let _ = std::fmt::write(&mut line, args);
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Logs at error level.
/// The conventional name of signal `n` (`SIGTERM`), or `signal N`.
pub fn signal_name(n: i32) -> String {
    match nix::sys::signal::Signal::try_from(n) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {n}"),
    }
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::base::log::write($crate::base::log::Level::Error, format_args!($($t)*)) };
}
/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::base::log::write($crate::base::log::Level::Warn, format_args!($($t)*)) };
}
/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::base::log::write($crate::base::log::Level::Info, format_args!($($t)*)) };
}
/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::base::log::write($crate::base::log::Level::Debug, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_parse_case_insensitively() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse(" warn "), Some(Level::Warn));
        assert_eq!(Level::parse("loud"), None);
    }
}
