//! The workspace's two binaries, as `cargo test` built them or as they
//! ship, and scratch directories: what agent-init's suites and the
//! service's (`service/tests/support`, through `#[path]`) both need.
//!
//! Standard library only. A binary is the one its variable names
//! (`AGENT_INIT_BIN`, `AGENT_SECRETS_BIN`; a relative path is taken from
//! the workspace root; scripts/test.sh points them at the release builds),
//! else the one cargo built for this test crate, else the one
//! `cargo test --workspace` built beside it in the same target directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root (agent-secrets' crate is its `service/` directory).
pub fn root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if env!("CARGO_PKG_NAME") == "agent-secrets" {
        crate_dir.parent().unwrap().to_path_buf()
    } else {
        crate_dir.to_path_buf()
    }
}

/// Adds the `.rs` files below `dir`, at any depth, to `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The agent-init binary under test.
pub fn agent_init() -> PathBuf {
    binary(
        "AGENT_INIT_BIN",
        option_env!("CARGO_BIN_EXE_agent-init"),
        "agent-init",
    )
}

/// The agent-secrets binary under test.
pub fn agent_secrets() -> PathBuf {
    binary(
        "AGENT_SECRETS_BIN",
        option_env!("CARGO_BIN_EXE_agent-secrets"),
        "agent-secrets",
    )
}

fn binary(var: &str, built_here: Option<&str>, name: &str) -> PathBuf {
    let p = match std::env::var_os(var).filter(|p| !p.is_empty()) {
        Some(p) => root().join(p),
        None => match built_here {
            Some(p) => PathBuf::from(p),
            None => {
                let exe = std::env::current_exe().unwrap();
                exe.parent().unwrap().parent().unwrap().join(name)
            }
        },
    };
    assert!(
        p.is_file(),
        "no {name} binary at {} (set {var}, or run cargo test --workspace)",
        p.display()
    );
    p
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{}-test-{name}-{}-{}",
        env!("CARGO_PKG_NAME"),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
