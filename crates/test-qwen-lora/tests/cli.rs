//! The binary end to end on the tiny fixture: train an adapter briefly, evaluate with and without
//! it, and check the report against the answers it records.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const LIMIT: usize = 6;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// A tiny model directory and an adapter trained for a few steps on the first eval questions.
fn tiny_model_and_adapter(dir: &Path) -> (PathBuf, PathBuf) {
    let model_dir = dir.join("tiny");
    qwen_lora::fixture::write_tiny_model(&model_dir, 7).unwrap();
    let spec = qwen_lora::ModelSpec::cpu(qwen_lora::load::ModelSource::Dir(model_dir.clone()));
    let mut base = spec.load().unwrap();
    let mut config = lora_trainer::TrainConfig {
        learning_rate: 1e-2,
        max_steps: Some(6),
        micro_batch: 3,
        grad_accum: 1,
        warmup_steps: 1,
        save_steps: 0,
        seed: 3,
        frozen_matmul: lora_trainer::FrozenMatmul::F32,
        ..Default::default()
    };
    config.lora.lora_dropout = 0.0;
    let model = lora_trainer::training_model(&mut base, &config).unwrap();
    let eval = kb_dataset::read_jsonl(repo("data/eval_qwen_v1.jsonl")).unwrap();
    let samples = &eval[..LIMIT];
    let out = dir.join("run");
    let mut opts = lora_trainer::TrainOptions::new(&out, "tiny");
    opts.show_progress = false;
    lora_trainer::train(&model, &base.tokenizer, samples, samples, &config, &opts).unwrap();
    (model_dir, out.join("final_model"))
}

fn cmd(model: &Path) -> Command {
    let mut c = Command::cargo_bin("test-qwen-lora").unwrap();
    c.current_dir(repo("")).args(["--model", model.to_str().unwrap(), "--max-new-tokens", "12"]);
    c
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn avg(details: &[Value], key: &str) -> f64 {
    details.iter().map(|d| d[key].as_f64().unwrap()).sum::<f64>() / details.len() as f64
}

#[test]
fn evaluates_with_and_without_the_adapter_and_the_report_matches_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = tiny_model_and_adapter(dir.path());
    let with = dir.path().join("reports/with.json");
    let without = dir.path().join("reports/without.json");
    let limit = LIMIT.to_string();
    let printed = cmd(&model)
        .args(["--adapter", adapter.to_str().unwrap(), "--limit", &limit, "--report", with.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("report written to"))
        .get_output()
        .stdout
        .clone();
    let printed = String::from_utf8(printed).unwrap();
    cmd(&model).args(["--no-adapter", "--limit", &limit, "--report", without.to_str().unwrap()]).assert().success();

    let (with, without) = (read(&with), read(&without));
    let details = with["details"].as_array().unwrap();
    assert_eq!(details.len(), LIMIT);
    assert_eq!(with["summary"]["total_tests"], LIMIT);
    for d in details {
        let (expected, raw, model) =
            (d["expected"].as_str().unwrap(), d["raw"].as_str().unwrap(), d["model"].as_str().unwrap());
        // Scores are difflib's ratio of what the report says was generated, stored as computed.
        assert_eq!(d["similarity_raw"].as_f64().unwrap(), seqmatch::ratio(expected, raw), "{d}");
        assert_eq!(d["similarity"].as_f64().unwrap(), seqmatch::ratio(expected, model), "{d}");
        let source = d["source"].as_str().unwrap();
        assert!(["RULE_OVERRIDE", "KB_MATCH", "MODEL_GENERATED", "RETRIEVAL_OVERRIDE"].contains(&source), "{source}");
        if source == "MODEL_GENERATED" {
            assert_eq!(model, raw);
        }
        // Every final answer that is no refusal is a KB text, and each raw answer has its kind.
        assert!(kb_dataset::is_refusal(model) || model.starts_with("依據公司規範:"), "{d}");
        assert!(["REFUSAL", "KB_QUOTE", "UNMATCHED"].contains(&d["raw_kind"].as_str().unwrap()), "{d}");
        assert!(!d["source_detail"].as_str().unwrap().is_empty());
    }
    let summary = &with["summary"];
    for key in ["buckets", "buckets_raw", "source_distribution", "refusal_accuracy", "per_doc", "generation_seconds"] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary:#}");
    }
    // The report records how post-processing was calibrated, on the training set it indexed.
    let retrieval = &with["postprocess"]["retrieval"];
    assert!(retrieval["training"].as_str().unwrap().ends_with("train_qwen_v1.jsonl"), "{retrieval}");
    assert!(retrieval["calibration"]["entry_confident"]["precision_target"].as_f64().is_some(), "{retrieval}");
    assert!((summary["avg_similarity"].as_f64().unwrap() - avg(details, "similarity")).abs() < 1e-6);
    assert!((summary["avg_similarity_raw"].as_f64().unwrap() - avg(details, "similarity_raw")).abs() < 1e-6);
    // The JSON holds fractions; people read percents.
    assert_eq!(summary["pass_threshold"], 0.85);
    let pct = |key: &str| format!("{:.2}%", 100.0 * summary[key].as_f64().unwrap());
    assert!(printed.contains(&format!("Average similarity (post-processed): {}", pct("avg_similarity"))), "{printed}");
    assert!(
        printed.contains(&format!("Average similarity (raw model):      {}", pct("avg_similarity_raw"))),
        "{printed}"
    );
    assert!(printed.contains(&format!(">= {}: ", pct("pass_threshold"))), "{printed}");

    // The adapter changed what the model says.
    let raw = |r: &Value| r["details"].as_array().unwrap().iter().map(|d| d["raw"].clone()).collect::<Vec<_>>();
    assert_ne!(raw(&with), raw(&without), "the trained adapter should change the answers");
}

