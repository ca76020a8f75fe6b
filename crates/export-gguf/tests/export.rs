//! `export-gguf` on the tiny fixture: merged GGUFs give the logits of base + adapter, untouched
//! tensors are byte-identical, the LoRA GGUF has llama.cpp's names, shapes and metadata, HF → GGUF
//! keeps the tokenizer, and failures leave nothing behind.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};
use common::{export, merged_args};
use export_gguf::{OutType, export_from_hf, export_lora_only, export_merged};
use predicates::prelude::*;
use qwen_lora::adapter::{load_adapter, save_adapter};
use qwen_lora::fixture::{tiny_config, write_tiny_gguf, write_tiny_model};
use qwen_lora::load::{ModelSource, load_base};
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::{Mode, Qwen2};

const SEED: u64 = 21;
const TARGETS: [&str; 5] = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"];

fn model_from(src: &ModelSource) -> Qwen2 {
    let base = load_base(src, &Device::Cpu, DType::F32).unwrap();
    Qwen2::new(&base.config, base.vb.clone(), None).unwrap()
}

fn lora_config(use_rslora: bool) -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: TARGETS.map(String::from).to_vec(),
        use_rslora,
    }
}

/// An adapter on q/k/v/o and down_proj with non-zero B, saved to `dir`.
fn write_adapter(base: &ModelSource, dir: &Path, use_rslora: bool) {
    let mut m = model_from(base);
    m.attach_lora(&lora_config(use_rslora), 5).unwrap();
    for (i, (name, var)) in m.lora_vars().into_iter().enumerate() {
        if name.contains("lora_B") {
            let n = var.elem_count();
            let v: Vec<f32> = (0..n).map(|k| (((k * 29 + i * 13) % 200) as f32 / 1000.0) - 0.1).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    save_adapter(&m, dir, &"tiny".into()).unwrap();
}

fn logits(m: &Qwen2) -> Tensor {
    let v = (tiny_config().vocab_size - 3) as u32;
    let ids: Vec<u32> = (0..12u32).map(|i| (i * 41 + 3) % v).collect();
    let x = Tensor::from_vec(ids, (1, 12), &Device::Cpu).unwrap();
    let h = m.forward_hidden(&x, &x.ones_like().unwrap(), Mode::Eval).unwrap();
    m.logits(&h.squeeze(0).unwrap()).unwrap()
}

fn adapter_logits(base: &ModelSource, adapter: &Path) -> Tensor {
    let mut m = model_from(base);
    load_adapter(&mut m, adapter).unwrap();
    logits(&m)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

fn header(path: &Path) -> gguf_file::Content {
    gguf_file::Content::read(&mut std::fs::File::open(path).unwrap()).unwrap()
}

/// Every tensor's raw bytes as stored in the file.
fn raw_tensors(path: &Path) -> HashMap<String, (GgmlDType, Vec<u8>)> {
    let ct = header(path);
    let bytes = std::fs::read(path).unwrap();
    ct.tensor_infos
        .iter()
        .map(|(n, i)| {
            let len = i.shape.elem_count() / i.ggml_dtype.block_size() * i.ggml_dtype.type_size();
            let start = (ct.tensor_data_offset + i.offset) as usize;
            (n.clone(), (i.ggml_dtype, bytes[start..start + len].to_vec()))
        })
        .collect()
}

fn is_adapted(gguf_name: &str) -> bool {
    ["attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_down.weight"]
        .iter()
        .any(|s| gguf_name.ends_with(s))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: PathBuf,
    adapter: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (base, adapter) = (dir.join("base.gguf"), dir.join("kb-run/final_model"));
    write_tiny_gguf(&base, SEED).unwrap();
    write_adapter(&ModelSource::Gguf(base.clone()), &adapter, false);
    Fixture { _tmp: tmp, dir, base, adapter }
}

#[test]
fn merged_f32_gguf_gives_the_adapter_logits_and_copies_the_rest_byte_for_byte() {
    let f = fixture();
    let out = f.dir.join("tuned.gguf");
    let report = export_merged(&f.base, &f.adapter, &out, OutType::Same).unwrap();
    let layers = tiny_config().num_hidden_layers;
    assert_eq!(report.merged.len(), TARGETS.len() * layers);
    assert_eq!(report.requant_error(), 0.0, "f32 stores W + δ exactly");
    assert!(report.fallbacks.is_empty());

    let src = ModelSource::Gguf(f.base.clone());
    let want = adapter_logits(&src, &f.adapter);
    assert!(max_abs_diff(&want, &logits(&model_from(&src))) > 1e-2, "the adapter must change the logits");
    let d = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(out.clone()))), &want);
    assert!(d < 1e-4, "merged GGUF logits differ from base + adapter by {d}");

    let (before, after) = (raw_tensors(&f.base), raw_tensors(&out));
    assert_eq!(before.len(), after.len());
    let mut changed = 0;
    for (name, (ty, bytes)) in &before {
        let (ty2, bytes2) = &after[name];
        assert_eq!(ty, ty2, "{name}");
        if is_adapted(name) {
            assert_ne!(bytes, bytes2, "{name} should be merged");
            changed += 1;
        } else {
            assert!(bytes == bytes2, "{name} is not byte-identical");
        }
    }
    assert_eq!(changed, TARGETS.len() * layers);

    // Every metadata entry is kept; only the name changes, and it names the adapter.
    let (mb, ma) = (header(&f.base).metadata, header(&out).metadata);
    assert_eq!(mb.len(), ma.len());
    for (k, v) in &mb {
        if k != "general.name" {
            assert_eq!(format!("{v:?}"), format!("{:?}", ma[k]), "{k}");
        }
    }
    let name = ma["general.name"].to_string().unwrap();
    assert!(name.starts_with("tiny-qwen2 + LoRA kb-run/final_model") && name.contains("r 4"), "{name}");
}

