//! Replays every committed fuzz input through the same checks the fuzz
//! targets run, on stable Rust, so `cargo test` keeps each path the fuzzers
//! reached, and each crash they found, fixed without nightly or libFuzzer.
//!
//! `fuzz/corpus/<target>/` holds the minimized corpora; `fuzz/regressions/
//! <target>/` holds the inputs that once crashed a target (see
//! docs/HARDENING.md). The checks live in `fuzz/src/lib.rs`, included here
//! as a module, so a target and its replay cannot drift apart.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of `fuzz/corpus/<target>` and
/// `fuzz/regressions/<target>` (when it exists); a corpus must not be empty.
fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&root.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty: the replay would prove nothing"
    );
    let regressions = root.join("regressions").join(target);
    let mut all = corpus;
    if regressions.is_dir() {
        all.extend(inputs(&regressions));
    }
    let mut failed = Vec::new();
    for path in &all {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs fail their check:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}

#[test]
fn token_corpus_parses_or_refuses_with_78_and_never_quotes_the_key() {
    replay("token", checks::token_parse);
}

#[test]
fn bundle_corpus_opens_or_refuses_with_65_and_never_shows_key_material() {
    replay("bundle_open", checks::bundle_open);
}

#[test]
fn plaintext_corpus_obeys_section_6_or_refuses_with_65_without_a_value() {
    replay("secrets_parse", checks::secrets_parse);
}

#[test]
fn sealed_plaintext_corpus_round_trips_into_the_environment_block() {
    replay("sealed_plaintext", checks::sealed_plaintext);
}

#[test]
fn dotenv_corpus_parses_to_valid_entries_or_refuses_with_a_user_error() {
    replay("dotenv", checks::dotenv);
}

#[test]
fn merge_corpus_matches_the_precedence_model() {
    replay("merge", checks::merge);
}

#[test]
fn retry_after_corpus_parses_without_overflow() {
    replay("retry_after", checks::retry_after);
}

#[test]
fn config_parse_corpus_refuses_with_a_usage_or_config_code_and_never_echoes_a_value() {
    replay("config_parse", checks::config_parse);
}
