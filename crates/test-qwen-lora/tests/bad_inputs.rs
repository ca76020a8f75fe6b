//! Bad inputs, run through the binary on the tiny fixture model as a user would: a report over
//! an input, a broken adapter, garbage answers that post-processing would hide, rules files
//! without rules, problems with --answers-from, negative numbers, missing files.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// The binary in the repository root (so the default data files are found), `--model` at
/// `model`.
fn cmd(model: &Path) -> Command {
    let mut c = Command::cargo_bin("test-qwen-lora").unwrap();
    c.current_dir(repo("")).arg("--model").arg(model).args(["--max-new-tokens", "8"]);
    c
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn the_report_may_not_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("eval.jsonl");
    std::fs::copy(repo("data/eval_qwen_v1.jsonl"), &eval).unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::copy(repo("data/rules.toml"), &rules).unwrap();
    let no_model = dir.path().join("no-model");
    for (flag, path) in [("--eval", &eval), ("--rules", &rules)] {
        cmd(&no_model)
            .args(["--no-adapter"])
            .arg(flag)
            .arg(path)
            .arg("--report")
            .arg(path)
            .assert()
            .failure()
            .stderr(contains(format!("--report is the same file as {flag}")).and(contains("choose another --report")));
    }
    assert_eq!(std::fs::read(&eval).unwrap(), std::fs::read(repo("data/eval_qwen_v1.jsonl")).unwrap());
    assert_eq!(std::fs::read(&rules).unwrap(), std::fs::read(repo("data/rules.toml")).unwrap());
}

#[test]
fn a_nan_adapter_is_refused_before_generating() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = (dir.path().join("tiny"), dir.path().join("adapter"));
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    qwen_lora::fixture::write_tiny_adapter(&model, &adapter, 3).unwrap();
    let tensor = qwen_lora::fixture::poison_adapter(&adapter, f32::NAN).unwrap();
    let report = dir.path().join("r.json");
    cmd(&model)
        .arg("--adapter")
        .arg(&adapter)
        .args(["--limit", "2", "--report"])
        .arg(&report)
        .assert()
        .failure()
        .stdout(contains("PASSED").not())
        .stderr(contains(format!("tensor '{tensor}' holds NaN")));
    assert!(!report.exists());
}

/// A report of the first `n` eval questions whose raw answers are `raw`, written by the binary
/// itself (from the tiny model, then edited), for --answers-from.
fn report_with_raw_answers(dir: &Path, n: usize, raw: &str) -> PathBuf {
    let model = dir.join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let report = dir.join("generated.json");
    cmd(&model)
        .args(["--no-adapter", "--no-postprocess", "--limit", &n.to_string(), "--report"])
        .arg(&report)
        .assert()
        .success();
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for d in r["details"].as_array_mut().unwrap() {
        d["raw"] = Value::String(raw.to_string());
    }
    let edited = dir.join("edited.json");
    std::fs::write(&edited, r.to_string()).unwrap();
    edited
}

#[test]
fn garbage_raw_answers_fail_the_verdict_whatever_post_processing_made_of_them() {
    for garbage in ["!!!!!!!!", ""] {
        let dir = tempfile::tempdir().unwrap();
        let earlier = report_with_raw_answers(dir.path(), 6, garbage);
        let report = dir.path().join("rescored.json");
        let a = cmd(&dir.path().join("no-model"))
            .arg("--answers-from")
            .arg(&earlier)
            .args(["--limit", "6", "--report"])
            .arg(&report)
            .assert()
            .failure()
            .stdout(contains("Goal: FAILED: 6 of 6 raw answers are empty or one repeated character"))
            .stdout(contains("PASSED").not());
        assert!(stderr_of(&a).contains("the model is broken"), "{}", stderr_of(&a));
        // The report is still written, for diagnosis, and says so too.
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["summary"]["degenerate_raw"], 6);
        assert_eq!(r["summary"]["goal_met"], false);
    }
}

#[test]
fn a_rules_file_without_rules_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let no_model = dir.path().join("no-model");
    for (name, body) in [("empty.toml", ""), ("comments.toml", "# rules to come\n")] {
        let rules = dir.path().join(name);
        std::fs::write(&rules, body).unwrap();
        cmd(&no_model)
            .arg("--no-adapter")
            .arg("--rules")
            .arg(&rules)
            .arg("--report")
            .arg(dir.path().join("r.json"))
            .assert()
            .failure()
            .stderr(contains(name).and(contains("has no [[rule]]")));
    }
    assert!(!dir.path().join("r.json").exists());
}

#[test]
fn answers_from_problems_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = report_with_raw_answers(dir.path(), 3, "依據公司規範:不知道。");
    let no_model = dir.path().join("no-model");
    // The earlier report answered 3 questions; 4 are asked.
    cmd(&no_model)
        .arg("--answers-from")
        .arg(&earlier)
        .args(["--limit", "4", "--report"])
        .arg(dir.path().join("r.json"))
        .assert()
        .failure()
        .stderr(
            contains("--answers-from")
                .and(contains("edited.json has no answer to"))
                .and(contains("generation failed").not()),
        );
    // A missing report: its path and the OS error, once.
    let a = cmd(&no_model)
        .arg("--answers-from")
        .arg(dir.path().join("nope.json"))
        .arg("--report")
        .arg(dir.path().join("r.json"))
        .assert()
        .failure();
    let stderr = stderr_of(&a);
    assert!(stderr.contains("nope.json") && !stderr.contains("generation failed"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(!dir.path().join("r.json").exists());
}

#[test]
fn negative_numbers_reach_validation_and_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let no_model = dir.path().join("no-model");
    for (flag, value, message) in [
        ("--kb-match-threshold", "-0.5", "KB match threshold -0.5 is out of range"),
        ("--temperature", "-1", "--temperature: must be a finite number >= 0"),
    ] {
        cmd(&no_model)
            .args(["--no-adapter", flag, value, "--report"])
            .arg(dir.path().join("r.json"))
            .assert()
            .failure()
            .stderr(contains(message).and(contains("unexpected argument").not()));
    }
}
