//! Runs the `synth-questions` binary as a user would: on the tiny fixture model (whose answers are
//! noise, so every question is filtered out and the run says which entry starved, after caching
//! what it generated), and on bad input, which never writes or overwrites anything.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;

/// A tiny model and a two-entry KB.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let kb = dir.join("kb.jsonl");
    std::fs::write(&kb, "{\"text\": \"年假須提前三天申請。\"}\n{\"text\": \"報銷須於 30 天內上傳發票。\"}\n").unwrap();
    (model, kb)
}

fn cmd(model: &Path, kb: &Path, out: &Path) -> Command {
    let mut c = Command::cargo_bin("synth-questions").unwrap();
    c.arg("--model").arg(model).arg("--kb").arg(kb).arg("--out").arg(out).args(["--batch-size", "4"]);
    c
}

#[test]
fn noise_from_the_generator_starves_an_entry_and_the_cache_keeps_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (model, kb) = setup(dir.path());
    let out = dir.path().join("questions.toml");
    cmd(&model, &kb, &out)
        .assert()
        .failure()
        .stderr(contains("no training question survived the filters"))
        .stderr(contains("doc_"));
    assert!(!out.exists(), "nothing written on error");
    let cache = dir.path().join("questions.toml.cache.jsonl");
    let lines = std::fs::read_to_string(&cache).unwrap().lines().count();
    // Per entry: topic, contact, four styles, two varied lists, near-misses; four off-topic
    // lists; then a judgement per surviving unanswerable question.
    assert!(lines >= 2 * 9 + 4, "{lines} cached answers");
    // A rerun asks the generator nothing new (the same answers come from the cache).
    cmd(&model, &kb, &out).assert().failure();
    assert_eq!(std::fs::read_to_string(&cache).unwrap().lines().count(), lines);
}

#[test]
fn bad_input_is_refused_before_the_model_loads_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (model, kb) = setup(dir.path());
    let out = dir.path().join("questions.toml");
    std::fs::write(&out, "# my edits\n").unwrap();
    cmd(&model, &kb, &out).assert().failure().stderr(contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# my edits\n");
    cmd(&model, &kb, &kb).arg("--overwrite").assert().failure().stderr(contains("kb.jsonl"));
    assert!(std::fs::read_to_string(&kb).unwrap().contains("年假"), "the KB is never written");
    cmd(&model, &dir.path().join("missing.jsonl"), &dir.path().join("q2.toml"))
        .assert()
        .failure()
        .stderr(contains("missing.jsonl"));
    cmd(&model, &kb, &dir.path().join("q3.toml"))
        .args(["--temperature", "0"])
        .assert()
        .failure()
        .stderr(contains("--temperature"));
}
