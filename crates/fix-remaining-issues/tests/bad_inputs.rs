//! Bad outputs, run through the binary as a user would: an output that is one of the inputs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diagnose/tests/fixtures").join(name)
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (train, analysis) = (dir.path().join("train.jsonl"), dir.path().join("error_analysis.json"));
    std::fs::write(&train, "{\"text\": \"t\"}\n").unwrap();
    std::fs::write(&analysis, "{}").unwrap();
    let run = |out: &Path| {
        Command::cargo_bin("fix-remaining-issues")
            .unwrap()
            .arg("--kb")
            .arg(fixture("kb.jsonl"))
            .arg("--questions")
            .arg(fixture("questions.toml"))
            .arg("--train")
            .arg(&train)
            .arg("--eval")
            .arg(&train)
            .arg("--analysis")
            .arg(&analysis)
            .arg("--out")
            .arg(out)
            .assert()
            .failure()
    };
    // The merged set would replace the training set it extends (and grow on every rerun).
    run(&train).stderr(contains("--out is the same file as --train").and(contains("choose another --out")));
    run(&analysis).stderr(contains("--out is the same file as --analysis"));
    assert_eq!(std::fs::read_to_string(&train).unwrap(), "{\"text\": \"t\"}\n");
    assert_eq!(std::fs::read_to_string(&analysis).unwrap(), "{}");
}
