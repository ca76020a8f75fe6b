//! Interrupted and earlier-interrupted exports, outputs over inputs, and the mode of what is
//! written, through the binary on the tiny fixture model as a user would run it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use qwen_lora::fixture::{write_tiny_adapter, write_tiny_gguf, write_tiny_model};

/// A GGUF base and an adapter for it (made on the same tiny model as an HF directory).
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, base, adapter) = (dir.join("tiny"), dir.join("base.gguf"), dir.join("adapter"));
    write_tiny_model(&model, 7).unwrap();
    write_tiny_gguf(&base, 7).unwrap();
    write_tiny_adapter(&model, &adapter, 3).unwrap();
    (base, adapter)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn hidden(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| n.starts_with('.')).collect()
}

fn export() -> Command {
    Command::cargo_bin("export-gguf").unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_during_an_export_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let (_, adapter) = setup(dir.path());
    // A base that blocks its reader: the export reserves its output first, then waits here, so
    // the interrupt arrives while the temporary file exists.
    let fifo = dir.path().join("slow.gguf");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.path().join("tuned.gguf");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("export-gguf"))
        .arg("--gguf")
        .arg(&fifo)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while hidden(dir.path()).is_empty() {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the export never reserved its output");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the export did not stop on Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(hidden(dir.path()).is_empty(), "temporaries left: {:?}", hidden(dir.path()));
    assert!(!out.exists());
}

#[test]
fn a_temporary_left_by_an_interrupted_run_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (base, adapter) = setup(dir.path());
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".tuned.gguf.kb-lora-tmp.{dead}.Xy12Zw"));
    std::fs::write(&stale, vec![0u8; 1 << 16]).unwrap();
    export()
        .arg("--gguf")
        .arg(&base)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(dir.path().join("tuned.gguf"))
        .assert()
        .success();
    assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (base, adapter) = setup(dir.path());
    // --lora-only over the adapter's own weights.
    let weights = adapter.join("adapter_model.safetensors");
    let before = std::fs::read(&weights).unwrap();
    export()
        .arg("--adapter")
        .arg(&adapter)
        .arg("--lora-only")
        .arg("--out")
        .arg(&weights)
        .assert()
        .failure()
        .stderr(contains("--out").and(contains("in --adapter")).and(contains("choose another --out")));
    assert_eq!(std::fs::read(&weights).unwrap(), before);
    // A hard link to the base is the base.
    #[cfg(unix)]
    {
        let linked = dir.path().join("linked.gguf");
        std::fs::hard_link(&base, &linked).unwrap();
        let before = std::fs::read(&base).unwrap();
        export()
            .arg("--gguf")
            .arg(&base)
            .arg("--adapter")
            .arg(&adapter)
            .arg("--out")
            .arg(&linked)
            .assert()
            .failure()
            .stderr(contains("--out is the same file as --gguf"));
        assert_eq!(std::fs::read(&base).unwrap(), before);
    }
}

#[cfg(unix)]
#[test]
fn the_export_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (base, adapter) = setup(dir.path());
    let out = dir.path().join("tuned.gguf");
    let bin = assert_cmd::cargo::cargo_bin("export-gguf");
    let status = std::process::Command::new("sh")
        .args(["-c", "umask 027 && exec \"$0\" \"$@\"", bin.to_str().unwrap(), "--gguf"])
        .arg(&base)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o640);
}