#[test]
fn q8_0_merged_gguf_stays_within_the_quantization_error() {
    let f = fixture();
    let out = f.dir.join("tuned-q8.gguf");
    let report = export_merged(&f.base, &f.adapter, &out, OutType::Q8_0).unwrap();
    assert!(report.merged.iter().all(|m| m.from == GgmlDType::F32 && m.to == GgmlDType::Q8_0));
    let after = raw_tensors(&out);
    for (name, (ty, bytes)) in raw_tensors(&f.base) {
        if is_adapted(&name) {
            assert_eq!(after[&name].0, GgmlDType::Q8_0, "{name}");
        } else {
            assert_eq!((ty, &bytes), (after[&name].0, &after[&name].1), "{name} must be untouched");
        }
    }
    // Q8_0 rounds each weight by at most 1/254 of its block's largest magnitude: a small error
    // next to the update, which survives (a coarse type would round most of it away).
    let err = report.requant_error();
    assert!(err > 0.0 && err < 0.2, "requantization error {err} of the adapter's update");

    // The tolerance is what Q8_0 alone does to these weights: the same tensors of the base,
    // quantized without any adapter, move the logits by `noise`. Merging then quantizing must
    // not add more than that (×2 for a different rounding pattern), and stays far below the
    // adapter's own effect.
    let src = ModelSource::Gguf(f.base.clone());
    let base_logits = logits(&model_from(&src));
    let noise = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(quantized_base(&f, is_adapted)))), &base_logits);
    let want = adapter_logits(&src, &f.adapter);
    let effect = max_abs_diff(&want, &base_logits);
    let d = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(out))), &want);
    assert!(
        d <= 2.0 * noise && d < effect / 10.0,
        "q8_0 logits differ by {d} (Q8_0 noise {noise}, adapter effect {effect})"
    );
}

/// The tiny GGUF with the weight matrices `pick` selects stored as Q8_0, like a quantized base.
fn quantized_base(f: &Fixture, pick: fn(&str) -> bool) -> PathBuf {
    let ct = header(&f.base);
    let mut file = std::fs::File::open(&f.base).unwrap();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, info) in &ct.tensor_infos {
        let q = info.read(&mut file, ct.tensor_data_offset, &Device::Cpu).unwrap();
        let q = if pick(name) {
            QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap()
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    let md: Vec<(&str, &gguf_file::Value)> = ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let path =
        f.dir.join(format!("base-q8-{}.gguf", tensors.iter().filter(|(_, q)| q.dtype() == GgmlDType::Q8_0).count()));
    gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &md, &ts).unwrap();
    path
}

