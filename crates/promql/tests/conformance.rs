//! Runs Prometheus's PromQL test scripts (the shared conformance corpus) through the engine
//! and fails when more cases fail than the ratchet allows.

use std::path::PathBuf;

use osprey_promql::promqltest::{run_paths, RunOptions};

/// Failures measured on the corpus at the last change of the engine (2048 passed, 0 failed,
/// 0 skipped, strict). Lower it whenever the engine gets better; a rise means a regression.
const MAX_FAILURES: usize = 0;

/// Cases passing at the same measurement: fewer means cases started failing or being skipped.
const MIN_PASSED: usize = 2048;

fn corpus_dir() -> PathBuf {
    match std::env::var_os("OSPREY_CONFORMANCE_DIR") {
        // Either the corpus root (with `promql/` inside) or the PromQL directory itself.
        Some(d) if PathBuf::from(&d).join("promql").is_dir() => PathBuf::from(d).join("promql"),
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/promql"),
    }
}

#[test]
// The ratchet is 0 today; the comparison stays general for when the corpus grows.
#[allow(clippy::absurd_extreme_comparisons)]
fn promql_corpus_does_not_regress() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        println!("skipped: conformance corpus not found at {}", dir.display());
        return;
    }
    let mut out = Vec::new();
    // Strict, as upstream's harness: also step invariance under `@` and range consistency.
    let summary = run_paths(&[dir], &RunOptions { strict: true }, &mut out);
    let text = String::from_utf8_lossy(&out);
    // Set to a file path to keep the full report (failures included) for inspection.
    if let Some(path) = std::env::var_os("OSPREY_CONFORMANCE_REPORT") {
        std::fs::write(path, text.as_bytes()).expect("write conformance report");
    }
    let tail: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ') && l.contains(" passed, ")).collect();
    println!("{}", tail.join("\n"));
    assert!(summary.passed >= MIN_PASSED, "{} passed, fewer than {MIN_PASSED}:\n{text}", summary.passed);
    assert!(
        summary.failed <= MAX_FAILURES,
        "{} failures exceed the ratchet of {MAX_FAILURES}:\n{text}",
        summary.failed
    );
}
