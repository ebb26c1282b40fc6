//! Property tests: what holds for every input of a kind, not for a few.
//!
//! 1. Any secret set that obeys PROTOCOL.md §6 (names of 1 to 70 word
//!    characters, values up to 16 KiB of any Unicode but NUL, newlines and
//!    `=` included) survives seal → open → parse → merge → the environment
//!    block byte for byte; a smaller number of cases goes through the real
//!    binary and compares the child's own `/proc/self/environ`.
//! 2. Any dotenv file that agent-init accepts means what python-dotenv 1.2.2
//!    reads in it: the same names, in the same order, with the same values.

mod support;

use agent_init::base::sensitive::SecretBytes;
use agent_init::env::Environment;
use agent_init::protocol::rules::LIVEKIT_NAMES;
use agent_init::protocol::secrets;
use agent_init::protocol::token::Token;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use support::python_dotenv::File;

// ---------------------------------------------------------------------------
// 1. Secrets: seal → open → parse → merge → environment.

/// A §6 name that is none of the names agent-init treats specially
/// (`LIVEKIT_*` are the platform's; the bootstrap names are never passed on)
/// and not `PATH`, which the binary runs need.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_]{1,70}".prop_filter("special name", |n| {
        !LIVEKIT_NAMES.contains(&n.as_str())
            && !agent_init::protocol::rules::is_stripped(n.as_ref())
            && n != "PATH"
    })
}

fn not_nul() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("NUL", |c| *c != '\0')
}

/// A value of §6: short text of any Unicode (newlines and `=` come up often),
/// or a run filling up to exactly 16 KiB of UTF-8.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(
            prop_oneof![3 => not_nul(), 1 => prop::sample::select(vec!['=', '\n', '\r', '\t', ' ', '"', '\\', '$', 'é', '☃'])],
            0..48,
        )
        .prop_map(String::from_iter),
        1 => ((agent_init::protocol::rules::MAX_VALUE - 64)..=agent_init::protocol::rules::MAX_VALUE, not_nul()).prop_map(|(bytes, c)| {
            std::iter::repeat_n(c, bytes / c.len_utf8()).collect()
        }),
    ]
}

/// A secret set: unique names, in a random order.
fn secret_set(max: usize) -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map(name(), value(), 0..max)
        .prop_map(|m: BTreeMap<String, String>| m.into_iter().collect::<Vec<_>>())
        .prop_shuffle()
}

/// The platform's three values: required, so never empty.
fn livekit() -> impl Strategy<Value = [String; 3]> {
    let v = || value().prop_filter("empty", |v| !v.is_empty());
    [v(), v(), v()]
}

fn plaintext(secrets: &[(String, String)], livekit: &[String; 3]) -> String {
    serde_json::json!({
        "secrets": secrets.iter().map(|(n, v)| serde_json::json!({
            "name": n, "value": v, "updated_at": "2026-11-20T08:30:00Z",
        })).collect::<Vec<_>>(),
        "livekit": {"url": livekit[0], "api_key": livekit[1], "api_secret": livekit[2]},
    })
    .to_string()
}

/// The environment §7 promises: inherited, then the secrets in bundle order,
/// then the three platform values, each `NAME=VALUE` byte for byte.
fn expected_block(
    inherited: &[(&str, &str)],
    secrets: &[(String, String)],
    livekit: &[String; 3],
) -> Vec<Vec<u8>> {
    inherited
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .chain(secrets.iter().map(|(n, v)| format!("{n}={v}")))
        .chain(
            LIVEKIT_NAMES
                .iter()
                .zip(livekit)
                .map(|(n, v)| format!("{n}={v}")),
        )
        .map(String::into_bytes)
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 48, failure_persistence: None, ..Config::default() })]

    #[test]
    fn any_valid_secret_set_reaches_the_environment_block_byte_for_byte(
        secrets in secret_set(24),
        livekit in livekit(),
    ) {
        let token = Token::generate().unwrap();
        let body = agent_init::protocol::bundle::seal(&token, plaintext(&secrets, &livekit).as_bytes()).unwrap();
        let opened = agent_init::protocol::bundle::open(&token, body.as_bytes()).unwrap();
        let parsed = secrets::parse(opened.expose()).unwrap();
        let inherited = [("PATH", "/bin"), ("HOME", "/home/agent")];
        let env = Environment::production(
            inherited
                .iter()
                .map(|(n, v)| (OsString::from(n), SecretBytes::new(v.as_bytes().to_vec())))
                .collect(),
            parsed,
        );
        env.check(&LIVEKIT_NAMES.map(String::from), &["agent".into()], agent_init::sys::arg_max())
            .unwrap();
        let block = env.into_block();
        let got: Vec<Vec<u8>> = block.c_strs().iter().map(|c| c.to_bytes().to_vec()).collect();
        prop_assert_eq!(got, expected_block(&inherited, &secrets, &livekit));
    }
}

