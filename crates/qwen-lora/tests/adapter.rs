//! Adapter files: our save → load round trip, a hand-written PEFT-layout adapter, and the
//! mismatches `load_adapter` must reject with an error naming the problem.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::{all_modules, ids, max_abs_diff, tiny_lora_model, tiny_model};
use qwen_lora::adapter::{CONFIG_FILE, WEIGHTS_FILE, load_adapter, read_adapter, save_adapter};
use qwen_lora::fixture::{tiny_config, tiny_tensors};
use qwen_lora::model::{Mode, Qwen2};
use serde_json::json;

const SEED: u64 = 11;

fn logits(m: &Qwen2) -> Tensor {
    let x = Tensor::from_vec(ids(3, 9), (1, 9), &Device::Cpu).unwrap();
    let h = m.forward_hidden(&x, &x.ones_like().unwrap(), Mode::Eval).unwrap();
    m.logits(&h.squeeze(0).unwrap()).unwrap()
}

/// A PEFT-style `adapter_config.json` as Python PEFT 0.13 writes it, with extra fields we ignore.
fn peft_config(r: usize, alpha: f64, targets: &[&str]) -> serde_json::Value {
    json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct",
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_dropout": 0.05,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false
    })
}

fn write_adapter(dir: &Path, config: &serde_json::Value, tensors: &[(&str, Tensor)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), serde_json::to_string_pretty(config).unwrap()).unwrap();
    let map: HashMap<String, Tensor> = tensors.iter().map(|(k, t)| (k.to_string(), t.clone())).collect();
    candle_core::safetensors::save(&map, dir.join(WEIGHTS_FILE)).unwrap();
}

