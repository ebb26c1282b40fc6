//! `--help` and `--version`.

use super::*;

/// Every `"--flag"` literal in config.rs and every `AGENT_INIT_*`/`LIVEKIT_*`
/// literal anywhere in src/: what agent-init reads.
fn names_in_sources() -> BTreeSet<String> {
    let mut files = Vec::new();
    support::workspace::rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests name made-up flags and variables.
        let text = text.split("#[cfg(test)]").next().unwrap();
        let is_config = f.ends_with("src/config.rs");
        for (i, _) in text.match_indices('"') {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if !rest[end..].starts_with('"') {
                continue;
            }
            let lit = &rest[..end];
            let env_var = (lit.starts_with("AGENT_INIT_") || lit.starts_with("LIVEKIT_"))
                && lit.len() > "LIVEKIT_".len()
                && !lit.ends_with('_');
            let flag = is_config && lit.starts_with("--") && lit.len() > 2;
            if env_var || flag {
                names.insert(lit.to_string());
            }
        }
    }
    names
}

#[test]
fn help_names_every_flag_and_environment_variable_agent_init_reads() {
    let dir = scratch("help");
    let out = Run::new(&dir).args(["--help"]).output();
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    let names = names_in_sources();
    for must in [
        "--secrets-file",
        "--secrets",
        "--list",
        "--check",
        "--out",
        "--token",
        "LIVEKIT_BOOTSTRAP_TOKEN",
    ] {
        assert!(
            names.contains(must),
            "the source scan missed {must}: {names:?}"
        );
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !help.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "--help does not name {missing:?}");
    for short in ["-h", "-V", "seal"] {
        assert!(help.contains(short), "{short}");
    }
    let out = Run::new(&dir).args(["seal", "--help"]).output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), help);
}

#[test]
fn version_prints_the_package_version() {
    let dir = scratch("version");
    let out = Run::new(&dir).args(["--version"]).output();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!("agent-init {}\n", env!("CARGO_PKG_VERSION"))
    );
}
