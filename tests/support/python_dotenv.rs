//! The one bridge to python-dotenv 1.2.2, the reference agent-init's dotenv
//! parser is compared with: `python_dotenv.py` beside this file, run with
//! `python3`. Missing python3, a python-dotenv that does not import, or
//! another version fails the test with the reason; nothing is skipped.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Names and values in file order; `None` is python-dotenv's `None` (a bare name).
pub type Pairs = Vec<(String, Option<String>)>;

/// What python-dotenv makes of one file.
#[derive(Debug, Clone)]
pub struct Reading {
    /// `dotenv_values(path)`.
    pub values: Pairs,
    /// `DotEnv(path, override=False).dict()`: what `load_dotenv` would set.
    pub load: Pairs,
    /// The first argument of each warning it logged (the line it skipped).
    pub warnings: Vec<Value>,
    /// For a file asked with `bom`: the same reading of it without its BOM.
    pub without_bom: Option<Box<Reading>>,
}

/// One file to read; `bom` asks for a second reading without its BOM.
pub struct File {
    pub path: PathBuf,
    pub bom: bool,
}

impl File {
    pub fn new(path: impl AsRef<Path>) -> File {
        File {
            path: path.as_ref().to_path_buf(),
            bom: false,
        }
    }
}

fn pairs(v: &Value) -> Pairs {
    v.as_array()
        .expect("an array of pairs")
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().to_string(),
                kv[1].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn reading(v: &Value) -> Reading {
    Reading {
        values: pairs(&v["values"]),
        load: pairs(&v["load"]),
        warnings: v["warnings"].as_array().cloned().unwrap_or_default(),
        without_bom: v.get("without_bom").map(|w| Box::new(reading(w))),
    }
}

/// Reads every one of `files` with python-dotenv in one process; `env` (a
/// JSON object of strings) is the whole environment interpolation sees.
pub fn read(env: &Value, files: &[File]) -> Vec<Reading> {
    let cases: Vec<Value> = files
        .iter()
        .map(|f| json!({"path": f.path, "bom": f.bom}))
        .collect();
    let doc = ask(&json!({"env": env, "cases": cases}));
    let readings: Vec<Reading> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(reading)
        .collect();
    assert_eq!(readings.len(), files.len(), "one reading per file");
    readings
}

/// For each of `values`, whether python-dotenv takes
/// `PYTHON_DOTENV_DISABLED=value` as true.
pub fn disabled(values: &[&str]) -> Vec<bool> {
    let doc = ask(&json!({"env": {}, "disabled": values}));
    let out: Vec<bool> = serde_json::from_value(doc["disabled"].clone()).unwrap();
    assert_eq!(out.len(), values.len(), "one answer per value");
    out
}

/// Runs the script on `request`; its JSON answer.
fn ask(request: &Value) -> Value {
    let request = request.to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/python_dotenv.py");
    // Only what finds python3 and its packages; the script replaces even
    // that before each parse.
    let mut cmd = Command::new("python3");
    cmd.env_clear();
    for keep in ["PATH", "HOME", "PYENV_ROOT", "PYENV_VERSION", "VIRTUAL_ENV"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    let mut child = cmd
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is needed to run python-dotenv 1.2.2 and could not start: {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python-dotenv could not run ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}