#[test]
fn no_postprocess_keeps_the_raw_answers() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let report = dir.path().join("r.json");
    cmd(&model)
        .args(["--no-adapter", "--no-postprocess", "--limit", "3", "--report", report.to_str().unwrap()])
        .assert()
        .success();
    let r = read(&report);
    for d in r["details"].as_array().unwrap() {
        assert_eq!(d["raw"], d["model"]);
        assert_eq!(d["source"], "MODEL_GENERATED");
    }
}

#[test]
fn answers_from_an_earlier_report_rescores_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let first = dir.path().join("first.json");
    cmd(&model)
        .args(["--no-adapter", "--no-postprocess", "--limit", "3", "--report", first.to_str().unwrap()])
        .assert()
        .success();
    // No model at this path: the answers must come from the report alone.
    let gone = dir.path().join("no-model");
    let second = dir.path().join("second.json");
    cmd(&gone)
        .args(["--answers-from", first.to_str().unwrap(), "--limit", "3", "--report", second.to_str().unwrap()])
        .assert()
        .success();
    let (first, second) = (read(&first), read(&second));
    let raws = |r: &Value| r["details"].as_array().unwrap().iter().map(|d| d["raw"].clone()).collect::<Vec<_>>();
    assert_eq!(raws(&first), raws(&second));
    assert_eq!(first["summary"]["generation_seconds"], second["summary"]["generation_seconds"]);
    // Post-processing ran this time: every final answer is explained by a rule or the KB.
    for d in second["details"].as_array().unwrap() {
        assert!(!d["source_detail"].as_str().unwrap().contains("disabled"), "{d}");
    }
    // A question the earlier report never answered is named.
    let third = dir.path().join("third.json");
    cmd(&gone)
        .args(["--answers-from", dir.path().join("first.json").to_str().unwrap(), "--limit", "4"])
        .args(["--report", third.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("first.json has no answer to"));
    assert!(!third.exists());
}

