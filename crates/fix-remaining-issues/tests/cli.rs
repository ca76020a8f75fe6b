//! The binary, run on the diagnose crate's fixture KB and templates.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use diagnose::{DiagnoseOptions, analyze, write_analysis};
use kb_dataset::{Kb, STYLE_UNANSWERABLE, Sample, Templates, read_jsonl, write_jsonl};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../diagnose/tests/fixtures").join(name)
}

/// Writes train, eval and an analysis where every `vpn` eval answer was the `mfa` answer.
fn setup(dir: &Path) -> Vec<Sample> {
    let kb = Kb::load(fixture("kb.jsonl")).unwrap();
    let t = Templates::load(fixture("questions.toml"), &kb).unwrap();
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for d in t.docs() {
        let a = zh_answer(kb.get(&d.doc_id).unwrap());
        for q in &d.train {
            train.push(Sample::new(&q.question, &a, Some(&d.doc_id), &q.style));
        }
        for q in &d.eval {
            eval.push(Sample::new(q, &a, Some(&d.doc_id), "eval"));
        }
    }
    for u in &t.unanswerable().eval {
        eval.push(Sample::new(&u.question, &u.refusal, None, STYLE_UNANSWERABLE));
    }
    let mfa = zh_answer(kb.get(t.doc_id_of("mfa").unwrap()).unwrap());
    let raw = eval
        .iter()
        .map(|s| if s.doc_id.as_deref() == t.doc_id_of("vpn") { mfa.clone() } else { s.answer.clone() })
        .collect();
    let report = lora_eval::evaluate_answers(&eval, None, lora_eval::RawAnswers { raw, generation_seconds: 0.0 });
    let a = analyze(&report.unwrap().details, &kb, &t, &DiagnoseOptions::default()).unwrap();
    write_analysis(&a, &dir.join("error_analysis.json")).unwrap();
    write_jsonl(dir.join("train.jsonl"), &train).unwrap();
    write_jsonl(dir.join("eval.jsonl"), &eval).unwrap();
    eval
}

fn cmd(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("fix-remaining-issues").unwrap();
    c.arg("--analysis")
        .arg(dir.join("error_analysis.json"))
        .arg("--kb")
        .arg(fixture("kb.jsonl"))
        .arg("--questions")
        .arg(fixture("questions.toml"))
        .arg("--train")
        .arg(dir.join("train.jsonl"))
        .arg("--eval")
        .arg(dir.join("eval.jsonl"))
        .arg("--out")
        .arg(dir.join("final.jsonl"));
    c
}

#[test]
fn writes_contrastive_samples_and_no_eval_question() {
    let dir = tempfile::tempdir().unwrap();
    let eval = setup(dir.path());
    cmd(dir.path()).args(["--per-topic", "2"]).assert().success().stdout(
        contains("vpn: +2 contrastive").and(contains("mfa: +2 contrastive")).and(contains("answered as `mfa` 2×")),
    );
    let out = read_jsonl(dir.path().join("final.jsonl")).unwrap();
    let train = read_jsonl(dir.path().join("train.jsonl")).unwrap();
    assert_eq!(out.len(), train.len() + 4);
    for e in &eval {
        assert!(out.iter().all(|s| s.question != e.question), "{:?} leaked", e.question);
    }
}

#[test]
fn refuses_to_write_when_training_holds_an_eval_question() {
    let dir = tempfile::tempdir().unwrap();
    let eval = setup(dir.path());
    let mut train = read_jsonl(dir.path().join("train.jsonl")).unwrap();
    train.push(eval[0].clone());
    write_jsonl(dir.path().join("train.jsonl"), &train).unwrap();
    cmd(dir.path()).assert().failure().stderr(contains("refusing to write").and(contains(eval[0].question.as_str())));
    assert!(!dir.path().join("final.jsonl").exists());
}

#[test]
fn bad_analysis_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    std::fs::write(dir.path().join("error_analysis.json"), "[]").unwrap();
    cmd(dir.path()).assert().failure().stderr(contains("--analysis").and(contains("error_analysis.json")));
}

#[test]
fn an_analysis_in_percents_is_refused_naming_the_figure() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let path = dir.path().join("error_analysis.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["accuracy"] = (100.0 * json["accuracy"].as_f64().unwrap()).into();
    std::fs::write(&path, json.to_string()).unwrap();
    cmd(dir.path())
        .assert()
        .failure()
        .stderr(contains("error_analysis.json").and(contains("accuracy is")).and(contains("not a fraction")));
    assert!(!dir.path().join("final.jsonl").exists());
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
