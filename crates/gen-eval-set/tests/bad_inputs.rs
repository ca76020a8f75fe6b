//! Bad outputs, run through the binary as a user would: an output that is one of the inputs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn repo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for f in ["kb.jsonl", "questions.toml", "train_qwen_v1.jsonl"] {
        std::fs::copy(repo_data().join(f), dir.path().join("data").join(f)).unwrap();
    }
    for (flag, file) in [("--train", "train_qwen_v1.jsonl"), ("--kb", "kb.jsonl"), ("--questions", "questions.toml")] {
        let path = dir.path().join("data").join(file);
        Command::cargo_bin("gen-eval-set")
            .unwrap()
            .current_dir(dir.path())
            .arg("--out")
            .arg(&path)
            .assert()
            .failure()
            .stderr(contains(format!("--out is the same file as {flag}")).and(contains("choose another --out")));
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(repo_data().join(file)).unwrap(), "{file} changed");
    }
}