#[test]
fn answers_from_an_old_percent_report_and_a_new_one_give_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = |name: &str| repo("crates/lora-eval/tests/fixtures").join(name);
    let rescore = |from: &str| {
        let out = dir.path().join(from);
        let printed = cmd(&dir.path().join("no-model"))
            .arg("--answers-from")
            .arg(fixture(from))
            .arg("--eval")
            .arg(fixture("eval.jsonl"))
            .arg("--report")
            .arg(&out)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        (std::fs::read_to_string(out).unwrap(), String::from_utf8(printed).unwrap())
    };
    let (old, old_printed) = rescore("report_percent.json");
    let (new, new_printed) = rescore("report.json");
    assert_eq!(old, new);
    // Both written in fractions, and the very report the fixture holds (the same answers, scored now).
    assert_eq!(new, std::fs::read_to_string(fixture("report.json")).unwrap());
    let cut = |s: &str| s.lines().filter(|l| !l.starts_with("report written to")).collect::<Vec<_>>().join("\n");
    assert_eq!(cut(&old_printed), cut(&new_printed));
    assert!(new_printed.contains("Average similarity (post-processed): 66.23%"), "{new_printed}");
}

#[test]
fn bad_inputs_name_the_file_and_line_before_loading_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let missing_model = dir.path().join("no-model");
    let bad_eval = dir.path().join("bad.jsonl");
    let good = kb_dataset::to_jsonl(&[kb_dataset::Sample::new("q", "a", None, "eval")]);
    std::fs::write(&bad_eval, good + "{\"text\": \"plain\"}\n").unwrap();
    cmd(&missing_model)
        .args(["--no-adapter", "--eval", bad_eval.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad.jsonl:2").and(predicate::str::contains("ChatML")));

    let rules = dir.path().join("rules.toml");
    let in_tmp = |c: &mut Command| {
        c.current_dir(dir.path());
        for (flag, file) in [
            ("--eval", "data/eval_qwen_v1.jsonl"),
            ("--kb", "data/kb.jsonl"),
            ("--questions", "data/questions.toml"),
            ("--train", "data/train_qwen_v1.jsonl"),
        ] {
            c.args([flag, repo(file).to_str().unwrap()]);
        }
    };
    std::fs::write(&rules, "[[rule]]\ntopic = \"x\"\ndoc_id = \"doc_nope\"\npatterns = [\"x\"]\n").unwrap();
    let mut c = cmd(&missing_model);
    in_tmp(&mut c);
    c.args(["--no-adapter", "--rules", rules.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("rules.toml").and(predicate::str::contains("doc_nope")));

    let mut c = cmd(&missing_model);
    in_tmp(&mut c);
    c.args(["--rules", repo("data/rules.toml").to_str().unwrap()])
        .args(["--adapter", dir.path().join("nothing").to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--adapter").and(predicate::str::contains("--no-adapter")));

    // A training set (retrieval's index) that is not ChatML, or names a doc the KB lacks.
    let train = std::fs::read_to_string(repo("data/train_qwen_v1.jsonl")).unwrap();
    let first_train_doc = kb_dataset::read_jsonl(repo("data/train_qwen_v1.jsonl"))
        .unwrap()
        .iter()
        .find_map(|s| s.doc_id.clone())
        .unwrap();
    let bad_train = dir.path().join("train.jsonl");
    std::fs::write(&bad_train, train.replacen(&first_train_doc, "doc_11111111", 1)).unwrap();
    cmd(&missing_model)
        .args(["--no-adapter", "--train", bad_train.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("train.jsonl:").and(predicate::str::contains("doc_11111111")));

    // An eval line naming a doc the KB lacks.
    let eval = std::fs::read_to_string(repo("data/eval_qwen_v1.jsonl")).unwrap();
    let first_doc = kb_dataset::read_jsonl(repo("data/eval_qwen_v1.jsonl")).unwrap()[0].doc_id.clone().unwrap();
    let renamed = dir.path().join("renamed.jsonl");
    std::fs::write(&renamed, eval.replacen(&first_doc, "doc_00000000", 1)).unwrap();
    cmd(&missing_model)
        .args(["--no-adapter", "--eval", renamed.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("renamed.jsonl:1").and(predicate::str::contains("doc_00000000")));
    // Nothing was written, not even the report directory (the default report path is relative).
    assert!(!dir.path().join("test_outputs").exists());
}
