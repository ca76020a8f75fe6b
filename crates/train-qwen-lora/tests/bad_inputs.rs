//! Bad inputs, run through the binary on the tiny fixture model as a user would: training into
//! an earlier run, damaged checkpoints, settings that do not fit the run, inputs inside the
//! output, negative numbers; and the modes of what a run writes.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// One data-set line, as kb-dataset writes it.
fn line(q: &str, a: &str) -> String {
    kb_dataset::to_jsonl(&[kb_dataset::Sample::new(q, a, None, "direct")]).trim_end().to_string()
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
    /// `--model M --train T --eval E --output O` and small settings.
    args: Vec<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let model = root.join("tiny");
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    let train: Vec<String> =
        (0..4).map(|i| line(&format!("請問年假{i}?"), &format!("依據公司規範:年假{i}天。"))).collect();
    std::fs::write(root.join("train.jsonl"), train.join("\n") + "\n").unwrap();
    std::fs::write(root.join("eval.jsonl"), line("請問加班?", "依據公司規範:加班需主管核准。") + "\n").unwrap();
    let out = root.join("out");
    let p = |name: &str| root.join(name).display().to_string();
    let args = vec![
        "--model".into(),
        p("tiny"),
        "--train".into(),
        p("train.jsonl"),
        "--eval".into(),
        p("eval.jsonl"),
        "--output".into(),
        out.display().to_string(),
        "--epochs".into(),
        "1".into(),
        "--micro-batch".into(),
        "2".into(),
        "--grad-accum".into(),
        "1".into(),
        "--lora-r".into(),
        "2".into(),
    ];
    Setup { _dir: dir, root, out, args }
}

fn train(s: &Setup) -> Command {
    train_without(s, &[])
}

/// The binary with the setup's flags except those in `omit` (clap refuses a flag given twice).
fn train_without(s: &Setup, omit: &[&str]) -> Command {
    let mut c = Command::cargo_bin("train-qwen-lora").unwrap();
    for pair in s.args.chunks(2) {
        if !omit.contains(&pair[0].as_str()) {
            c.args(pair);
        }
    }
    c
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn an_earlier_run_is_kept_unless_overwrite_is_given() {
    let s = setup();
    train(&s).assert().success();
    let weights = s.out.join("final_model/adapter_model.safetensors");
    let first = std::fs::read(&weights).unwrap();
    train(&s).args(["--seed", "5"]).assert().failure().stderr(
        contains("already holds a training run")
            .and(contains("final_model"))
            .and(contains("--resume"))
            .and(contains("--overwrite")),
    );
    assert_eq!(std::fs::read(&weights).unwrap(), first, "the earlier adapter changed");
    // --overwrite starts over: a new adapter, and only this run's checkpoint.
    train(&s).args(["--seed", "5", "--overwrite"]).assert().success();
    assert_ne!(std::fs::read(&weights).unwrap(), first);
    let checkpoints: Vec<String> = std::fs::read_dir(&s.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(checkpoints, ["checkpoint-2"]);
    train(&s).args(["--overwrite", "--resume"]).assert().failure().stderr(contains("cannot be used with"));
}

#[test]
fn damaged_checkpoints_are_named_on_resume() {
    let s = setup();
    train(&s).assert().success();
    let ckpt = s.out.join("checkpoint-2");
    let weights = ckpt.join("adapter_model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    train(&s).arg("--resume").assert().failure().stderr(
        contains(weights.display().to_string())
            .and(contains("not a readable safetensors file"))
            .and(contains("damaged")),
    );
    std::fs::write(&weights, &bytes).unwrap();
    let optimizer = ckpt.join("optimizer.safetensors");
    std::fs::remove_file(&optimizer).unwrap();
    train(&s)
        .arg("--resume")
        .assert()
        .failure()
        .stderr(contains(optimizer.display().to_string()).and(contains("missing")));
}

#[test]
fn a_settings_mismatch_points_at_the_checkpoint_that_records_them() {
    let s = setup();
    train(&s).assert().success();
    // Resuming that checkpoint into a new output directory, where no train_config.toml exists.
    let other = s.root.join("other");
    let a = train_without(&s, &["--output"])
        .arg("--output")
        .arg(&other)
        .arg("--resume")
        .arg(s.out.join("checkpoint-2"))
        .args(["--lr", "0.001"])
        .assert()
        .failure();
    let stderr = stderr_of(&a);
    let state = s.out.join("checkpoint-2/trainer_state.json");
    assert!(stderr.contains("learning_rate (checkpoint 0.0003, now 0.001)"), "{stderr}");
    assert!(stderr.contains(&state.display().to_string()) && state.is_file(), "{stderr}");
    assert!(!stderr.contains("other/train_config.toml"), "{stderr}");
}

#[test]
fn settings_that_do_not_fit_are_named() {
    let s = setup();
    // Warmup longer than the run: the learning rate would never reach its peak.
    train(&s)
        .args(["--warmup-steps", "1000"])
        .assert()
        .success()
        .stderr(contains("warmup_steps = 1000 is more than the 2 optimizer steps"));
    // A module listed twice, before the model loads.
    let cfg = s.root.join("dup.toml");
    std::fs::write(&cfg, "[lora]\ntarget_modules = [\"q_proj\", \"v_proj\", \"q_proj\"]\n").unwrap();
    train_without(&s, &["--model"])
        .arg("--config")
        .arg(&cfg)
        .args(["--model", "/nonexistent/model"])
        .assert()
        .failure()
        .stderr(contains("lora.target_modules").and(contains("'q_proj' twice")));
    // Negative numbers reach validation: the message names the setting, not the parser.
    train(&s)
        .args(["--lr", "-1", "--overwrite"])
        .assert()
        .failure()
        .stderr(contains("`learning_rate` must be a positive number").and(contains("unexpected argument").not()));
}

#[test]
fn an_input_inside_what_the_run_replaces_is_refused() {
    let s = setup();
    train(&s).assert().success();
    // The run's own metrics as training data: the next run would rewrite them.
    let metrics = s.out.join("metrics.jsonl");
    std::fs::copy(s.root.join("train.jsonl"), &metrics).unwrap();
    train_without(&s, &["--train"])
        .arg("--train")
        .arg(&metrics)
        .arg("--overwrite")
        .assert()
        .failure()
        .stderr(contains("--output").and(contains("same file as --train")));
    assert_eq!(std::fs::read(&metrics).unwrap(), std::fs::read(s.root.join("train.jsonl")).unwrap());
}

#[test]
fn a_missing_config_names_the_os_error_once() {
    let s = setup();
    let a = train(&s).args(["--config", "/nonexistent/train.toml"]).assert().failure();
    let stderr = stderr_of(&a);
    assert!(stderr.contains("/nonexistent/train.toml"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[cfg(unix)]
#[test]
fn what_a_run_writes_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let bin = assert_cmd::cargo::cargo_bin("train-qwen-lora");
    let status = std::process::Command::new("sh")
        .args(["-c", "umask 027 && exec \"$0\" \"$@\"", bin.to_str().unwrap()])
        .args(&s.args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in ["final_model", "checkpoint-2"] {
        assert_eq!(mode(&s.out.join(dir)), 0o750, "{dir}");
    }
    for file in [
        "final_model/adapter_model.safetensors",
        "final_model/adapter_config.json",
        "checkpoint-2/optimizer.safetensors",
        "checkpoint-2/trainer_state.json",
        "metrics.jsonl",
        "summary.json",
        "train_config.toml",
    ] {
        assert_eq!(mode(&s.out.join(file)), 0o640, "{file}");
    }
}
