//! Bad outputs and inputs, run through the binary as a user would: outputs that are devices,
//! FIFOs, directories, symlinks or one of the inputs; the umask and an overwritten file's mode;
//! missing files and negative numbers.

mod common;

use std::path::Path;

use common::{cmd, repo_data, workdir};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[cfg(unix)]
fn file_type(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

#[cfg(unix)]
#[test]
fn a_device_output_is_refused_and_left_a_device() {
    use std::os::unix::fs::FileTypeExt;
    let dir = workdir();
    // A device node of our own (the full device, 1:7) rather than /dev/full, so that a writer
    // that replaces devices damages nothing outside the test. Making one needs root.
    let dev = dir.path().join("full");
    let made = std::process::Command::new("mknod").arg(&dev).args(["c", "1", "7"]).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mknod needs root");
        return;
    }
    cmd(dir.path()).arg("--out").arg(&dev).assert().failure().stderr(contains("full").and(contains("a device")));
    assert!(file_type(&dev).is_char_device(), "the device was replaced");
}

#[cfg(unix)]
#[test]
fn a_fifo_or_directory_output_is_refused_and_left_alone() {
    use std::os::unix::fs::FileTypeExt;
    let dir = workdir();
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    cmd(dir.path()).arg("--out").arg(&fifo).assert().failure().stderr(contains("pipe").and(contains("FIFO")));
    assert!(file_type(&fifo).is_fifo(), "the FIFO was replaced");

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    cmd(dir.path()).arg("--out").arg(&sub).assert().failure().stderr(contains("is a directory"));
    assert!(sub.is_dir());
}

#[cfg(unix)]
#[test]
fn a_symlink_output_updates_its_target_and_stays_a_link() {
    let dir = workdir();
    let target = dir.path().join("real.jsonl");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    cmd(dir.path()).arg("--out").arg(&link).args(["--total", "20"]).assert().success();
    assert!(file_type(&link).is_symlink(), "the link was replaced by a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap().lines().count(), 20);
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = workdir();
    let kb = dir.path().join("data/kb.jsonl");
    let before = std::fs::read(&kb).unwrap();
    cmd(dir.path())
        .arg("--out")
        .arg(&kb)
        .assert()
        .failure()
        .stderr(contains("--out").and(contains("--kb")).and(contains("choose another --out")));
    // Another spelling of the same path, and a hard link to it.
    cmd(dir.path()).args(["--out", "data/../data/kb.jsonl"]).assert().failure().stderr(contains("--kb"));
    #[cfg(unix)]
    {
        let hard = dir.path().join("hard.jsonl");
        std::fs::hard_link(&kb, &hard).unwrap();
        cmd(dir.path()).arg("--out").arg(&hard).assert().failure().stderr(contains("--kb"));
    }
    assert_eq!(std::fs::read(&kb).unwrap(), before);
    let questions = dir.path().join("data/questions.toml");
    cmd(dir.path()).arg("--out").arg(&questions).assert().failure().stderr(contains("--questions"));
    assert_eq!(std::fs::read(&questions).unwrap(), std::fs::read(repo_data().join("questions.toml")).unwrap());
}

/// Runs the binary under `umask`, through the shell (the one portable way to set it).
#[cfg(unix)]
fn with_umask(dir: &Path, umask: &str, out: &Path) {
    let bin = assert_cmd::cargo::cargo_bin("gen-train-set");
    let status = std::process::Command::new("sh")
        .current_dir(dir)
        .args(["-c", &format!("umask {umask} && exec \"$0\" --total 20 --out \"$1\""), bin.to_str().unwrap()])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn new_files_follow_the_umask_and_overwritten_ones_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = workdir();
    for (umask, want) in [("022", 0o644), ("027", 0o640), ("077", 0o600)] {
        let out = dir.path().join(format!("new-{umask}.jsonl"));
        with_umask(dir.path(), umask, &out);
        assert_eq!(mode(&out), want, "umask {umask}");
    }
    let kept = dir.path().join("kept.jsonl");
    std::fs::write(&kept, "old\n").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o664)).unwrap();
    with_umask(dir.path(), "077", &kept);
    assert_eq!(mode(&kept), 0o664);
    assert_eq!(std::fs::read_to_string(&kept).unwrap().lines().count(), 20);
}

#[test]
fn a_missing_input_names_the_os_error_once() {
    let dir = workdir();
    let a = cmd(dir.path()).args(["--kb", "nope.jsonl", "--out", "o.jsonl"]).assert().failure();
    let stderr = stderr_of(&a);
    assert!(stderr.contains("nope.jsonl"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn negative_numbers_reach_validation_and_name_the_flag() {
    let dir = workdir();
    cmd(dir.path())
        .args(["--unanswerable-ratio", "-0.5", "--out", "o.jsonl"])
        .assert()
        .failure()
        .stderr(contains("--unanswerable-ratio -0.5 must be between 0 and 1"));
    // A count cannot be negative: clap says so about the flag, not "unexpected argument".
    cmd(dir.path())
        .args(["--total", "-5", "--out", "o.jsonl"])
        .assert()
        .failure()
        .stderr(contains("invalid value '-5' for '--total").and(contains("unexpected argument").not()));
    assert!(!dir.path().join("o.jsonl").exists());
}
