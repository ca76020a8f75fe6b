//! Bad outputs, run through the binary as a user would: an output that is one of the inputs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

#[test]
fn the_analysis_may_not_overwrite_the_report_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, "{\"summary\": {}, \"details\": []}").unwrap();
    let run = |out: &Path| {
        Command::cargo_bin("diagnose-errors")
            .unwrap()
            .current_dir(repo(""))
            .arg("--from-report")
            .arg(&report)
            .arg("--out")
            .arg(out)
            .assert()
            .failure()
    };
    run(&report).stderr(contains("--out is the same file as --from-report").and(contains("choose another --out")));
    // The heat map goes beside --out, as .svg: it may not replace an input either.
    let eval_copy = dir.path().join("eval.svg");
    std::fs::copy(repo("data/eval_qwen_v1.jsonl"), &eval_copy).unwrap();
    Command::cargo_bin("diagnose-errors")
        .unwrap()
        .current_dir(repo(""))
        .arg("--eval")
        .arg(&eval_copy)
        .arg("--from-report")
        .arg(&report)
        .arg("--out")
        .arg(dir.path().join("eval.json"))
        .assert()
        .failure()
        .stderr(contains("heat map").and(contains("--eval")));
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "{\"summary\": {}, \"details\": []}");
    assert_eq!(std::fs::read(&eval_copy).unwrap(), std::fs::read(repo("data/eval_qwen_v1.jsonl")).unwrap());
}
