//! Shared helpers for the integration tests: the tiny fixture model with an adapter, and data.

#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use kb_dataset::Sample;
use lora_trainer::TrainConfig;
use qwen_lora::fixture::{tiny_config, tiny_tensors, tiny_tokenizer};
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::Qwen2;
use tokenizers::Tokenizer;

/// The tiny random Qwen2 (base seed 7) with a fresh adapter initialised from `seed`.
pub fn tiny_model(lora: &LoraConfig, seed: u64) -> Qwen2 {
    tiny_model_with_head_scale(lora, seed, 1.0)
}

/// [`tiny_model`] with the (frozen) output head scaled by `head_scale`. The fixture's head rows
/// have norm ≈ 0.8 against a final-normed hidden state of norm ≈ 8, which caps any logit near 6
/// and so the loss near 1 nat whatever the adapter learns; a real model's head is not so
/// limited, and an overfit test needs the loss to be able to approach 0.
pub fn tiny_model_with_head_scale(lora: &LoraConfig, seed: u64, head_scale: f64) -> Qwen2 {
    let mut tensors: HashMap<String, Tensor> = tiny_tensors(7).unwrap().into_iter().collect();
    let head = (&tensors["lm_head.weight"] * head_scale).unwrap();
    tensors.insert("lm_head.weight".into(), head);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let mut model = Qwen2::new(&tiny_config(), vb, None).unwrap();
    model.attach_lora(lora, seed).unwrap();
    model
}

pub fn tokenizer() -> Tokenizer {
    tiny_tokenizer().unwrap()
}

/// The generation prompt of a question (kb-dataset writes the ChatML).
pub fn prompt(q: &str) -> String {
    kb_dataset::prompt(q)
}

/// A training sample with no KB entry behind it (the trainer reads only question and answer).
pub fn sample(q: &str, a: &str) -> Sample {
    Sample::new(q, a, None, "test")
}

/// `n` distinct question/answer pairs in the style of the KB data.
pub fn qa_pairs(n: usize) -> Vec<(String, String)> {
    let topics = ["年假", "加班", "申請", "主管", "員工", "資料", "小時", "費用", "核准", "年資", "天", "月"];
    (0..n)
        .map(|i| {
            let t = topics[i % topics.len()];
            let q = format!("請問{t}如何{}?", i / topics.len());
            let a = if i % 4 == 3 {
                format!("抱歉,我們沒有{t}的資料。")
            } else {
                format!("依據公司規範:{t}需{}天內由主管核准。", i + 1)
            };
            (q, a)
        })
        .collect()
}

pub fn samples(pairs: &[(String, String)]) -> Vec<Sample> {
    pairs.iter().map(|(q, a)| sample(q, a)).collect()
}

/// A small, quick config: no warmup unless set, dropout kept (resume must replay its masks).
pub fn small_config() -> TrainConfig {
    let mut c = TrainConfig {
        learning_rate: 5e-3,
        epochs: 1,
        micro_batch: 2,
        grad_accum: 2,
        warmup_steps: 1,
        logging_steps: 1,
        save_steps: 0,
        ..TrainConfig::default()
    };
    c.lora.r = 4;
    c.lora.lora_alpha = 8.0;
    c.lora.lora_dropout = 0.1;
    c.lora.target_modules = ["q_proj", "v_proj", "o_proj", "up_proj"].map(String::from).to_vec();
    c
}
