//! `merge-lora` on the tiny fixture: the merged directory loads with our loader and gives the
//! logits of base + adapter; failures leave nothing behind.

use std::path::Path;

use assert_cmd::Command;
use candle_core::{DType, Device, Tensor};
use predicates::prelude::*;
use qwen_lora::adapter::{load_adapter, save_adapter};
use qwen_lora::fixture::{tiny_config, tiny_tensors, write_tiny_gguf, write_tiny_model};
use qwen_lora::load::{ModelSource, load_base};
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::{Mode, Qwen2};

const SEED: u64 = 3;

fn model_from(src: &ModelSource) -> Qwen2 {
    let base = load_base(src, &Device::Cpu, DType::F32).unwrap();
    Qwen2::new(&base.config, base.vb.clone(), None).unwrap()
}

/// An adapter on q/k/v/o and up_proj with every B set to non-zero values, saved to `dir`.
fn write_adapter(base: &ModelSource, dir: &Path) {
    let mut m = model_from(base);
    let cfg = LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"].map(String::from).to_vec(),
        use_rslora: false,
    };
    m.attach_lora(&cfg, 7).unwrap();
    for (i, (name, var)) in m.lora_vars().into_iter().enumerate() {
        if name.contains("lora_B") {
            let n = var.elem_count();
            let v: Vec<f32> = (0..n).map(|k| (((k * 31 + i * 17) % 200) as f32 / 1000.0) - 0.1).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    save_adapter(&m, dir, &"tiny".into()).unwrap();
}

fn logits(m: &Qwen2) -> Tensor {
    let v = (tiny_config().vocab_size - 3) as u32;
    let ids: Vec<u32> = (0..12u32).map(|i| (i * 37 + 5) % v).collect();
    let x = Tensor::from_vec(ids, (1, 12), &Device::Cpu).unwrap();
    let h = m.forward_hidden(&x, &x.ones_like().unwrap(), Mode::Eval).unwrap();
    m.logits(&h.squeeze(0).unwrap()).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

/// Logits of `base` with the adapter attached (not merged).
fn adapter_logits(base: &ModelSource, adapter: &Path) -> Tensor {
    let mut m = model_from(base);
    load_adapter(&mut m, adapter).unwrap();
    logits(&m)
}

fn merge_cmd(base_flag: &str, base: &Path, adapter: &Path, out: &Path) -> Command {
    let mut cmd = Command::cargo_bin("merge-lora").unwrap();
    cmd.arg(base_flag).arg(base).arg("--adapter").arg(adapter).arg("--out").arg(out);
    cmd
}

#[test]
fn merged_hf_directory_gives_the_adapter_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let (base_dir, adapter, out) = (tmp.path().join("base"), tmp.path().join("adapter"), tmp.path().join("merged"));
    write_tiny_model(&base_dir, SEED).unwrap();
    let src = ModelSource::Dir(base_dir.clone());
    write_adapter(&src, &adapter);

    merge_cmd("--model", &base_dir, &adapter, &out).assert().success();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(base_dir.join("tokenizer.json")).unwrap()
    );
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "float32");

    let want = adapter_logits(&src, &adapter);
    let base = logits(&model_from(&src));
    assert!(max_abs_diff(&want, &base) > 1e-2, "the adapter must change the logits");
    let got = logits(&model_from(&ModelSource::Dir(out.clone())));
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-4, "merged directory logits differ from base + adapter by {d}");
}

