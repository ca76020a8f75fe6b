//! Helpers shared by the model tests: the tiny fixture as an in-memory model.

#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use qwen_lora::fixture::{tiny_config, tiny_tensors};
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::{Mode, Qwen2};
use qwen_lora::ops;

pub fn tiny_vb(seed: u64, dtype: DType) -> VarBuilder<'static> {
    let ts: HashMap<String, Tensor> = tiny_tensors(seed).unwrap().into_iter().collect();
    VarBuilder::from_tensors(ts, dtype, &Device::Cpu)
}

pub fn tiny_model(seed: u64, dtype: DType) -> Qwen2 {
    Qwen2::new(&tiny_config(), tiny_vb(seed, dtype), None).unwrap()
}

/// A LoRA on every projection, with B made non-zero so the adapter changes the output.
pub fn tiny_lora_model(seed: u64, dtype: DType, cfg: &LoraConfig) -> Qwen2 {
    let mut m = tiny_model(seed, dtype);
    m.attach_lora(cfg, seed + 1).unwrap();
    randomize_b(&m, seed + 2);
    m
}

pub fn all_modules() -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: qwen_lora::lora::MODULES.map(String::from).to_vec(),
        use_rslora: false,
    }
}

pub fn randomize_b(m: &Qwen2, seed: u64) {
    for (i, (name, var)) in m.lora_vars().into_iter().enumerate() {
        if name.contains("lora_B") {
            // Deterministic values: mix in the seed through a simple hash of the index.
            let n = var.elem_count();
            let v: Vec<f64> =
                (0..n).map(|k| (((k * 7919 + i * 104729) as u64 ^ seed) % 1000) as f64 / 5000.0 - 0.1).collect();
            let t = Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap().to_dtype(var.dtype()).unwrap();
            var.set(&t).unwrap();
        }
    }
}

/// Random token ids below the fixture's vocabulary (avoiding the special tokens).
pub fn ids(seed: u64, n: usize) -> Vec<u32> {
    let v = (tiny_config().vocab_size - 3) as u64;
    (0..n as u64).map(|i| ((i * 2654435761 + seed * 40503 + 17) % v) as u32).collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Masked next-token loss of a right-padded batch, taken only at positions whose next token is
/// an "answer" token — as the trainer does.
pub fn masked_loss(model: &Qwen2, mode: Mode) -> Tensor {
    let (b, t) = (2, 7);
    let lens = [7usize, 5];
    let mut flat = Vec::new();
    let mut mask = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        let mut row = ids(i as u64 + 20, l);
        row.resize(t, 0);
        flat.extend(row);
        mask.extend((0..t).map(|p| (p < l) as u32));
    }
    // Loss on the last 3 real tokens of each row: positions l-4..l-2 predict them.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        for p in l - 4..l - 1 {
            rows.push((i * t + p) as u32);
            targets.push(flat[i * t + p + 1]);
        }
    }
    let ids_t = Tensor::from_vec(flat, (b, t), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask, (b, t), &Device::Cpu).unwrap();
    let h = model.forward_hidden(&ids_t, &mask_t, mode).unwrap();
    let h =
        h.reshape((b * t, ())).unwrap().index_select(&Tensor::new(rows.as_slice(), &Device::Cpu).unwrap(), 0).unwrap();
    let logits = model.logits(&h).unwrap().to_dtype(DType::F64).unwrap();
    ops::cross_entropy(&logits, &Tensor::new(targets.as_slice(), &Device::Cpu).unwrap()).unwrap()
}