proptest! {
    // Each case starts the binary and a Python child: few cases, small sets.
    #![proptest_config(Config { cases: 6, failure_persistence: None, ..Config::default() })]

    #[test]
    fn any_valid_secret_set_reaches_the_childs_environ_through_the_binary(
        secrets in secret_set(12),
        livekit in livekit(),
    ) {
        let dir = support::scratch("prop-binary");
        let token = Token::generate().unwrap();
        let bundle = dir.join("bundle.json");
        std::fs::write(
            &bundle,
            agent_init::protocol::bundle::seal(&token, plaintext(&secrets, &livekit).as_bytes()).unwrap(),
        )
        .unwrap();
        let (marker, out) = (dir.join("started"), dir.join("environ"));
        let output = support::Run::new(&dir)
            .env("LIVEKIT_BOOTSTRAP_TOKEN", token.encode().expose())
            .env("LIVEKIT_SECRETS_URL", format!("file://{}", bundle.display()))
            .args(support::capture_command(&marker, &out))
            .output();
        prop_assert_eq!(
            output.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let got = support::read_captured(&out);
        let want = expected_block(&[("PATH", "/usr/local/bin:/usr/bin:/bin")], &secrets, &livekit);
        prop_assert!(got == want, "the child's environ differs from the secret set");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------------------
// 2. Dotenv: agent-init reads what python-dotenv reads.

/// Names share a prefix no environment variable of the Python process has,
/// so `${NAME}` means the same on both sides; a few repeat often, so
/// duplicates and references to earlier keys come up.
fn dotenv_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec!["QZ_A", "QZ_B", "qz_c"]).prop_map(String::from),
        1 => "QZ[A-Za-z0-9_]{0,6}",
    ]
}

fn reference() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("${QZ_A}".to_string()),
        Just("${QZ_B:-fallback}".to_string()),
        Just("${QZ_UNSET:-d e f}".to_string()),
        Just("${QZ_UNSET}".to_string()),
        Just("$QZ_A".to_string()),
        Just("${".to_string()),
    ]
}

fn unquoted() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z0-9 ._/:=@+-]{1,6}",
            1 => prop::sample::select(vec!["#", " #", "\t", "'", "\"", "\\", "é", "☃", "{}", "$"]).prop_map(String::from),
            1 => reference(),
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

fn single_quoted() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z0-9 #=$:{}\"-]{1,6}",
            1 => prop::sample::select(vec!["\\\\", "\\'", "\\n", "\n", "\t", "é"]).prop_map(String::from),
            1 => reference(),
        ],
        0..5,
    )
    .prop_map(|parts| format!("'{}'", parts.concat()))
}

fn double_quoted() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => "[a-zA-Z0-9 #=:{}'-]{1,6}",
            2 => prop::sample::select(vec![
                "\\\\", "\\\"", "\\'", "\\n", "\\r", "\\t", "\\a", "\\b", "\\f", "\\v", "\\x", "\\$", "\n", "\t", "☃",
            ])
            .prop_map(String::from),
            1 => reference(),
        ],
        0..6,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

fn line() -> impl Strategy<Value = String> {
    let assignment = (
        prop::sample::select(vec!["", "", "", "export ", "  "]),
        dotenv_name(),
        prop::sample::select(vec!["=", "=", " = ", "\t=", "= "]),
        prop_oneof![3 => unquoted(), 2 => single_quoted(), 2 => double_quoted()],
        prop::sample::select(vec!["", "", "", " # note", "   ", "\t# x=y"]),
    )
        .prop_map(|(e, n, eq, v, c)| format!("{e}{n}{eq}{v}{c}"));
    prop_oneof![
        8 => assignment,
        1 => prop::sample::select(vec!["", "# a comment", "   # indented", "  "]).prop_map(String::from),
        // Lines agent-init refuses; the file is then not compared.
        1 => prop::sample::select(vec!["QZ_BARE", "not an assignment", "QZ-A=1", "'QZ_Q'=quoted name"])
            .prop_map(String::from),
    ]
}

fn dotenv_text() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(line(), 1..8),
        prop::sample::select(vec!["\n", "\n", "\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, eol, final_eol)| {
            let mut t = lines.join(eol);
            if final_eol {
                t.push_str(eol);
            }
            t
        })
}

/// python-dotenv's `dotenv_values(path)` of each file, with an empty
/// environment, so no `QZ*` name is in it.
fn python_dotenv(paths: &[PathBuf]) -> Vec<Vec<(String, Option<String>)>> {
    let files: Vec<File> = paths.iter().map(File::new).collect();
    support::python_dotenv::read(&serde_json::json!({}), &files)
        .into_iter()
        .map(|r| r.values)
        .collect()
}

#[test]
#[ignore = "needs python-dotenv 1.2.2 (scripts/test.sh installs it)"]
fn any_dotenv_file_agent_init_accepts_means_what_python_dotenv_reads() {
    const CASES: usize = 400;
    let dir = support::scratch("prop-dotenv");
    let mut runner = TestRunner::new(Config::default());
    let strategy = dotenv_text();
    let texts: Vec<String> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    let paths: Vec<PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.join(format!("{i}.env"));
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect();
    let theirs = python_dotenv(&paths);
    let mut accepted = 0;
    let mut differ = Vec::new();
    for ((path, text), theirs) in paths.iter().zip(&texts).zip(theirs) {
        let Ok(ours) = agent_init::local::dotenv::load(path, &|_| None) else {
            continue;
        };
        accepted += 1;
        let ours: Vec<(String, Option<String>)> = ours
            .into_iter()
            .map(|e| (e.name, Some(e.value.expose().to_string())))
            .collect();
        if ours != theirs {
            differ.push(format!(
                "file {text:?}\n  agent-init:    {ours:?}\n  python-dotenv: {theirs:?}"
            ));
        }
    }
    // Smallest first: the easiest to read.
    differ.sort_by_key(String::len);
    assert!(
        differ.is_empty(),
        "{} of {accepted} accepted files read differently:\n{}",
        differ.len(),
        differ
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Not vacuous: most generated files are accepted and compared.
    assert!(
        accepted >= CASES / 3,
        "only {accepted} of {CASES} generated files were accepted"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
