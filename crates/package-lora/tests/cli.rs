//! The binary, run as a user would.

mod common;

use assert_cmd::Command;
use common::*;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn cmd() -> Command {
    Command::cargo_bin("package-lora").unwrap()
}

#[test]
fn package_then_verify_then_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = fake_adapter(dir.path());
    let out = dir.path().join("pkg.tar.gz");
    cmd()
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "0")
        .assert()
        .success()
        .stdout(contains("adapter_model.safetensors"));
    cmd().arg("--verify").arg(&out).assert().success().stdout(contains("OK").and(contains("1970-01-01T00:00:00Z")));

    let mut entries = read_entries(&out);
    let config = entries.iter_mut().find(|(n, _)| n == "adapter_config.json").unwrap();
    config.1.extend_from_slice(b" ");
    write_entries(&out, &entries);
    cmd()
        .arg("--verify")
        .arg(&out)
        .assert()
        .failure()
        .stderr(contains("FAILED").and(contains("adapter_config.json: content changed")));
}

#[test]
fn missing_adapter_flag_and_bad_dir_fail() {
    cmd().assert().failure().stderr(contains("--adapter"));
    let dir = tempfile::tempdir().unwrap();
    cmd()
        .arg("--adapter")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("o.tar.gz"))
        .assert()
        .failure()
        .stderr(contains("adapter_config.json"));
    assert!(!dir.path().join("o.tar.gz").exists());
}