/// Deterministic values in about ±0.1, different for each `salt`.
fn filled(shape: (usize, usize), salt: usize) -> Tensor {
    let n = shape.0 * shape.1;
    let v: Vec<f32> = (0..n).map(|k| (((k * 7919 + salt * 104_729) % 1000) as f32 / 5000.0) - 0.1).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn key(layer: usize, group: &str, module: &str, ab: &str) -> String {
    format!("base_model.model.model.layers.{layer}.{group}.{module}.lora_{ab}.weight")
}

/// Error text of loading `dir` into a fresh tiny model.
fn load_err(dir: &Path) -> String {
    let mut m = tiny_model(SEED, DType::F32);
    let before = logits(&m);
    let e = match load_adapter(&mut m, dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    };
    assert_eq!(max_abs_diff(&before, &logits(&m)), 0.0, "a rejected adapter must leave the model as it was");
    e
}

#[test]
fn save_then_load_gives_identical_tensors_and_logits() {
    let model = tiny_lora_model(SEED, DType::F32, &all_modules());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("adapter");
    save_adapter(&model, &dir, &"tiny-base".into()).unwrap();

    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["lora_alpha"], 8.0);
    assert_eq!(cfg["base_model_name_or_path"], "tiny-base");
    assert_eq!(cfg["revision"], serde_json::Value::Null);
    // A base with a revision (a hub commit, or a GGUF file's hash) is recorded with it.
    let base = qwen_lora::BaseModelId { name_or_path: "Qwen/x".into(), revision: Some("7ae5576".into()) };
    let with_rev = tmp.path().join("with-revision");
    save_adapter(&model, &with_rev, &base).unwrap();
    let rev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(with_rev.join(CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!((rev["base_model_name_or_path"].as_str(), rev["revision"].as_str()), (Some("Qwen/x"), Some("7ae5576")));
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    assert_eq!(cfg["fan_in_fan_out"], false);
    assert!(cfg.get("use_dora").is_none() && cfg.get("rank_pattern").is_none());
    // PEFT's key names and layouts, f32.
    let raw = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    let a = &raw["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"];
    let b = &raw["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"];
    let c = tiny_config();
    assert_eq!(a.dims(), [4, c.hidden_size]);
    assert_eq!(b.dims(), [c.num_key_value_heads * c.head_dim(), 4]);
    assert_eq!(a.dtype(), DType::F32);
    assert_eq!(raw.len(), 2 * 7 * c.num_hidden_layers);

    let mut loaded = tiny_model(SEED, DType::F32);
    let read = load_adapter(&mut loaded, &dir).unwrap();
    assert_eq!(read.r, 4);
    assert_eq!(loaded.lora_config(), model.lora_config());
    let (want, got) = (model.lora_vars(), loaded.lora_vars());
    assert_eq!(want.len(), got.len());
    let mut nonzero_b = 0;
    for ((n1, v1), (n2, v2)) in want.iter().zip(&got) {
        assert_eq!(n1, n2);
        let (x, y) = (v1.flatten_all().unwrap(), v2.flatten_all().unwrap());
        assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap(), "{n1} changed in the round trip");
        if n1.contains("lora_B") && x.abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap() > 0.0 {
            nonzero_b += 1;
        }
    }
    assert_eq!(nonzero_b, 7 * c.num_hidden_layers, "the test needs non-zero B everywhere");
    assert_eq!(max_abs_diff(&logits(&model), &logits(&loaded)), 0.0);
}

#[test]
fn a_hand_written_peft_adapter_changes_the_logits_as_expected() {
    let c = tiny_config();
    let (h, kv) = (c.hidden_size, c.num_key_value_heads * c.head_dim());
    let (r, alpha) = (2, 6.0);
    let a_q = filled((r, h), 1);
    let b_q = filled((h, r), 2);
    let a_v = filled((r, h), 3);
    let b_v = filled((kv, r), 4);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("peft");
    write_adapter(
        &dir,
        &peft_config(r, alpha, &["v_proj", "q_proj"]),
        &[
            (&key(0, "self_attn", "q_proj", "A"), a_q.clone()),
            (&key(0, "self_attn", "q_proj", "B"), b_q.clone()),
            // PEFT versions before 0.7 kept the adapter name in the key.
            ("base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight", a_v.clone()),
            ("base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight", b_v.clone()),
        ],
    );
    let mut with_adapter = tiny_model(SEED, DType::F32);
    load_adapter(&mut with_adapter, &dir).unwrap();
    assert_eq!(with_adapter.lora_vars().len(), 4);

    // The same change written into the base weights by hand: W + (alpha / r)·B·A.
    let scale = alpha / r as f64;
    let mut tensors: HashMap<String, Tensor> = tiny_tensors(SEED).unwrap().into_iter().collect();
    for (name, a, b) in
        [("model.layers.0.self_attn.q_proj.weight", &a_q, &b_q), ("model.layers.1.self_attn.v_proj.weight", &a_v, &b_v)]
    {
        let w = &tensors[name];
        let merged = (w + (b.matmul(a).unwrap() * scale).unwrap()).unwrap();
        tensors.insert(name.to_string(), merged);
    }
    let by_hand = Qwen2::new(&c, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu), None).unwrap();

    let base = logits(&tiny_model(SEED, DType::F32));
    let (got, want) = (logits(&with_adapter), logits(&by_hand));
    assert!(max_abs_diff(&base, &want) > 1e-2, "the adapter must visibly change the logits");
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-4, "adapter logits differ from the hand-merged weights by {d}");
}

#[test]
fn read_adapter_groups_pairs_without_a_model() {
    let model = tiny_lora_model(SEED, DType::F32, &all_modules());
    let tmp = tempfile::tempdir().unwrap();
    save_adapter(&model, tmp.path(), &"x".into()).unwrap();
    let ad = read_adapter(tmp.path()).unwrap();
    assert_eq!(ad.pairs.len(), 7 * tiny_config().num_hidden_layers);
    assert!(ad.pairs.contains_key(&(1, "down_proj".to_string())));
    ad.check_base(&tiny_config()).unwrap();
    let mut fewer = tiny_config();
    fewer.num_hidden_layers = 1;
    let e = ad.check_base(&fewer).unwrap_err().to_string();
    assert!(e.contains("layer 1") && e.contains("1 layers"), "{e}");
}

fn q_pair(r: usize, in_dim: usize) -> [(String, Tensor); 2] {
    let h = tiny_config().hidden_size;
    [
        (key(0, "self_attn", "q_proj", "A"), filled((r, in_dim), 1)),
        (key(0, "self_attn", "q_proj", "B"), filled((h, r), 2)),
    ]
}

fn write_pairs(dir: &Path, config: &serde_json::Value, pairs: &[(String, Tensor)]) {
    let refs: Vec<(&str, Tensor)> = pairs.iter().map(|(k, t)| (k.as_str(), t.clone())).collect();
    write_adapter(dir, config, &refs);
}

