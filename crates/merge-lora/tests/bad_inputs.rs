//! Interrupted and earlier-interrupted runs, and the modes of what is written, through the
//! binary on the tiny fixture model as a user would run it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use qwen_lora::fixture::process::{dead_pid, names, signal, wait, with_umask};
use qwen_lora::fixture::{write_tiny_adapter, write_tiny_model};

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, adapter) = (dir.join("tiny"), dir.join("adapter"));
    write_tiny_model(&model, 7).unwrap();
    write_tiny_adapter(&model, &adapter, 3).unwrap();
    (model, adapter)
}

/// `--model M --adapter A --out O`.
fn merge_args<'a>(model: &'a Path, adapter: &'a Path, out: &'a Path) -> [&'a OsStr; 6] {
    [
        "--model".as_ref(),
        model.as_os_str(),
        "--adapter".as_ref(),
        adapter.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]
}

#[test]
fn a_temporary_left_by_an_interrupted_run_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    // What a merge killed halfway leaves: its temporary directory, named with its process id.
    let stale = dir.path().join(format!(".merged.kb-lora-tmp.{}.Ab12Cd", dead_pid()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), vec![0u8; 1 << 16]).unwrap();
    let out = dir.path().join("merged");
    Command::cargo_bin("merge-lora").unwrap().args(merge_args(&model, &adapter, &out)).assert().success();
    assert_eq!(names(dir.path()), ["adapter", "merged", "tiny"]);
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_while_the_merged_model_is_written_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    let bin = assert_cmd::cargo::cargo_bin("merge-lora");
    // The temporary directory lives for milliseconds on the tiny model: watch for it, freeze the
    // process the moment it appears (SIGSTOP), deliver Ctrl-C, and let it run on.
    for attempt in 0..100 {
        let out = dir.path().join(format!("merged-{attempt}"));
        let mut child = std::process::Command::new(&bin)
            .args(merge_args(&model, &adapter, &out))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut caught = false;
        while child.try_wait().unwrap().is_none() {
            if names(dir.path()).iter().any(|n| n.starts_with('.')) {
                signal(&child, "-STOP");
                caught = names(dir.path()).iter().any(|n| n.starts_with('.'));
                if caught {
                    signal(&child, "-INT");
                }
                signal(&child, "-CONT");
                break;
            }
        }
        let status = wait(&mut child, Duration::from_secs(60));
        let left: Vec<String> = names(dir.path()).into_iter().filter(|n| n.starts_with('.')).collect();
        assert!(left.is_empty(), "temporaries left by attempt {attempt}: {left:?} ({status:?})");
        if caught {
            // Interrupted (130), unless the rename won the race and the merge completed.
            assert!(status.code() == Some(130) || (status.success() && out.is_dir()), "{status:?}");
            return;
        }
    }
    panic!("the temporary directory was never seen in 100 runs: nothing was tested");
}

#[cfg(unix)]
#[test]
fn the_merged_model_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    let out = dir.path().join("merged");
    let bin = assert_cmd::cargo::cargo_bin("merge-lora");
    let status =
        with_umask(&bin, "027").args(merge_args(&model, &adapter, &out)).stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o750);
    for f in names(&out) {
        assert_eq!(mode(&out.join(&f)), 0o640, "{f}");
    }
    assert!(names(&out).contains(&"model.safetensors".to_string()));
}
