//! The binary on reports made from canned answers.

use assert_cmd::Command;
use kb_dataset::Sample;
use predicates::prelude::*;

fn report(dir: &std::path::Path, name: &str, answer: &str) -> String {
    let samples = vec![
        Sample::new("VPN 怎麼連", "依據公司規範:先裝用戶端。", Some("doc_1"), "eval"),
        Sample::new("尾牙在哪", "抱歉,沒有這項資訊。", None, "unanswerable"),
    ];
    let r = lora_eval::evaluate(&samples, None, lora_eval::EvalOptions::default(), |q| {
        Ok::<_, std::io::Error>(q.iter().map(|_| answer.to_string()).collect())
    })
    .unwrap();
    let path = dir.join(name);
    lora_eval::write_report(&path, &r).unwrap();
    path.display().to_string()
}

#[test]
fn one_row_per_report_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let good = report(dir.path(), "good.json", "依據公司規範:先裝用戶端。");
    let bad = report(dir.path(), "bad.json", "抱歉,沒有這項資訊。");
    Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", &format!("good={good}"), "--report", &format!("bad={bad}")])
        .assert()
        .success()
        // good: answers the answerable one exactly (100) and fails the refusal; bad: the reverse.
        .stdout(predicate::str::is_match(r"\| good \| 2 \| [0-9.]+% .*\| 1 / 1 \| 0\.00% \|").unwrap())
        .stdout(predicate::str::is_match(r"\| bad \| 2 \| .*\| 100\.00% \|").unwrap());
}

#[test]
fn bad_specs_and_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", "nolabel.json"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("LABEL=FILE"));
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{").unwrap();
    Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", &format!("x={}", junk.display())])
        .assert()
        .failure()
        .stderr(predicate::str::contains("junk.json"));
}

#[test]
fn training_runs_are_read_from_their_typed_summary() {
    let dir = tempfile::tempdir().unwrap();
    let good = report(dir.path(), "good.json", "依據公司規範:先裝用戶端。");
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let summary = train_summary::TrainSummary {
        status: train_summary::RunStatus::Completed,
        global_steps: 12,
        total_steps: 12,
        wall_seconds: 130.0,
        train_seconds: 120.0,
        train_tokens: 6000,
        tokens_per_sec: 50.0,
        best_epoch: Some(2),
        best_eval_loss: Some(0.123456),
        peak_memory_bytes: Some(3 << 30),
        final_model: None,
        checkpoint: None,
        bf16_products: false,
    };
    let path = run.join(train_summary::SUMMARY_FILE);
    std::fs::write(&path, serde_json::to_string(&summary).unwrap()).unwrap();
    Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", &format!("good={good}"), "--train", path.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("| 12 | 2.0 min | 50.0 | 2 | 0.1235 | 3072 MiB |"));

    std::fs::write(&path, r#"{"global_steps": 12}"#).unwrap();
    Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", &format!("good={good}"), "--train", path.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("summary.json: not a train-qwen-lora summary.json"));
}