#[test]
fn same_type_keeps_a_quantized_base_quantized() {
    let f = fixture();
    let all_blocks = |n: &str| n.starts_with("blk.") && n.ends_with(".weight") && !n.contains("norm");
    let base = quantized_base(&f, all_blocks);
    let out = f.dir.join("tuned.gguf");
    let report = export_merged(&base, &f.adapter, &out, OutType::Same).unwrap();
    assert!(report.merged.iter().all(|m| m.from == GgmlDType::Q8_0 && m.to == GgmlDType::Q8_0));
    let (before, after) = (raw_tensors(&base), raw_tensors(&out));
    for (name, (ty, bytes)) in &before {
        assert_eq!(*ty, after[name].0, "{name}");
        if !is_adapted(name) {
            assert!(*bytes == after[name].1, "{name} is not byte-identical");
        }
    }
    // Requantizing the merged weights rounds them once more, like quantizing them the first time:
    // the logits move by about what Q8_0 did to the base (`noise`); ×2 for another rounding pattern.
    let src = ModelSource::Gguf(base.clone());
    let noise = max_abs_diff(&logits(&model_from(&src)), &logits(&model_from(&ModelSource::Gguf(f.base.clone()))));
    let want = adapter_logits(&src, &f.adapter);
    let d = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(out))), &want);
    assert!(d <= 2.0 * noise, "q8_0 → q8_0 merged logits differ by {d} (Q8_0 noise of the base {noise})");
}