#[test]
fn a_gguf_base_merges_to_a_directory_with_tokenizer_and_generation_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, adapter, out) = (tmp.path().join("base.gguf"), tmp.path().join("adapter"), tmp.path().join("merged"));
    write_tiny_gguf(&gguf, SEED).unwrap();
    let src = ModelSource::Gguf(gguf.clone());
    write_adapter(&src, &adapter);

    merge_cmd("--gguf", &gguf, &adapter, &out).assert().success();
    let gen_cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("generation_config.json")).unwrap()).unwrap();
    let v = tiny_config().vocab_size as u64;
    assert!(gen_cfg["eos_token_id"].as_array().unwrap().contains(&(v - 1).into()), "{gen_cfg}");
    let tok_cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(tok_cfg["eos_token"], "<|im_end|>");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "Qwen2ForCausalLM");

    let merged = load_base(&ModelSource::Dir(out.clone()), &Device::Cpu, DType::F32).unwrap();
    let text = "<|im_start|>user\n請問年假有幾天? Hello world<|im_end|>";
    let from_gguf = load_base(&src, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(
        merged.tokenizer.encode(text, false).unwrap().get_ids(),
        from_gguf.tokenizer.encode(text, false).unwrap().get_ids()
    );
    let d = max_abs_diff(&logits(&model_from(&ModelSource::Dir(out.clone()))), &adapter_logits(&src, &adapter));
    assert!(d < 1e-4, "merged directory logits differ from base + adapter by {d}");
}

#[test]
fn bf16_output_is_stored_as_bf16_and_stays_close() {
    let tmp = tempfile::tempdir().unwrap();
    let (base_dir, adapter, out) = (tmp.path().join("base"), tmp.path().join("adapter"), tmp.path().join("merged"));
    write_tiny_model(&base_dir, SEED).unwrap();
    let src = ModelSource::Dir(base_dir.clone());
    write_adapter(&src, &adapter);
    merge_cmd("--model", &base_dir, &adapter, &out).args(["--dtype-out", "bf16"]).assert().success();
    let raw = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(raw.values().all(|t| t.dtype() == DType::BF16));
    let want = adapter_logits(&src, &adapter);
    let got = logits(&model_from(&ModelSource::Dir(out.clone())));
    // The tolerance is what bf16 storage does to the base alone (weights rounded to bf16, no
    // adapter): the merged weights are rounded the same way, so the logits move about as much.
    let rounded: Vec<(String, Tensor)> = tiny_tensors(SEED)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap()))
        .collect();
    let vb = candle_nn::VarBuilder::from_tensors(rounded.into_iter().collect(), DType::F32, &Device::Cpu);
    let noise = max_abs_diff(&logits(&Qwen2::new(&tiny_config(), vb, None).unwrap()), &logits(&model_from(&src)));
    let d = max_abs_diff(&got, &want);
    assert!(d <= 2.0 * noise, "bf16 merged logits differ by {d} (bf16 noise of the base {noise})");
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kb-lora-tmp."))
        .collect()
}

#[test]
fn failures_say_why_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (base_dir, adapter) = (tmp.path().join("base"), tmp.path().join("adapter"));
    write_tiny_model(&base_dir, SEED).unwrap();
    write_adapter(&ModelSource::Dir(base_dir.clone()), &adapter);

    // An existing, non-empty --out is left alone.
    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), b"mine").unwrap();
    merge_cmd("--model", &base_dir, &adapter, &taken)
        .assert()
        .failure()
        .stderr(predicates::str::contains("already exists"));
    assert_eq!(std::fs::read(taken.join("keep.txt")).unwrap(), b"mine");

    // An adapter for a model with more layers than the base.
    let cfg = tiny_config();
    let bad = tmp.path().join("bad-adapter");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(adapter.join("adapter_config.json"), bad.join("adapter_config.json")).unwrap();
    let mut ts = candle_core::safetensors::load(adapter.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let renamed: Vec<(String, Tensor)> = ts
        .drain()
        .map(|(k, t)| (k.replace("layers.1.", &format!("layers.{}.", cfg.num_hidden_layers + 3)), t))
        .collect();
    candle_core::safetensors::save(&renamed.into_iter().collect(), bad.join("adapter_model.safetensors")).unwrap();
    let out = tmp.path().join("merged");
    merge_cmd("--model", &base_dir, &bad, &out)
        .assert()
        .failure()
        .stderr(predicates::str::contains("layer 5").and(predicates::str::contains("2 layers")));
    assert!(!out.exists());

    // A missing adapter directory.
    merge_cmd("--model", &base_dir, &tmp.path().join("nope"), &out)
        .assert()
        .failure()
        .stderr(predicates::str::contains("adapter directory not found"));
    assert!(!out.exists());
    assert!(leftovers(tmp.path()).is_empty(), "temporary directories left: {:?}", leftovers(tmp.path()));
}
