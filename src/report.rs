//! What agent-init prints when it is asked for output rather than a start:
//! `--help`, `--version`, `--list` and `--check`'s summary.
//!
//! Guarantees: a listing shows names, origins, paths and dates, never a
//! value, one line per variable or file secret (a control character in a
//! name or a path prints as `?`, so it cannot start a line of its own); a
//! name that is a piece of a wrapped value is never shown. Each function
//! returns the exit status, 0.

use crate::env::{Environment, Origin};
use crate::files::Plan;
use crate::launch::Command;
use std::io::Write;

/// `--help`: the usage on stdout.
pub fn usage() -> i32 {
    let _ = std::io::stdout().write_all(crate::config::usage().as_bytes());
    0
}

/// `--version`: `agent-init X.Y.Z` on stdout.
pub fn version() -> i32 {
    let _ = writeln!(
        std::io::stdout(),
        "agent-init {}",
        env!("CARGO_PKG_VERSION")
    );
    0
}

/// `--list`: the command's variables and file secrets on stdout, without
/// the names in `unlisted`.
pub fn list(environment: &Environment, unlisted: &[String], files: &Plan) -> i32 {
    // One line per variable: a control character in a name or a path
    // must not start a line of its own.
    let printable = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let mut out = String::new();
    // A "name" that is a piece of a wrapped value is never shown.
    for v in environment
        .vars()
        .iter()
        .filter(|v| !unlisted.iter().any(|n| v.name == n.as_str()))
    {
        out.push_str(&printable(&v.name.to_string_lossy()));
        out.push('\t');
        out.push_str(&printable(&v.origin.to_string()));
        if let Origin::Bundle {
            updated_at: Some(t),
        } = &v.origin
        {
            out.push('\t');
            out.push_str(t);
        }
        out.push('\n');
    }
    // File secrets: name, then `file` and the path it gets.
    for f in files.files() {
        out.push_str(&printable(&f.name));
        out.push_str("\tfile ");
        out.push_str(&printable(&files.path(&f.name).to_string_lossy()));
        if let Some(t) = &f.updated_at {
            out.push('\t');
            out.push_str(t);
        }
        out.push('\n');
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

/// `--check`'s summary on stderr, once every check passed: the counts by
/// origin, the file secrets and where the command resolves. Printed whatever
/// `AGENT_INIT_LOG` says: it is what `--check` is asked for.
pub fn check_passed(environment: &Environment, files: &Plan, resolved: Option<&Command>) -> i32 {
    let files_summary = if files.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = files.files().iter().map(|f| f.name.as_str()).collect();
        format!(
            "; {} file secret(s) for {}: {}",
            names.len(),
            files.dir().display(),
            names.join(", ")
        )
    };
    let resolved = resolved.map_or(String::new(), |c| {
        format!(
            "; command {} resolves to {}",
            c.name,
            c.path.to_string_lossy()
        )
    });
    let count = |f: fn(&Origin) -> bool| environment.vars().iter().filter(|v| f(&v.origin)).count();
    let summary = format!(
        "agent-init: check passed: {} variables ({} from the bundle, {} platform, {} from files, {} from flags, {} inherited){files_summary}{resolved}\n",
        environment.len(),
        count(|o| matches!(o, Origin::Bundle { .. })),
        count(|o| matches!(o, Origin::Platform)),
        count(|o| matches!(o, Origin::File(_))),
        count(|o| matches!(o, Origin::Flag)),
        count(|o| matches!(o, Origin::Inherited)),
    );
    let _ = std::io::stderr().write_all(summary.as_bytes());
    0
}
