//! Training with bf16 products (`Qwen2::use_bf16_matmuls`): the same loss and LoRA gradients as
//! f32 within bf16 rounding, through every path (fused LoRA projections, fused SwiGLU + down
//! projection, plain frozen projections, the vocabulary projection and a tied embedding), and a
//! model whose f32 weights are gone refuses what needs them. On a CPU without AVX512-BF16 the
//! switch must fail and leave the model as it was.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::*;
use qwen_lora::bf16;
use qwen_lora::fixture::{tiny_config, tiny_tensors};
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::{Mode, Qwen2};

fn attention_only() -> LoraConfig {
    LoraConfig {
        lora_dropout: 0.1,
        target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
        ..all_modules()
    }
}

/// The fixture with its vocabulary projection tied to the embedding (no `lm_head.weight`).
fn tied_model(seed: u64, cfg: &LoraConfig) -> Qwen2 {
    let ts: HashMap<String, Tensor> =
        tiny_tensors(seed).unwrap().into_iter().filter(|(n, _)| n != "lm_head.weight").collect();
    let config = qwen_lora::Config { tie_word_embeddings: true, ..tiny_config() };
    let mut m = Qwen2::new(&config, VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu), None).unwrap();
    m.attach_lora(cfg, seed + 1).unwrap();
    randomize_b(&m, seed + 2);
    m
}

/// Loss and every LoRA gradient (sorted by name) of the masked next-token loss.
fn loss_and_grads(model: &Qwen2, mode: Mode) -> (f64, Vec<(String, Vec<f64>)>) {
    let loss = masked_loss(model, mode);
    let grads = loss.backward().unwrap();
    let g = model
        .lora_vars()
        .into_iter()
        .map(|(name, v)| {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
            (name, g.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap())
        })
        .collect();
    (loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(), g)
}

fn compare(f32_model: &Qwen2, bf16_model: &Qwen2, what: &str) {
    for mode in [Mode::Train { dropout_seed: 4 }, Mode::Eval] {
        let (l32, g32) = loss_and_grads(f32_model, mode);
        let (l16, g16) = loss_and_grads(bf16_model, mode);
        // Close, but not equal: the bf16 path really ran.
        assert!((l32 - l16).abs() < 1e-2 * l32.abs(), "{what} {mode:?}: loss {l16} (bf16) vs {l32} (f32)");
        assert_ne!(l32, l16, "{what} {mode:?}: bf16 gave the f32 loss exactly");
        for ((name, a), (_, b)) in g32.iter().zip(&g16) {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let (na, nb) = (a.iter().map(|x| x * x).sum::<f64>().sqrt(), b.iter().map(|x| x * x).sum::<f64>().sqrt());
            assert!(na > 0.0, "{what}: {name} has a zero gradient");
            let cos = dot / (na * nb);
            assert!(
                cos > 0.999 && (nb / na - 1.0).abs() < 0.02,
                "{what} {mode:?}: {name}: cosine {cos}, norms {nb} vs {na}"
            );
        }
    }
}

#[test]
fn bf16_training_matches_f32_within_rounding() {
    let cfg = attention_only();
    let f32_model = tiny_lora_model(31, DType::F32, &cfg);
    let mut bf16_model = tiny_lora_model(31, DType::F32, &cfg);
    if !bf16::available() {
        assert!(bf16_model.use_bf16_matmuls().is_err(), "bf16 switched on without AVX512-BF16");
        assert!(!bf16_model.uses_bf16_matmuls());
        // The switch left the model as it was: it still gives the f32 loss.
        let (l32, _) = loss_and_grads(&f32_model, Mode::Eval);
        assert_eq!(loss_and_grads(&bf16_model, Mode::Eval).0, l32);
        eprintln!("skipped: this CPU has no AVX512-BF16; checked only that the switch fails and changes nothing");
        return;
    }
    bf16_model.use_bf16_matmuls().unwrap();
    assert!(bf16_model.uses_bf16_matmuls());
    // Adapters on q/k/v/o: fused LoRA projections, fused SwiGLU + down, frozen gate/up, untied head.
    compare(&f32_model, &bf16_model, "attention adapters");

    // Adapters on every projection (the MLP through fused LoRA projections), tied embedding.
    let mut all = all_modules();
    all.lora_dropout = 0.1;
    let f32_model = tied_model(32, &all);
    let mut bf16_model = tied_model(32, &all);
    bf16_model.use_bf16_matmuls().unwrap();
    compare(&f32_model, &bf16_model, "all adapters, tied embedding");
}

#[test]
fn released_weights_refuse_merge_export_and_decoding() {
    let mut model = tiny_lora_model(33, DType::F32, &attention_only());
    if !bf16::available() {
        assert!(model.use_bf16_matmuls().is_err());
        eprintln!("skipped: this CPU has no AVX512-BF16; checked only that the failed switch released nothing");
        // Nothing was released: the model still merges.
        return model.merge_lora().unwrap();
    }
    model.use_bf16_matmuls().unwrap();
    assert!(model.named_weights().unwrap_err().to_string().contains("released"));
    assert!(model.merge_lora().unwrap_err().to_string().contains("released"));
    let mut plain = tiny_model(33, DType::F32);
    plain.use_bf16_matmuls().unwrap();
    assert!(plain.use_half_weights_for_decoding().unwrap_err().to_string().contains("released"));
}

#[test]
fn bf16_needs_an_f32_model() {
    let mut model = tiny_model(34, DType::F64);
    let err = model.use_bf16_matmuls().unwrap_err().to_string();
    assert!(err.contains(if bf16::available() { "f32" } else { "AVX512-BF16" }), "{err}");
    assert!(!model.uses_bf16_matmuls());
}