#[test]
fn mismatched_adapters_are_rejected_with_a_clear_error() {
    let h = tiny_config().hidden_size;
    let tmp = tempfile::tempdir().unwrap();
    let case = |name: &str| tmp.path().join(name);

    // More layers than the base has.
    let d = case("layers");
    let mut pairs = q_pair(2, h).to_vec();
    pairs.push((key(5, "self_attn", "q_proj", "A"), filled((2, h), 3)));
    pairs.push((key(5, "self_attn", "q_proj", "B"), filled((h, 2), 4)));
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &pairs);
    let e = load_err(&d);
    assert!(e.contains("layer 5") && e.contains("2 layers") && e.contains(WEIGHTS_FILE), "{e}");

    // A shape that fits no projection of the base.
    let d = case("shape");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h / 2));
    let e = load_err(&d);
    assert!(e.contains("q_proj") && e.contains(&format!("expected lora_A [2, {h}]")), "{e}");

    // A module name Qwen2 does not have, in the tensors or in the config.
    let d = case("module");
    let mut pairs = q_pair(2, h).to_vec();
    pairs.push((key(0, "self_attn", "qkv_proj", "A"), filled((2, h), 3)));
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &pairs);
    let e = load_err(&d);
    assert!(e.contains("unexpected tensor") && e.contains("qkv_proj"), "{e}");
    let d = case("module-config");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj", "lm_head"]), &q_pair(2, h));
    let e = load_err(&d);
    assert!(e.contains("unknown target module 'lm_head'") && e.contains(CONFIG_FILE), "{e}");
    let d = case("module-unlisted");
    write_pairs(&d, &peft_config(2, 4.0, &["v_proj"]), &q_pair(2, h));
    let e = load_err(&d);
    assert!(e.contains("targets q_proj") && e.contains("does not list"), "{e}");

    // Tensors of rank 2 under a config that says r = 4.
    let d = case("rank");
    write_pairs(&d, &peft_config(4, 8.0, &["q_proj"]), &q_pair(2, h));
    let e = load_err(&d);
    assert!(e.contains("rank 2") && e.contains("r = 4"), "{e}");

    // Half a pair.
    let d = case("half");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h)[..1]);
    let e = load_err(&d);
    assert!(e.contains("has lora_A but no lora_B"), "{e}");

    // Settings this tool cannot apply.
    let d = case("dora");
    let mut cfg = peft_config(2, 4.0, &["q_proj"]);
    cfg["use_dora"] = json!(true);
    write_pairs(&d, &cfg, &q_pair(2, h));
    assert!(load_err(&d).contains("DoRA"));
    let d = case("pattern");
    let mut cfg = peft_config(2, 4.0, &["q_proj"]);
    cfg["rank_pattern"] = json!({"q_proj": 8});
    write_pairs(&d, &cfg, &q_pair(2, h));
    let e = load_err(&d);
    assert!(e.contains("rank_pattern") && e.contains("q_proj"), "{e}");
}

#[test]
fn missing_or_unreadable_files_are_named() {
    let h = tiny_config().hidden_size;
    let tmp = tempfile::tempdir().unwrap();

    let e = load_err(&tmp.path().join("nowhere"));
    assert!(e.contains("nowhere") && e.contains("adapter directory not found"), "{e}");

    let d = tmp.path().join("no-config");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h));
    std::fs::remove_file(d.join(CONFIG_FILE)).unwrap();
    let e = load_err(&d);
    assert!(e.contains(CONFIG_FILE) && e.contains("missing"), "{e}");

    let d = tmp.path().join("no-weights");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h));
    std::fs::remove_file(d.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(d.join("adapter_model.bin"), b"pickle").unwrap();
    let e = load_err(&d);
    assert!(e.contains(WEIGHTS_FILE) && e.contains("safe_serialization"), "{e}");

    let d = tmp.path().join("bad-json");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h));
    std::fs::write(d.join(CONFIG_FILE), "{\"r\": 2").unwrap();
    let e = load_err(&d);
    assert!(e.contains(CONFIG_FILE) && e.contains("not a PEFT adapter config"), "{e}");

    let d = tmp.path().join("bad-weights");
    write_pairs(&d, &peft_config(2, 4.0, &["q_proj"]), &q_pair(2, h));
    std::fs::write(d.join(WEIGHTS_FILE), b"garbage").unwrap();
    let e = load_err(&d);
    assert!(e.contains(WEIGHTS_FILE) && e.contains("not a readable safetensors file"), "{e}");
}
