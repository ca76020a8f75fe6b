//! Interrupted and earlier-interrupted runs, and the modes of what is written, through the
//! binary on the tiny fixture model as a user would run it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use qwen_lora::fixture::{write_tiny_adapter, write_tiny_model};

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, adapter) = (dir.join("tiny"), dir.join("adapter"));
    write_tiny_model(&model, 7).unwrap();
    write_tiny_adapter(&model, &adapter, 3).unwrap();
    (model, adapter)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A process id that no process has any more.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
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
    Command::cargo_bin("merge-lora")
        .unwrap()
        .arg("--model")
        .arg(&model)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(names(dir.path()), ["adapter", "merged", "tiny"]);
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} failed");
}

/// Waits for `child` to exit, killing it after `limit`.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
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
            .arg("--model")
            .arg(&model)
            .arg("--adapter")
            .arg(&adapter)
            .arg("--out")
            .arg(&out)
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
    let status = std::process::Command::new("sh")
        .args(["-c", "umask 027 && exec \"$0\" \"$@\"", bin.to_str().unwrap(), "--model"])
        .arg(&model)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o750);
    for f in names(&out) {
        assert_eq!(mode(&out.join(&f)), 0o640, "{f}");
    }
    assert!(names(&out).contains(&"model.safetensors".to_string()));
}
