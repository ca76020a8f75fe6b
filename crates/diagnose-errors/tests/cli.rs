//! The binary end to end: on answers with planted mistakes (through a report), and on the tiny
//! fixture model (generating).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("diagnose-errors").unwrap();
    c.current_dir(repo(""));
    c
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn planted_mistakes_are_found_and_classified() {
    let eval = kb_dataset::read_jsonl(repo("data/eval_qwen_v1.jsonl")).unwrap();
    let answerable: Vec<usize> = (0..eval.len()).filter(|&i| !eval[i].is_unanswerable()).collect();
    let unanswerable = (0..eval.len()).find(|&i| eval[i].is_unanswerable()).unwrap();
    let (refused, swapped) = (answerable[0], answerable[1]);
    // An answer citing a different doc than expected: the first eval answer of another doc.
    let other = answerable.iter().copied().find(|&i| eval[i].doc_id != eval[swapped].doc_id).unwrap();

    let answers: Vec<String> = eval
        .iter()
        .enumerate()
        .map(|(i, s)| match i {
            _ if i == refused => "抱歉,我沒有這方面的資訊。".to_string(),
            _ if i == swapped => eval[other].answer.clone(),
            _ if i == unanswerable => eval[answerable[2]].answer.clone(),
            _ => s.answer.clone(),
        })
        .collect();
    let mut answers_iter = answers.clone().into_iter();
    let report = lora_eval::evaluate(&eval, None, lora_eval::EvalOptions { batch_size: eval.len() }, |q| {
        Ok::<_, std::io::Error>(q.iter().map(|_| answers_iter.next().unwrap()).collect())
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    lora_eval::write_report(&report_path, &report).unwrap();

    let out = dir.path().join("analysis/error_analysis.json");
    cmd()
        .args(["--from-report", report_path.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("analysis written to"));
    let a = read(&out);
    assert_eq!(a["total"], eval.len());
    assert_eq!(a["errors"], 3, "{a:#}");
    assert_eq!(a["correct"], eval.len() - 3);
    let kinds = &a["failure_kinds"];
    assert_eq!(kinds["refused_answerable"].as_array().unwrap().len(), 1);
    assert_eq!(kinds["refused_answerable"][0], eval[refused].question);
    assert_eq!(kinds["answered_unanswerable"].as_array().unwrap().len(), 1);
    // The swapped answer is a confusion between the two docs' topics.
    let errors = a["detailed_errors"].as_array().unwrap();
    let swapped_error = errors.iter().find(|e| e["question"] == eval[swapped].question).unwrap();
    assert_ne!(swapped_error["expected_topic"], swapped_error["actual_topic"]);
    assert!(
        a["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["expected"] == swapped_error["expected_topic"] && c["actual"] == swapped_error["actual_topic"])
    );
    assert!(out.with_extension("svg").is_file());
}

#[test]
fn a_report_of_other_questions_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let eval = kb_dataset::read_jsonl(repo("data/eval_qwen_v1.jsonl")).unwrap();
    let short = &eval[..3];
    let report = lora_eval::evaluate(short, None, lora_eval::EvalOptions::default(), |q| {
        Ok::<_, std::io::Error>(q.iter().map(|_| "x".to_string()).collect())
    })
    .unwrap();
    let report_path = dir.path().join("report.json");
    lora_eval::write_report(&report_path, &report).unwrap();
    let out = dir.path().join("a.json");
    cmd()
        .args(["--from-report", report_path.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(predicate::str::contains("report.json").and(predicate::str::contains("--limit")));
    assert!(!out.exists());
}

fn report_fixture(name: &str) -> PathBuf {
    repo("crates/lora-eval/tests/fixtures").join(name)
}

#[test]
fn an_old_percent_report_and_a_new_one_give_the_same_analysis_in_fractions() {
    let dir = tempfile::tempdir().unwrap();
    let eval = report_fixture("eval.jsonl");
    let analyse = |report: &str| {
        let out = dir.path().join(report).with_extension("analysis.json");
        cmd()
            .arg("--from-report")
            .arg(report_fixture(report))
            .arg("--eval")
            .arg(&eval)
            .arg("--out")
            .arg(&out)
            .assert()
            .success()
            .stdout(
                predicate::str::is_match(
                    r"10 eval questions, 1 correct, 9 errors, accuracy 10\.0% \(raw similarity >= 0\.90\)",
                )
                .unwrap(),
            );
        std::fs::read_to_string(out).unwrap()
    };
    let (old, new) = (analyse("report_percent.json"), analyse("report.json"));
    assert_eq!(old, new);
    let a: Value = serde_json::from_str(&new).unwrap();
    assert_eq!(a["accuracy"], 0.1);
    // Each error's score is the report's raw score, a fraction as computed.
    let samples = kb_dataset::read_jsonl(&eval).unwrap();
    for e in a["detailed_errors"].as_array().unwrap() {
        let (expected, raw) = (e["expected"].as_str().unwrap(), e["raw"].as_str().unwrap());
        assert_eq!(e["similarity"].as_f64().unwrap(), seqmatch::ratio(expected, raw), "{e}");
        assert!(samples.iter().any(|s| s.answer == expected));
    }
}

#[test]
fn a_report_scored_against_other_answers_or_holding_percents_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples = kb_dataset::read_jsonl(report_fixture("eval.jsonl")).unwrap();
    samples[1].answer.push_str("（已更新）");
    let eval = dir.path().join("eval.jsonl");
    kb_dataset::write_jsonl(&eval, &samples).unwrap();
    let out = dir.path().join("a.json");
    let run = |report: &Path, eval: &Path| {
        cmd().arg("--from-report").arg(report).arg("--eval").arg(eval).arg("--out").arg(&out).assert().failure()
    };
    run(&report_fixture("report.json"), &eval).stderr(
        predicate::str::contains("report.json scored")
            .and(predicate::str::contains(samples[1].question.as_str()))
            .and(predicate::str::contains("--answers-from")),
    );

    let mut json = read(&report_fixture("report.json"));
    json["details"][0]["similarity_raw"] = 21.052631578947366.into();
    let mixed = dir.path().join("mixed.json");
    std::fs::write(&mixed, json.to_string()).unwrap();
    run(&mixed, &report_fixture("eval.jsonl")).stderr(
        predicate::str::contains("mixed.json: details[0].similarity_raw is 21.05")
            .and(predicate::str::contains("fraction")),
    );
    assert!(!out.exists());
}

#[test]
fn generates_with_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let out = dir.path().join("error_analysis.json");
    cmd()
        .args(["--model", model.to_str().unwrap(), "--no-adapter", "--max-new-tokens", "6"])
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .success();
    let a = read(&out);
    let eval = kb_dataset::read_jsonl(repo("data/eval_qwen_v1.jsonl")).unwrap();
    let total = a["total"].as_u64().unwrap();
    assert_eq!(total as usize, eval.len());
    // A random model answers (almost) nothing right.
    assert_eq!(a["errors"].as_u64().unwrap() + a["correct"].as_u64().unwrap(), total);
    assert!(a["errors"].as_u64().unwrap() as f64 > 0.9 * total as f64);
}
