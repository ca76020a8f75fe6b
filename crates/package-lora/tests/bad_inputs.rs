//! Bad inputs, run through the binary as a user (or an attacker) would: archives with members
//! that could escape the folder they are unpacked in, listed in the manifest with their true
//! hashes; outputs over inputs; missing files.

mod common;

use std::io::Read;
use std::path::Path;

use assert_cmd::Command;
use common::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use sha2::{Digest, Sha256};

fn cmd() -> Command {
    Command::cargo_bin("package-lora").unwrap()
}

/// One archive member written header byte by header byte: `tar::Builder` refuses names with
/// `..`, which is exactly what an attacker's tool would not do.
struct Member {
    name: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Vec<u8>,
}

impl Member {
    fn file(name: &str, data: &[u8]) -> Self {
        Member { name: name.into(), kind: tar::EntryType::Regular, data: data.to_vec(), link: Vec::new() }
    }
}

fn write_raw(path: &Path, members: &[Member]) {
    let mut b = tar::Builder::new(GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast()));
    for m in members {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..m.name.len()].copy_from_slice(&m.name);
        old.linkname[..m.link.len()].copy_from_slice(&m.link);
        h.set_size(m.data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(m.kind);
        h.set_cksum();
        b.append(&h, &m.data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// A real package, then the same archive with `evil` added and listed in its manifest with the
/// true sha256 and size of its content, as anyone can do since the manifest travels inside.
fn tampered(dir: &Path, evil: Member) -> std::path::PathBuf {
    let adapter = fake_adapter(dir);
    let out = dir.join("pkg.tar.gz");
    cmd().arg("--adapter").arg(&adapter).arg("--out").arg(&out).assert().success();
    let mut members: Vec<Member> = Vec::new();
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(&out).unwrap()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push(Member::file(&name, &data));
    }
    let manifest = &mut members[0];
    assert_eq!(manifest.name, b"manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&manifest.data).unwrap();
    let name = String::from_utf8(evil.name.clone()).unwrap();
    m["files"][&name] = serde_json::json!({
        "sha256": hex::encode(Sha256::digest(&evil.data)),
        "size": evil.data.len(),
    });
    manifest.data = serde_json::to_vec_pretty(&m).unwrap();
    members.push(evil);
    let bad = dir.join("bad.tar.gz");
    write_raw(&bad, &members);
    bad
}

fn verify_fails(bad: &Path, why: &str) {
    cmd()
        .arg("--verify")
        .arg(bad)
        .assert()
        .failure()
        .stdout(contains("OK").not())
        .stderr(contains("FAILED").and(contains(why)));
}

#[test]
fn members_that_escape_the_folder_fail_whatever_the_manifest_says() {
    for (name, why) in [
        ("../../x", "has a `..` component"),
        ("/abs/path", "is an absolute path"),
        ("sub/../../x", "has a `..` component"),
        ("sub/x", "is in a directory"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bad = tampered(dir.path(), Member::file(name, b"payload"));
        verify_fails(&bad, &format!("{name}: {why}"));
    }
}

#[test]
fn links_devices_and_fifos_fail_whatever_the_manifest_says() {
    let special =
        |name: &str, kind, link: &str| Member { name: name.into(), kind, data: Vec::new(), link: link.into() };
    for (member, why) in [
        (special("evil", tar::EntryType::Symlink, "/etc/passwd"), "a symbolic link"),
        (special("evil", tar::EntryType::Link, "adapter_config.json"), "a hard link"),
        (special("evil", tar::EntryType::Char, ""), "a device"),
        (special("evil", tar::EntryType::Block, ""), "a device"),
        (special("evil", tar::EntryType::Fifo, ""), "a FIFO"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bad = tampered(dir.path(), member);
        verify_fails(&bad, &format!("evil: not a regular file ({why})"));
    }
}

#[test]
fn the_archive_may_not_overwrite_what_it_packages() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = fake_adapter(dir.path());
    let weights = adapter.join("adapter_model.safetensors");
    let before = std::fs::read(&weights).unwrap();
    cmd()
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&weights)
        .assert()
        .failure()
        .stderr(contains("--out").and(contains("--adapter")).and(contains("choose another --out")));
    assert_eq!(std::fs::read(&weights).unwrap(), before);

    let report = dir.path().join("report.json");
    std::fs::write(&report, r#"{"summary": {"total": 1}, "details": []}"#).unwrap();
    cmd()
        .arg("--adapter")
        .arg(&adapter)
        .arg("--report")
        .arg(&report)
        .arg("--out")
        .arg(&report)
        .assert()
        .failure()
        .stderr(contains("--report"));
    assert!(std::fs::read_to_string(&report).unwrap().contains("summary"));
}

#[cfg(unix)]
#[test]
fn a_fifo_output_is_refused_and_left_alone() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let adapter = fake_adapter(dir.path());
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    cmd().arg("--adapter").arg(&adapter).arg("--out").arg(&fifo).assert().failure().stderr(contains("FIFO"));
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_missing_archive_names_the_os_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.tar.gz");
    let out = cmd().arg("--verify").arg(&missing).assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("nope.tar.gz"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}
