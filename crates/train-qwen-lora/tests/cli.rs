//! The binary, run end to end on the tiny fixture model.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

/// One data-set line, as kb-dataset writes it.
fn line(q: &str, a: &str) -> String {
    kb_dataset::to_jsonl(&[kb_dataset::Sample::new(q, a, None, "direct")]).trim_end().to_string()
}

fn write_data(dir: &Path) -> (String, String) {
    let train: Vec<String> =
        (0..6).map(|i| line(&format!("請問年假{i}?"), &format!("依據公司規範:年假{i}天。"))).collect();
    let eval = [line("請問加班?", "依據公司規範:加班需主管核准。")];
    let (t, e) = (dir.join("train.jsonl"), dir.join("eval.jsonl"));
    std::fs::write(&t, train.join("\n") + "\n").unwrap();
    std::fs::write(&e, eval.join("\n") + "\n").unwrap();
    (t.display().to_string(), e.display().to_string())
}

fn cmd() -> Command {
    Command::cargo_bin("train-qwen-lora").unwrap()
}

#[test]
fn bad_data_fails_before_training_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, eval) = write_data(dir.path());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n\n{{\"text\": 5\n", line("q", "a"))).unwrap();
    let out = dir.path().join("out");
    cmd()
        .args(["--train", bad.to_str().unwrap(), "--eval", &eval, "--output", out.to_str().unwrap()])
        .args(["--model", "/nonexistent/model"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad.jsonl:3"));
    assert!(!out.exists(), "nothing may be written on bad input");
}

#[test]
fn unknown_config_key_is_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("train.toml");
    std::fs::write(&cfg, "epoch = 3\n").unwrap();
    cmd()
        .args(["--config", cfg.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("train.toml").and(predicate::str::contains("epoch")));
}

#[test]
fn shipped_config_is_accepted() {
    // data/train.toml must parse; --help-free check: a run that fails only later, on the data.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/train.toml");
    cmd()
        .args(["--config", cfg.to_str().unwrap(), "--train", "/nonexistent/train.jsonl"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("/nonexistent/train.jsonl"));
}

#[test]
fn trains_the_tiny_model_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let (train, eval) = write_data(dir.path());
    let out = dir.path().join("out");
    let base = [
        "--model",
        model.to_str().unwrap(),
        "--train",
        &train,
        "--eval",
        &eval,
        "--output",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--micro-batch",
        "2",
        "--grad-accum",
        "1",
        "--lora-r",
        "4",
        "--lr",
        "1e-3",
        "--logging-steps",
        "1",
    ];
    let assert = cmd().args(base).env("RUST_LOG", "info").assert().success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("best epoch:") && stdout.contains("tokens/s") && stdout.contains("peak memory"),
        "{stdout}"
    );
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("step=1 ") && stderr.contains("peak_mem="), "{stderr}");
    for f in [
        "final_model/adapter_model.safetensors",
        "checkpoint-6/trainer_state.json",
        "metrics.jsonl",
        "loss.svg",
        "train_config.toml",
        "summary.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let resolved = std::fs::read_to_string(out.join("train_config.toml")).unwrap();
    assert!(resolved.contains("epochs = 2") && resolved.contains("r = 4"), "{resolved}");

    // Resuming a finished run does no more steps; with other settings it is refused.
    cmd().args(base).arg("--resume").assert().success().stdout(predicate::str::contains("steps: 6/6"));
    cmd().args(base).args(["--resume", "--seed", "1"]).assert().failure().stderr(predicate::str::contains("seed"));
}
