//! Interrupted and earlier-interrupted exports, outputs over inputs, and the mode of what is
//! written, through the binary on the tiny fixture model as a user would run it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{export, merged_args};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use qwen_lora::fixture::process::{dead_pid, hidden, signal, wait, with_umask};
use qwen_lora::fixture::{write_tiny_adapter, write_tiny_gguf, write_tiny_model};

/// A GGUF base and an adapter for it (made on the same tiny model as an HF directory).
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, base, adapter) = (dir.join("tiny"), dir.join("base.gguf"), dir.join("adapter"));
    write_tiny_model(&model, 7).unwrap();
    write_tiny_gguf(&base, 7).unwrap();
    write_tiny_adapter(&model, &adapter, 3).unwrap();
    (base, adapter)
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
        .args(merged_args(&fifo, &adapter, &out))
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
    signal(&child, "-INT");
    let status = wait(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(hidden(dir.path()).is_empty(), "temporaries left: {:?}", hidden(dir.path()));
    assert!(!out.exists());
}

#[test]
fn a_temporary_left_by_an_interrupted_run_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (base, adapter) = setup(dir.path());
    let stale = dir.path().join(format!(".tuned.gguf.kb-lora-tmp.{}.Xy12Zw", dead_pid()));
    std::fs::write(&stale, vec![0u8; 1 << 16]).unwrap();
    export().args(merged_args(&base, &adapter, &dir.path().join("tuned.gguf"))).assert().success();
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
            .args(merged_args(&base, &adapter, &linked))
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
    let status =
        with_umask(&bin, "027").args(merged_args(&base, &adapter, &out)).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o640);
}
