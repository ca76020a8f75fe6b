//! Runs the `gen-eval-set` binary: defaults, the overlap report, determinism, and bad input
//! (KB or training file) exiting non-zero with a message naming file and line, writing nothing.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;

fn repo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// A temp dir with the repository's KB, templates and training set under `data/`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for f in ["kb.jsonl", "questions.toml", "train_qwen_v1.jsonl"] {
        std::fs::copy(repo_data().join(f), dir.path().join("data").join(f)).unwrap();
    }
    dir
}

fn cmd(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("gen-eval-set").unwrap();
    c.current_dir(dir);
    c
}

fn out(dir: &Path) -> PathBuf {
    dir.join("data/eval_qwen_v1.jsonl")
}

#[test]
fn defaults_write_the_eval_set_and_report_no_exact_overlap() {
    let dir = workdir();
    cmd(dir.path())
        .assert()
        .success()
        .stdout(contains("wrote 85 samples"))
        .stdout(contains("(75 answerable, 10 unanswerable)"))
        .stdout(contains("exact overlaps: 0"))
        .stdout(contains("near-duplicates (ratio >= 0.8)"));
    let bytes = std::fs::read(out(dir.path())).unwrap();
    assert_eq!(bytes, std::fs::read(repo_data().join("eval_qwen_v1.jsonl")).unwrap(), "shipped file is current");
    cmd(dir.path()).args(["--out", "again.jsonl"]).assert().success();
    assert_eq!(bytes, std::fs::read(dir.path().join("again.jsonl")).unwrap());
}

#[test]
fn a_probe_file_becomes_the_shipped_probe_set() {
    let dir = workdir();
    let probe = repo_data().join("probe/probe.toml");
    cmd(dir.path())
        .arg("--probe")
        .arg(&probe)
        .args(["--out", "probe.jsonl", "--questions", "missing.toml"])
        .assert()
        .success()
        .stdout(contains("wrote 117 samples"))
        .stdout(contains("(84 answerable, 33 unanswerable)"));
    let written = std::fs::read(dir.path().join("probe.jsonl")).unwrap();
    assert_eq!(written, std::fs::read(repo_data().join("probe/probe_qwen.jsonl")).unwrap());
}

#[test]
fn exact_overlap_is_reported() {
    let dir = workdir();
    let eval_line = {
        cmd(dir.path()).args(["--out", "e.jsonl"]).assert().success();
        std::fs::read_to_string(dir.path().join("e.jsonl")).unwrap().lines().next().unwrap().to_string()
    };
    let p = dir.path().join("data/train_qwen_v1.jsonl");
    let train = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{train}{eval_line}\n")).unwrap();
    cmd(dir.path()).assert().success().stdout(contains("exact overlaps: 1")).stdout(contains("WARNING"));
}

fn fails(setup: impl Fn(&Path), expected: &[&str]) {
    let dir = workdir();
    setup(dir.path());
    let assert = cmd(dir.path()).assert().failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out(dir.path()).exists(), "nothing may be written on error");
}

fn append_train(dir: &Path, bytes: &[u8]) {
    let p = dir.join("data/train_qwen_v1.jsonl");
    let mut all = std::fs::read(&p).unwrap();
    all.extend_from_slice(bytes);
    std::fs::write(&p, all).unwrap();
}

#[test]
fn malformed_train_json() {
    fails(|d| append_train(d, b"{\"text\": \"x\",}\n"), &["data/train_qwen_v1.jsonl:301: malformed JSON"]);
}

#[test]
fn train_line_without_text() {
    fails(
        |d| append_train(d, b"{\"doc_id\": null, \"style\": \"short\"}\n"),
        &["data/train_qwen_v1.jsonl:301: missing field `text`"],
    );
}

#[test]
fn train_text_without_chatml() {
    fails(|d| append_train(d, b"{\"text\": \"hi\"}\n"), &["data/train_qwen_v1.jsonl:301: field `text`", "ChatML"]);
}

#[test]
fn train_invalid_utf8() {
    fails(|d| append_train(d, b"{\"text\": \"\xff\xfe\"}\n"), &["data/train_qwen_v1.jsonl:301: not valid UTF-8"]);
}

#[test]
fn missing_train_file() {
    fails(
        |d| std::fs::remove_file(d.join("data/train_qwen_v1.jsonl")).unwrap(),
        &["reading the training set (--train)", "data/train_qwen_v1.jsonl"],
    );
}

#[test]
fn bad_kb() {
    fails(
        |d| std::fs::write(d.join("data/kb.jsonl"), "{\"text\": 1}\n").unwrap(),
        &["data/kb.jsonl:1: malformed JSON"],
    );
}