#[test]
fn lora_only_gguf_follows_llama_cpp_conventions() {
    let f = fixture();
    let out = f.dir.join("adapter.gguf");
    let cfg = tiny_config();
    let report = export_lora_only(&f.adapter, &out, GgmlDType::F32, Some(&cfg)).unwrap();
    assert_eq!((report.pairs, report.r, report.alpha), (TARGETS.len() * cfg.num_hidden_layers, 4, 8.0));

    let ct = header(&out);
    let s = |k: &str| ct.metadata[k].to_string().unwrap().clone();
    assert_eq!(s("general.architecture"), "qwen2");
    assert_eq!(s("general.type"), "adapter");
    assert_eq!(s("adapter.type"), "lora");
    assert!(matches!(ct.metadata["adapter.lora.alpha"], gguf_file::Value::F32(a) if a == 8.0));
    assert_eq!(ct.tensor_infos.len(), 2 * report.pairs);

    // Shapes as llama.cpp checks them (candle lists dims slowest-first, ggml's ne is reversed):
    // a = (r, in) → ne [in, r] with ne[0] = W.ne[0]; b = (out, r) → ne [r, out] with ne[1] = W.ne[1].
    let (h, kv) = (cfg.hidden_size, cfg.num_key_value_heads * cfg.head_dim());
    assert_eq!(ct.tensor_infos["blk.0.attn_q.weight.lora_a"].shape.dims(), [4, h]);
    assert_eq!(ct.tensor_infos["blk.1.attn_k.weight.lora_b"].shape.dims(), [kv, 4]);
    assert_eq!(ct.tensor_infos["blk.1.ffn_down.weight.lora_a"].shape.dims(), [4, cfg.intermediate_size]);
    assert!(ct.tensor_infos.values().all(|i| i.ggml_dtype == GgmlDType::F32));

    // Applying it the way llama.cpp does (W + alpha / r · B·A with r = b.ne[0]) gives our merge.
    let merged_path = f.dir.join("tuned.gguf");
    export_merged(&f.base, &f.adapter, &merged_path, OutType::F32).unwrap();
    let mut lora_file = std::fs::File::open(&out).unwrap();
    let (base_ct, merged_ct) = (header(&f.base), header(&merged_path));
    let read = |ct: &gguf_file::Content, path: &Path, name: &str| {
        let mut file = std::fs::File::open(path).unwrap();
        ct.tensor(&mut file, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap()
    };
    for name in ["blk.0.attn_q.weight", "blk.1.attn_v.weight", "blk.1.ffn_down.weight"] {
        let a = ct.tensor(&mut lora_file, &format!("{name}.lora_a"), &Device::Cpu).unwrap();
        let b = ct.tensor(&mut lora_file, &format!("{name}.lora_b"), &Device::Cpu).unwrap();
        let (a, b) = (a.dequantize(&Device::Cpu).unwrap(), b.dequantize(&Device::Cpu).unwrap());
        let rank = b.dim(1).unwrap() as f64;
        let w = read(&base_ct, &f.base, name);
        let applied = (w + (b.matmul(&a).unwrap() * (report.alpha as f64 / rank)).unwrap()).unwrap();
        let d = max_abs_diff(&applied, &read(&merged_ct, &merged_path, name));
        assert!(d < 1e-6, "{name}: llama.cpp-style application differs from the merge by {d}");
    }
}

#[test]
fn rslora_alpha_is_written_so_llama_cpp_scales_the_same() {
    let f = fixture();
    let adapter = f.dir.join("rs");
    write_adapter(&ModelSource::Gguf(f.base.clone()), &adapter, true);
    let r = export_lora_only(&adapter, &f.dir.join("rs.gguf"), GgmlDType::F16, None).unwrap();
    // rsLoRA scale alpha / √r = 8 / 2 = 4; llama.cpp computes alpha' / r, so alpha' = 16.
    assert_eq!(r.alpha, 16.0);
    let ct = header(&f.dir.join("rs.gguf"));
    assert!(ct.tensor_infos.values().all(|i| i.ggml_dtype == GgmlDType::F16));
}

#[test]
fn hf_directory_converts_to_gguf_with_the_same_tokenizer_and_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, adapter) = (tmp.path().join("tiny-hf"), tmp.path().join("adapter"));
    write_tiny_model(&dir, SEED).unwrap();
    let src = ModelSource::Dir(dir.clone());
    write_adapter(&src, &adapter, false);
    let reference = tmp.path().join("reference.gguf");
    write_tiny_gguf(&reference, SEED).unwrap();

    let out = tmp.path().join("tuned-f32.gguf");
    let report = export_from_hf(&src, Some(&adapter), &out, GgmlDType::F32).unwrap();
    assert!(report.name.starts_with("tiny-hf + LoRA adapter"), "{}", report.name);
    let want = adapter_logits(&src, &adapter);
    let d = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(out.clone()))), &want);
    assert!(d < 1e-4, "converted f32 GGUF logits differ from base + adapter by {d}");

    // The tokenizer metadata equals what the fixture's GGUF writer (llama.cpp's layout) holds.
    let (got, expected) = (header(&out).metadata, header(&reference).metadata);
    for k in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "qwen2.block_count",
        "qwen2.attention.head_count_kv",
        "qwen2.rope.freq_base",
        "qwen2.attention.layer_norm_rms_epsilon",
    ] {
        assert_eq!(format!("{:?}", got[k]), format!("{:?}", expected[k]), "{k}");
    }
    let text = "<|im_start|>user\n請問年假有幾天?😀 Hello world<|im_end|>";
    let (a, b) = (
        load_base(&ModelSource::Gguf(out), &Device::Cpu, DType::F32).unwrap(),
        load_base(&src, &Device::Cpu, DType::F32).unwrap(),
    );
    assert_eq!(a.tokenizer.encode(text, false).unwrap().get_ids(), b.tokenizer.encode(text, false).unwrap().get_ids());

    // f16 and q8_0: norms and biases stay f32, matrices take the type. The logits move by what
    // the type does to the base model alone (converted without the adapter), ×2 at most.
    let base_logits = logits(&model_from(&src));
    for ty in [GgmlDType::F16, GgmlDType::Q8_0] {
        let plain = tmp.path().join(format!("base-{ty:?}.gguf"));
        export_from_hf(&src, None, &plain, ty).unwrap();
        let noise = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(plain))), &base_logits);
        let out = tmp.path().join(format!("tuned-{ty:?}.gguf"));
        export_from_hf(&src, Some(&adapter), &out, ty).unwrap();
        let ct = header(&out);
        assert_eq!(ct.tensor_infos["blk.0.attn_norm.weight"].ggml_dtype, GgmlDType::F32);
        assert_eq!(ct.tensor_infos["blk.0.attn_q.bias"].ggml_dtype, GgmlDType::F32);
        assert_eq!(ct.tensor_infos["blk.0.ffn_up.weight"].ggml_dtype, ty);
        let d = max_abs_diff(&logits(&model_from(&ModelSource::Gguf(out))), &want);
        assert!(d <= 2.0 * noise && d < 0.1, "{ty:?}: logits differ by {d} ({ty:?} noise of the base {noise})");
    }
}

