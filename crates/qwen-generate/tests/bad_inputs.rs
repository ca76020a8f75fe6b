//! Bad adapters and flags, run through the binary on the tiny fixture model as a user would:
//! NaN or infinite weights, a negative `lora_alpha`, a module listed twice, negative numbers.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use qwen_lora::fixture::{poison_adapter, write_tiny_adapter, write_tiny_model};

/// The tiny model and a working adapter for it.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, adapter) = (dir.join("tiny"), dir.join("adapter"));
    write_tiny_model(&model, 7).unwrap();
    write_tiny_adapter(&model, &adapter, 3).unwrap();
    (model, adapter)
}

fn generate(model: &Path, adapter: &Path) -> Command {
    let mut c = Command::cargo_bin("qwen-generate").unwrap();
    c.arg("--model").arg(model).arg("--adapter").arg(adapter).args(["--prompt", "請問年假?", "--max-new-tokens", "4"]);
    c
}

#[test]
fn the_working_adapter_generates() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    generate(&model, &adapter).assert().success();
}

#[test]
fn non_finite_adapter_weights_are_refused_naming_the_tensor() {
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf"), (f32::NEG_INFINITY, "-inf")] {
        let dir = tempfile::tempdir().unwrap();
        let (model, adapter) = setup(dir.path());
        let tensor = poison_adapter(&adapter, value).unwrap();
        generate(&model, &adapter).assert().failure().stdout("").stderr(
            contains(format!("tensor '{tensor}' holds {shown}"))
                .and(contains("adapter_model.safetensors"))
                .and(contains("retrain")),
        );
    }
}

/// The adapter's config with `edit` applied to its JSON.
fn edit_config(adapter: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = adapter.join("adapter_config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&path, cfg.to_string()).unwrap();
}

#[test]
fn a_negative_lora_alpha_is_refused_as_training_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    edit_config(&adapter, |c| c["lora_alpha"] = serde_json::json!(-32));
    generate(&model, &adapter).assert().failure().stderr(
        contains("adapter_config.json").and(contains("lora_alpha must be a positive number")).and(contains("-32")),
    );
}

#[test]
fn a_target_module_listed_twice_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = setup(dir.path());
    edit_config(&adapter, |c| c["target_modules"] = serde_json::json!(["q_proj", "v_proj", "q_proj"]));
    generate(&model, &adapter)
        .assert()
        .failure()
        .stderr(contains("adapter_config.json").and(contains("'q_proj' twice")));
}

#[test]
fn negative_numbers_reach_validation_before_the_model_loads() {
    // No model at this path: the flag must be judged first.
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("qwen-generate")
        .unwrap()
        .arg("--model")
        .arg(dir.path().join("no-model"))
        .args(["--prompt", "hi", "--temperature", "-1"])
        .assert()
        .failure()
        .stderr(contains("--temperature: must be a finite number >= 0").and(contains("unexpected argument").not()));
}
