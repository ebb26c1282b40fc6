//! The dependency rule of docs/ARCHITECTURE.md, checked on the source: each
//! top-level module of `src/` may import only the modules its row of the
//! table allows, the table has no cycle, and `src/protocol/` (PROTOCOL.md
//! §1–§7) does no I/O. Test modules (`#[cfg(test)] mod tests`, always at the
//! end of a file) and comments are not counted.

#[path = "support/workspace.rs"]
mod workspace;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use workspace::rust_files;

/// What each module may import, as the table in docs/ARCHITECTURE.md
/// says. `root` is `lib.rs` and `main.rs`, which nothing may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("base", &[]),
    ("sys", &["base"]),
    ("protocol", &["base"]),
    ("source", &["base", "protocol", "sys"]),
    ("local", &["base", "protocol", "sys", "env"]),
    ("env", &["base", "protocol"]),
    ("files", &["base", "protocol", "env", "sys"]),
    ("health", &["base", "sys"]),
    (
        "launch",
        &[
            "base", "protocol", "source", "env", "files", "health", "sys",
        ],
    ),
    (
        "config",
        &[
            "base", "protocol", "source", "local", "files", "health", "launch", "sys",
        ],
    ),
    ("report", &["base", "config", "env", "files", "launch"]),
    (
        "root",
        &[
            "base", "sys", "protocol", "source", "local", "env", "files", "health", "launch",
            "config", "report",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    match first.strip_suffix(".rs") {
        Some("lib") | Some("main") => "root".into(),
        Some(m) => m.into(),
        None => first.into(),
    }
}

/// The file's code: comments dropped, and the test module at its end cut off.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|l| l.contains("mod tests")) {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        // A trailing comment: cut at the first `//` outside a string, which
        // for this check only needs to skip `://` in URLs.
        let mut cut = line.len();
        let b = line.as_bytes();
        for i in 0..b.len().saturating_sub(1) {
            if b[i] == b'/' && b[i + 1] == b'/' && (i == 0 || b[i - 1] != b':') {
                cut = i;
                break;
            }
        }
        code.push_str(&line[..cut]);
        code.push('\n');
    }
    code
}

/// The crate's top-level modules a piece of code names: `crate::NAME`
/// (including `use crate::{a, b}` groups), and the log macros, which are
/// `base`'s.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let group = rest.starts_with('{');
        let body = if group {
            &rest[1..rest.find('}').unwrap_or(rest.len())]
        } else {
            rest
        };
        for part in body.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = part.trim().get(name.len()..).unwrap_or("");
            if name.is_empty() {
                continue;
            }
            if after.starts_with('!') {
                out.insert("base".into()); // crate::warn! and its siblings
            } else {
                out.insert(name);
            }
            if !group {
                break;
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut g: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        let rel = f.strip_prefix(src()).unwrap().display().to_string();
        for dep in imports(&code_of(f)) {
            if dep != m {
                g.entry(m.clone())
                    .or_default()
                    .entry(dep)
                    .or_default()
                    .push(rel.clone());
            }
        }
        g.entry(m).or_default();
    }
    g
}

#[test]
fn every_module_imports_only_what_the_dependency_table_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (m, deps) in graph() {
        let ok = allowed.get(m.as_str()).unwrap_or_else(|| {
            panic!("src/{m} is not in the table: add its row here and to docs/ARCHITECTURE.md")
        });
        for (dep, files) in deps {
            if !ok.contains(&dep.as_str()) {
                wrong.push(format!("{m} imports {dep} (in {})", files.join(", ")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges the table forbids:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_dependency_table_has_no_cycle_and_nothing_imports_the_crate_root() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert!(allowed.values().all(|deps| !deps.contains(&"root")));
    // Kahn's algorithm: a cycle leaves modules that never reach in-degree 0.
    let mut left: BTreeMap<&str, BTreeSet<&str>> = allowed
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut order = Vec::new();
    while let Some(next) = left.iter().find(|(_, d)| d.is_empty()).map(|(m, _)| *m) {
        left.remove(next);
        for d in left.values_mut() {
            d.remove(next);
        }
        order.push(next);
    }
    assert!(left.is_empty(), "modules in a cycle: {:?}", left.keys());
    assert_eq!(order.len(), ALLOWED.len());
}

#[test]
fn the_protocol_does_no_io_and_reads_no_clock() {
    let mut files = Vec::new();
    rust_files(&src().join("protocol"), &mut files);
    let io = [
        "std::fs",
        "std::net",
        "std::process",
        "std::io::std",
        "File::",
        "println!",
        "eprintln!",
        "SystemTime",
        "Instant",
        "crate::sys",
        "crate::base::log",
        "crate::error!",
        "crate::warn!",
        "crate::info!",
        "crate::debug!",
    ];
    let mut found = Vec::new();
    for f in &files {
        let code = code_of(f);
        for what in io {
            if code.contains(what) {
                found.push(format!("{} uses {what}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in src/protocol:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_module_imports_nothing_of_the_crate() {
    let code = code_of(&src().join("protocol/rules.rs"));
    assert!(
        !code.contains("crate::") && !code.contains("super::"),
        "src/protocol/rules.rs must stand alone"
    );
}

#[test]
fn the_check_sees_grouped_and_macro_imports() {
    // The parser of this file, on the forms the source uses.
    let code = "use crate::{env::Environment, files};\nlet x = crate::sys::pid();\ncrate::warn!(\"x\");\n// crate::report\n";
    let got = imports(&code_of_text(code));
    let want: BTreeSet<String> = ["env", "files", "sys", "base"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

fn code_of_text(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("agent-init-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("x.rs");
    std::fs::write(&f, text).unwrap();
    let code = code_of(&f);
    std::fs::remove_dir_all(&dir).unwrap();
    code
}