fn no_temporaries(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".kb-lora-tmp."))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn mismatches_and_bad_outputs_fail_clearly_without_touching_the_output() {
    let f = fixture();
    let out = f.dir.join("tuned.gguf");
    std::fs::write(&out, b"previous").unwrap();

    // An adapter made for a model with more layers.
    let bad = f.dir.join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::copy(f.adapter.join("adapter_config.json"), bad.join("adapter_config.json")).unwrap();
    let ts = candle_core::safetensors::load(f.adapter.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let moved: HashMap<String, Tensor> =
        ts.into_iter().map(|(k, t)| (k.replace("layers.1.", "layers.7."), t)).collect();
    candle_core::safetensors::save(&moved, bad.join("adapter_model.safetensors")).unwrap();
    let e = export_merged(&f.base, &bad, &out, OutType::Same).unwrap_err().to_string();
    assert!(e.contains("layer 7") && e.contains("2 layers"), "{e}");
    let e = export_lora_only(&bad, &out, GgmlDType::F32, Some(&tiny_config())).unwrap_err().to_string();
    assert!(e.contains("layer 7"), "{e}");

    // An adapter whose matrices fit another hidden size.
    let narrow = f.dir.join("narrow");
    std::fs::create_dir(&narrow).unwrap();
    std::fs::copy(f.adapter.join("adapter_config.json"), narrow.join("adapter_config.json")).unwrap();
    let ts = candle_core::safetensors::load(f.adapter.join("adapter_model.safetensors"), &Device::Cpu).unwrap();
    let cut: HashMap<String, Tensor> = ts
        .into_iter()
        .map(|(k, t)| {
            let t = if k.ends_with("q_proj.lora_A.weight") { t.narrow(1, 0, 32).unwrap() } else { t };
            (k, t)
        })
        .collect();
    candle_core::safetensors::save(&cut, narrow.join("adapter_model.safetensors")).unwrap();
    let e = export_merged(&f.base, &narrow, &out, OutType::Same).unwrap_err().to_string();
    assert!(e.contains("q_proj") && e.contains("do not fit"), "{e}");

    // Unwritable output, and the base itself as output.
    let e = export_merged(&f.base, &f.adapter, &f.dir.join("no/such/dir/t.gguf"), OutType::Same).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = export_merged(&f.base, &f.adapter, &f.base, OutType::Same).unwrap_err().to_string();
    assert!(e.contains("base GGUF itself"), "{e}");

    // Types the adapter file cannot take.
    let e = export_lora_only(&f.adapter, &out, GgmlDType::Q8_0, None).unwrap_err().to_string();
    assert!(e.contains("f32") && e.contains("Q8_0"), "{e}");

    assert_eq!(std::fs::read(&out).unwrap(), b"previous", "a failed export must not touch --out");
    no_temporaries(&f.dir);
}

#[test]
fn the_binary_exports_and_reports() {
    let f = fixture();
    let out = f.dir.join("tuned.gguf");
    export().args(merged_args(&f.base, &f.adapter, &out)).assert().success().stdout(
        predicate::str::contains("10 merged: 10 F32 -> F32").and(predicate::str::contains("copied byte for byte")),
    );
    assert!(out.is_file());

    let lora = f.dir.join("adapter.gguf");
    export()
        .arg("--adapter")
        .arg(&f.adapter)
        .arg("--lora-only")
        .arg("--gguf")
        .arg(&f.base)
        .arg("--out")
        .arg(&lora)
        .assert()
        .success()
        .stdout(predicate::str::contains("llama.cpp LoRA adapter, 10 tensor pairs"));

    export()
        .args(["--adapter", "x", "--out", "y.gguf", "--gguf", "z.gguf", "--type", "q4_k"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("q8_0"));
    export()
        .args(merged_args(&f.base, &f.adapter, &f.dir.join("missing/t.gguf")))
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    export()
        .args(["--model", "some-dir", "--type", "same", "--out", "t.gguf"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--type same needs a GGUF base"));
    no_temporaries(&f.dir);
}
