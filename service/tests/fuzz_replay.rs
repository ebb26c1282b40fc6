//! Replays the `service_request` seeds, fuzz corpus and any regressions through
//! the fuzz target's own check on stable Rust, as the main crate's
//! tests/fuzz_corpus_replay.rs does for agent-init's targets.

#[allow(dead_code)]
#[path = "../../fuzz/src/service.rs"]
mod service;

use std::path::Path;

#[test]
fn service_request_corpus_is_refused_with_a_4xx_or_parses_within_the_caps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in [
        "seeds/service_request",
        "corpus/service_request",
        "regressions/service_request",
    ] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
        }
    }
    assert!(
        files.len() >= 9,
        "fuzz/{{seeds,corpus}}/service_request hold {} inputs: the replay would prove little",
        files.len()
    );
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| service::service_request(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "inputs fail their check:\n{}",
        failed.join("\n")
    );
}
