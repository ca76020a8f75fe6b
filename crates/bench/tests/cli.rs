//! The binary, run end to end on the tiny fixture model (the real model is for real runs only).

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

/// One data-set line, as kb-dataset writes it.
fn line(q: &str, a: &str) -> String {
    kb_dataset::to_jsonl(&[kb_dataset::Sample::new(q, a, None, "direct")]).trim_end().to_string()
}

/// A tiny model directory and train/eval sets; returns the common flags.
fn setup(dir: &Path) -> Vec<String> {
    let model = dir.join("model");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let train: Vec<String> =
        (0..10).map(|i| line(&format!("請問年假{i}天?"), &format!("依據公司規範:年假{i}天。"))).collect();
    let eval: Vec<String> = (0..3).map(|i| line(&format!("加班{i}要誰核准?"), "依據公司規範:主管核准。")).collect();
    std::fs::write(dir.join("train.jsonl"), train.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("eval.jsonl"), eval.join("\n") + "\n").unwrap();
    [
        "--model",
        model.to_str().unwrap(),
        "--train",
        dir.join("train.jsonl").to_str().unwrap(),
        "--eval-set",
        dir.join("eval.jsonl").to_str().unwrap(),
        "--repeats",
        "1",
        "--steps",
        "1",
        "--decode-tokens",
        "3",
        "--decode-batch",
        "2",
        "--matmul-tokens",
        "8",
        "--matmul-dims",
        "64,32,128",
        "--step-rows",
        "2",
        "--step-len",
        "8",
        "--per-prompt",
        "1",
        "--eval-max-new-tokens",
        "4",
        "--eval-batch",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

fn bench() -> Command {
    Command::cargo_bin("bench").unwrap()
}

#[test]
fn every_section_runs_in_its_own_process_and_the_report_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("docs/BENCHMARKS.md");
    let json = dir.path().join("results.json");
    let assert = bench()
        .args(setup(dir.path()))
        .args(["--out", out.to_str().unwrap(), "--json", json.to_str().unwrap()])
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for needle in [
        "### Side by side",
        "| f32 matmul ceiling",
        "greedy decode, batch 1, 3 new tokens each, tokens/s vs transformers one prompt",
        "greedy decode, batch 2",
        "LoRA forward+backward, 2×8 tokens",
        "training, one epoch (10 samples, 2 optimizer steps)",
        "eval set generation, 3 prompts",
        "training peak memory",
        "each section ran in its own child process",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("# Benchmarks") && written.contains("### Side by side"));

    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let decode = &results["decode"]["runs"];
    // End-of-sequence is ignored: every row generates exactly --decode-tokens tokens.
    assert_eq!(decode[0]["tokens"], 3);
    assert_eq!(decode[1]["tokens"], 6);
    assert_eq!(results["train_step"]["tokens"], 16);
    assert_eq!(results["train_epoch"]["steps"], 1);
    assert_eq!(results["eval_gen"]["prompts"], 3);
    let peaks = results["peak_memory"].as_object().unwrap();
    assert_eq!(peaks.len(), 6, "one peak per section: {peaks:?}");
    assert!(results["failed"].as_object().unwrap().is_empty());

    // --results re-renders those figures without measuring, keeping the run's own header.
    let reference = dir.path().join("ref.json");
    let train_ref = r#"{"transformers_train": {"micro_steps": 3, "batch": 4, "pad_to": 192, "micro_step_seconds": 18.0,
        "micro_steps_per_epoch": 3, "epoch_seconds": 54.0, "real_tokens_per_s": 13.0, "padded_tokens_per_s": 42.0}}"#;
    std::fs::write(&reference, train_ref).unwrap();
    bench()
        .args(["--results", json.to_str().unwrap(), "--reference", reference.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("| 54.0 s | measured live |")
                .and(predicate::str::contains("--decode-tokens 3"))
                .and(predicate::str::contains("each section ran in its own child process")),
        );

    // --append adds a second run below the first.
    bench()
        .args(setup(dir.path()))
        .args(["--only", "matmul", "--in-process", "--out", out.to_str().unwrap(), "--append"])
        .assert()
        .success()
        .stdout(predicate::str::contains("running peak"));
    let appended = std::fs::read_to_string(&out).unwrap();
    assert_eq!(appended.matches("## Benchmark run").count(), 2);
    // Each run's heading stands on its own line after a blank one (Markdown needs it).
    assert_eq!(appended.matches("\n\n## Benchmark run").count(), 2, "{appended}");
}

#[test]
fn live_reference_figures_replace_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.json");
    std::fs::write(
        &reference,
        r#"{"llama_cpp": {"prompts": 2, "max_new_tokens": 150, "tokens": 100, "seconds": 4.0, "tokens_per_s": 25.0, "threads": 2},
            "skipped": ["train: Python packages missing (torch); pip install torch transformers peft gguf"]}"#,
    )
    .unwrap();
    bench()
        .args(setup(dir.path()))
        .args(["--only", "decode", "--reference", reference.to_str().unwrap()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("| 25.0 tok/s | measured live |")
                .and(predicate::str::contains("| 5.4 tok/s | reference (measured earlier, PERFORMANCE.md) |"))
                .and(predicate::str::contains("skipped: train: Python packages missing")),
        );
}

#[test]
fn a_bad_reference_file_fails_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.json");
    std::fs::write(&reference, "{not json").unwrap();
    bench()
        .args(["--only", "matmul", "--reference", reference.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--reference").and(predicate::str::contains("ref.json")))
        .stdout(predicate::str::is_empty());
}

#[test]
fn a_failing_section_is_reported_and_the_exit_code_says_so() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["--only", "load", "--model", dir.path().join("missing").to_str().unwrap(), "--repeats", "1"])
        .env("HF_HUB_OFFLINE", "1")
        .assert()
        .failure()
        .stdout(predicate::str::contains("### Failed sections").and(predicate::str::contains("- load:")))
        .stderr(predicate::str::contains("sections failed: load"));
}
