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
fn an_old_percent_report_and_a_new_fraction_one_give_the_same_row_in_percents() {
    let fixture = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../lora-eval/tests/fixtures")
            .join(name)
            .display()
            .to_string()
    };
    let out = Command::cargo_bin("results-table")
        .unwrap()
        .args(["--report", &format!("x={}", fixture("report_percent.json"))])
        .args(["--report", &format!("x={}", fixture("report.json"))])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| x |")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0], rows[1]);
    // Averages raw / final, answerable, bands, refusal accuracy, answerable refused, sources, time.
    assert_eq!(
        rows[0],
        "| x | 10 | 42.15% | 66.23% | 35.30% / 83.04% | 2 / 5 | 60.00% | 60.00% / 20.00% | 0 / 4 / 2 / 4 | 89.0 s |"
    );
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
