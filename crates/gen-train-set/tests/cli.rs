//! Runs the `gen-train-set` binary: defaults, determinism, and bad input exiting non-zero with a
//! message naming file and line, without writing anything.

mod common;

use std::path::{Path, PathBuf};

use common::{cmd, repo_data, workdir};
use predicates::prelude::*;
use predicates::str::contains;

fn out(dir: &Path) -> PathBuf {
    dir.join("data/train_qwen_v1.jsonl")
}

#[test]
fn defaults_write_300_lines_and_print_the_distribution() {
    let dir = workdir();
    cmd(dir.path())
        .assert()
        .success()
        .stdout(contains("wrote 300 samples"))
        .stdout(contains("unanswerable ratio       25.0%   25.0%"))
        .stdout(contains("per style"));
    let text = std::fs::read_to_string(out(dir.path())).unwrap();
    assert_eq!(text.lines().count(), 300);
    assert_eq!(text.lines().filter(|l| l.contains("\"doc_id\": null")).count(), 75);
}

#[test]
fn per_entry_sizes_the_set_to_the_kb() {
    let dir = workdir();
    let entries = std::fs::read_to_string(dir.path().join("data/kb.jsonl")).unwrap().lines().count();
    cmd(dir.path())
        .args(["--per-entry", "4"])
        .assert()
        .success()
        .stdout(contains(format!("wrote {} samples", 4 * entries)));
    assert_eq!(std::fs::read_to_string(out(dir.path())).unwrap().lines().count(), 4 * entries);
    // More than the templates hold: the largest set they allow (as the --total error says), and a warning.
    cmd(dir.path())
        .args(["--per-entry", "1000"])
        .assert()
        .success()
        .stdout(contains("wrote 301 samples"))
        .stderr(contains("--per-entry 1000").and(contains("writing 301")));
    cmd(dir.path())
        .args(["--per-entry", "4", "--total", "10"])
        .assert()
        .failure()
        .stderr(contains("--per-entry").and(contains("--total")));
}

#[test]
fn same_inputs_and_seed_give_identical_bytes() {
    let dir = workdir();
    for name in ["a.jsonl", "b.jsonl"] {
        cmd(dir.path()).args(["--out", name, "--seed", "42"]).assert().success();
    }
    let a = std::fs::read(dir.path().join("a.jsonl")).unwrap();
    assert_eq!(a, std::fs::read(dir.path().join("b.jsonl")).unwrap());
    assert_eq!(a, std::fs::read(repo_data().join("train_qwen_v1.jsonl")).unwrap(), "shipped file is current");
    cmd(dir.path()).args(["--out", "c.jsonl", "--seed", "43"]).assert().success();
    assert_ne!(a, std::fs::read(dir.path().join("c.jsonl")).unwrap());
}

/// Runs with a modified input and checks the error and that no output appeared or changed.
fn fails(setup: impl Fn(&Path), args: &[&str], expected: &[&str]) {
    let dir = workdir();
    setup(dir.path());
    let assert = cmd(dir.path()).args(args).assert().failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out(dir.path()).exists(), "nothing may be written on error");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("data")).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "no temp files left: {leftovers:?}");
}

fn edit_kb(dir: &Path, f: impl Fn(String) -> String) {
    let p = dir.join("data/kb.jsonl");
    std::fs::write(&p, f(std::fs::read_to_string(&p).unwrap())).unwrap();
}

#[test]
fn malformed_kb_json() {
    fails(
        |d| edit_kb(d, |s| s.replacen("{\"doc_id\": \"doc_f427acad\"", "{\"doc_id\" \"doc_f427acad\"", 1)),
        &[],
        &["data/kb.jsonl:3: malformed JSON"],
    );
}

#[test]
fn kb_line_without_text() {
    fails(
        |d| edit_kb(d, |s| format!("{s}{{\"doc_id\": \"doc_12345678\"}}\n")),
        &[],
        &["data/kb.jsonl:16: missing field `text`"],
    );
}

#[test]
fn empty_kb() {
    fails(|d| edit_kb(d, |_| "\n".into()), &[], &["data/kb.jsonl", "knowledge base is empty"]);
}

#[test]
fn duplicate_doc_id() {
    fails(
        |d| edit_kb(d, |s| format!("{s}{}\n", s.lines().next().unwrap())),
        &[],
        &["data/kb.jsonl:16: duplicate doc_id doc_ca4961fd (first seen on line 1)"],
    );
}

#[test]
fn kb_invalid_utf8() {
    fails(
        |d| {
            let p = d.join("data/kb.jsonl");
            let mut bytes = std::fs::read(&p).unwrap();
            bytes.extend_from_slice(b"{\"text\": \"\xe4\xb8\"}\n");
            std::fs::write(&p, bytes).unwrap();
        },
        &[],
        &["data/kb.jsonl:16: not valid UTF-8"],
    );
}

#[test]
fn template_naming_an_unknown_doc() {
    fails(
        |d| {
            let p = d.join("data/questions.toml");
            let s = std::fs::read_to_string(&p).unwrap().replacen("doc_34e68c4d", "doc_99999999", 1);
            std::fs::write(&p, s).unwrap();
        },
        &[],
        &["data/questions.toml: line", "doc \"mfa\"", "doc_99999999 is not in the KB"],
    );
}

#[test]
fn templates_invalid_utf8() {
    fails(
        |d| {
            let p = d.join("data/questions.toml");
            let mut bytes = std::fs::read(&p).unwrap();
            bytes.splice(0..0, b"# \xc0\n".iter().copied());
            std::fs::write(&p, bytes).unwrap();
        },
        &[],
        &["data/questions.toml:1: not valid UTF-8"],
    );
}

#[test]
fn total_that_cannot_be_met_says_what_can() {
    fails(
        |_| {},
        &["--total", "1000"],
        &[
            "--total 1000",
            "at most 240 answerable",
            "and 75 unanswerable",
            "largest --total that can be met at this ratio is 301",
        ],
    );
}

#[test]
fn ratio_out_of_range() {
    fails(|_| {}, &["--unanswerable-ratio", "1.5"], &["--unanswerable-ratio 1.5 must be between 0 and 1"]);
}

#[test]
fn failed_run_keeps_the_previous_output() {
    let dir = workdir();
    std::fs::write(out(dir.path()), "old").unwrap();
    cmd(dir.path()).args(["--total", "0"]).assert().failure().stderr(contains("--total must be at least 1"));
    assert_eq!(std::fs::read_to_string(out(dir.path())).unwrap(), "old");
}
