//! Training speed on the real model: one LoRA step on a fixed batch (`train-step`) and the real
//! recipe through `lora_trainer::train` for a few optimizer steps, scaled to epochs (`train-epoch`).
//!
//! FLOPs are counted as LoRA training costs them (the adapter itself is negligible):
//! forward 2·N and input gradients 2·N per token, with N = the decoder layers' projection weights
//! for every token plus the vocabulary projection (vocab × hidden) only at loss positions:
//! `FLOPs = 4 · (N_layers · tokens + vocab · hidden · loss_positions)`, forward alone half of it.
//! Attention scores (≈ 1% at these lengths), norms and elementwise work are not counted.

use std::time::Instant;

use candle_core::Device;
use lora_trainer::batch::{Batch, length_grouped_batches};
use lora_trainer::data::{Example, tokenize_samples};
use lora_trainer::loss::batch_loss;
use lora_trainer::{TrainConfig, TrainOptions};
use qwen_lora::Config;
use qwen_lora::load::BaseModel;
use qwen_lora::model::{Mode, Qwen2};
use serde::{Deserialize, Serialize};

use crate::settings::{Settings, eval_samples, train_samples};
use crate::sys::{median, timed};

/// Weights that every token (layers) or every loss position (vocabulary projection) multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlopModel {
    pub layer_params: u64,
    pub lm_head_params: u64,
}

impl FlopModel {
    pub fn from_config(c: &Config) -> Self {
        let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
        let q = (c.num_attention_heads * c.head_dim()) as u64;
        let kv = (c.num_key_value_heads * c.head_dim()) as u64;
        let per_layer = h * q + 2 * h * kv + q * h + 3 * h * i;
        Self {
            layer_params: per_layer * c.num_hidden_layers as u64,
            lm_head_params: (c.vocab_size * c.hidden_size) as u64,
        }
    }

    /// Forward + input-gradient FLOPs of `tokens` tokens with `loss_positions` of them scored.
    pub fn train_flops(&self, tokens: usize, loss_positions: usize) -> f64 {
        2.0 * self.forward_flops(tokens, loss_positions)
    }

    /// Forward FLOPs alone (an eval-loss pass).
    pub fn forward_flops(&self, tokens: usize, loss_positions: usize) -> f64 {
        2.0 * (self.layer_params as f64 * tokens as f64 + self.lm_head_params as f64 * loss_positions as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainStepResult {
    pub rows: usize,
    pub seq_len: usize,
    /// Real tokens in the batch (no padding: samples are packed).
    pub tokens: usize,
    pub loss_positions: usize,
    pub flops: FlopModel,
    /// Median seconds of a forward and loss in eval mode (no dropout, no backward).
    pub forward_s: f64,
    /// Median seconds of a forward and loss in training mode plus `backward()`.
    pub forward_backward_s: f64,
    pub forward_tokens_per_s: f64,
    pub train_tokens_per_s: f64,
    /// forward+backward time / forward time.
    pub backward_overhead: f64,
    /// `train_flops(tokens, loss_positions)` / forward_backward_s.
    pub train_gflops: f64,
    /// Half those FLOPs / forward_s.
    pub forward_gflops: f64,
    /// Products with frozen weights ran in bf16 (false in results saved before it existed).
    #[serde(default)]
    pub bf16: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainEpochResult {
    pub steps: usize,
    pub micro_batch: usize,
    pub grad_accum: usize,
    pub samples: usize,
    pub steps_per_epoch: usize,
    /// Real tokens and loss positions of one epoch (after truncation to max_length).
    pub epoch_tokens: usize,
    pub epoch_loss_positions: usize,
    /// Tokens the model reads in one epoch: each sample up to the position predicting its last
    /// loss token (`Example::input_len`); the FLOPs are counted on these. 0 in results saved
    /// before it existed, when every real token was fed.
    #[serde(default)]
    pub epoch_fed_tokens: usize,
    /// Mean padded rows (tokens) of the epoch's micro-batches: the row count its matmuls run at.
    /// (This and the eval figures default to 0 when reading results saved before they existed.)
    #[serde(default)]
    pub mean_batch_rows: f64,
    /// The same for the eval set, whose loss the trainer computes (forward only) after each epoch:
    /// tokens fed (as `epoch_fed_tokens`) and loss positions.
    #[serde(default)]
    pub eval_tokens: usize,
    #[serde(default)]
    pub eval_loss_positions: usize,
    /// Real tokens of the steps run.
    pub trained_tokens: u64,
    /// Seconds inside optimizer steps (forward, backward, clipping, AdamW), first step included.
    pub train_seconds: f64,
    /// Seconds of the whole `train` call (tokenizing, end-of-run eval and saving too).
    pub wall_seconds: f64,
    pub tokens_per_s: f64,
    /// One epoch: train_seconds × epoch_tokens / trained_tokens.
    pub epoch_seconds: f64,
    /// One epoch by steps instead: train_seconds / steps × steps_per_epoch.
    pub epoch_seconds_by_steps: f64,
    /// Training FLOPs per second at the epoch's mix of tokens and loss positions.
    pub train_gflops: f64,
    pub flops: FlopModel,
    /// Products with frozen weights ran in bf16 (false in results saved before it existed).
    #[serde(default)]
    pub bf16: bool,
}

/// The recipe's LoRA attached to the loaded base model.
fn lora_model(s: &Settings, config: &TrainConfig) -> anyhow::Result<(BaseModel, Qwen2, Device)> {
    let mut base = s.model.load()?;
    // The model takes the weights: with bf16 products it releases their f32 copies.
    let mut model = base.take_model()?;
    model.attach_lora(&config.lora, config.seed)?;
    config.frozen_matmul.apply(&mut model)?;
    let device = s.model.device()?;
    Ok((base, model, device))
}

/// Training samples packed back to back into `rows` rows of exactly `len` tokens (cycling through
/// the set if it is short), keeping each token's loss flag.
fn packed_batch(examples: &[Example], rows: usize, len: usize) -> anyhow::Result<Batch> {
    anyhow::ensure!(!examples.is_empty(), "the training set has no usable sample");
    let stream = examples.iter().cycle().flat_map(|e| e.ids.iter().copied().zip(e.is_target.iter().copied()));
    let (ids, is_target): (Vec<u32>, Vec<bool>) = stream.take(rows * len).unzip();
    // Every token is fed (a fixed shape), unlike `collate`, which stops each sample at its last
    // loss position; a position predicts the next token of its own row.
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for p in (0..rows * len).filter(|p| (p + 1) % len != 0 && is_target[p + 1]) {
        positions.push(p as u32);
        targets.push(ids[p + 1]);
    }
    Ok(Batch {
        batch_size: rows,
        seq_len: len,
        attention_mask: vec![1; ids.len()],
        real_tokens: ids.len(),
        ids,
        positions,
        targets,
    })
}

pub fn run_step(s: &Settings) -> anyhow::Result<TrainStepResult> {
    let config = TrainConfig { frozen_matmul: s.frozen_matmul, ..TrainConfig::default() };
    let (base, model, device) = lora_model(s, &config)?;
    let texts = train_samples(s)?;
    let prepared = tokenize_samples(&base.tokenizer, &texts, config.max_length, config.loss)?;
    let batch = packed_batch(&prepared.examples, s.step_rows, s.step_len)?;
    let tensors = batch.to_tensors(&device)?;

    let forward = || -> anyhow::Result<()> {
        batch_loss(&model, &tensors, Mode::Eval)?.to_scalar::<f32>()?;
        Ok(())
    };
    let train = |seed: u64| -> anyhow::Result<()> {
        let loss = batch_loss(&model, &tensors, Mode::Train { dropout_seed: seed })?;
        loss.backward()?;
        device.synchronize()?;
        Ok(())
    };
    forward()?;
    train(0)?;
    let (mut fwd, mut fb) = (Vec::new(), Vec::new());
    for r in 0..s.repeats.max(1) {
        fwd.push(timed(forward)?.1);
        fb.push(timed(|| train(r as u64 + 1))?.1);
        tracing::info!(
            "train-step {}/{}: forward {:.2} s, forward+backward {:.2} s",
            r + 1,
            s.repeats.max(1),
            fwd[r],
            fb[r]
        );
    }
    let (f, b) = (median(&fwd), median(&fb));
    let flops = FlopModel::from_config(&base.config);
    let (tokens, loss_positions) = (batch.real_tokens, batch.targets.len());
    let step_flops = flops.train_flops(tokens, loss_positions);
    Ok(TrainStepResult {
        rows: batch.batch_size,
        seq_len: batch.seq_len,
        tokens,
        loss_positions,
        flops,
        forward_s: f,
        forward_backward_s: b,
        forward_tokens_per_s: tokens as f64 / f,
        train_tokens_per_s: tokens as f64 / b,
        backward_overhead: b / f,
        train_gflops: step_flops / b / 1e9,
        forward_gflops: step_flops / 2.0 / f / 1e9,
        bf16: model.uses_bf16_matmuls(),
    })
}

pub fn run_epoch(s: &Settings) -> anyhow::Result<TrainEpochResult> {
    let config =
        TrainConfig { max_steps: Some(s.steps.max(1)), frozen_matmul: s.frozen_matmul, ..TrainConfig::default() };
    let (base, model, _) = lora_model(s, &config)?;
    let texts = train_samples(s)?;
    let prepared = tokenize_samples(&base.tokenizer, &texts, config.max_length, config.loss)?;
    let epoch_tokens: usize = prepared.examples.iter().map(|e| e.ids.len()).sum();
    let epoch_fed_tokens: usize = prepared.examples.iter().map(Example::input_len).sum();
    let epoch_loss_positions: usize = prepared.examples.iter().map(Example::n_targets).sum();
    let batches = length_grouped_batches(&prepared.examples, config.micro_batch);
    let padded: usize =
        batches.iter().map(|b| b.len() * b.iter().map(|&i| prepared.examples[i].input_len()).max().unwrap_or(0)).sum();
    let mean_batch_rows = padded as f64 / batches.len().max(1) as f64;
    let eval_texts = eval_samples(s)?;
    let eval = tokenize_samples(&base.tokenizer, &eval_texts, config.max_length, config.loss)?;
    let eval_tokens: usize = eval.examples.iter().map(Example::input_len).sum();
    let eval_loss_positions: usize = eval.examples.iter().map(Example::n_targets).sum();
    let micro_batches = prepared.examples.len().div_ceil(config.micro_batch);
    let steps_per_epoch = micro_batches.div_ceil(config.grad_accum);

    let out = tempfile::tempdir()?;
    let opts = TrainOptions::new(out.path(), "bench");
    let started = Instant::now();
    let summary = lora_trainer::train(&model, &base.tokenizer, &texts, &[], &config, &opts)?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let per_token = summary.train_seconds / summary.train_tokens.max(1) as f64;
    let flops = FlopModel::from_config(&base.config);
    let mut result = TrainEpochResult {
        steps: summary.global_steps,
        micro_batch: config.micro_batch,
        grad_accum: config.grad_accum,
        samples: prepared.examples.len(),
        steps_per_epoch,
        epoch_tokens,
        epoch_loss_positions,
        epoch_fed_tokens,
        mean_batch_rows,
        eval_tokens,
        eval_loss_positions,
        trained_tokens: summary.train_tokens,
        train_seconds: summary.train_seconds,
        wall_seconds,
        tokens_per_s: summary.tokens_per_sec,
        epoch_seconds: per_token * epoch_tokens as f64,
        epoch_seconds_by_steps: summary.train_seconds / summary.global_steps.max(1) as f64 * steps_per_epoch as f64,
        train_gflops: 0.0,
        flops,
        bf16: model.uses_bf16_matmuls(),
    };
    result.train_gflops = result.epoch_flops() / result.epoch_seconds / 1e9;
    Ok(result)
}

impl TrainEpochResult {
    /// Tokens the model reads in one epoch (all real tokens in results saved before that count).
    pub fn fed_tokens(&self) -> usize {
        if self.epoch_fed_tokens > 0 { self.epoch_fed_tokens } else { self.epoch_tokens }
    }

    /// The FLOPs of one epoch's training (forward + input gradients).
    pub fn epoch_flops(&self) -> f64 {
        self.flops.train_flops(self.fed_tokens(), self.epoch_loss_positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_05b_flop_model() {
        let c: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": 151_936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2
        }))
        .unwrap();
        let f = FlopModel::from_config(&c);
        // q, o 896²; k, v 128×896; gate, up, down 4864×896; 24 layers.
        assert_eq!(f.layer_params, 24 * (2 * 896 * 896 + 2 * 128 * 896 + 3 * 4864 * 896));
        assert_eq!(f.lm_head_params, 151_936 * 896);
        assert_eq!(f.train_flops(1, 0), 4.0 * f.layer_params as f64);
        assert_eq!(f.train_flops(2, 1), 4.0 * (2.0 * f.layer_params as f64 + f.lm_head_params as f64));
        assert_eq!(f.forward_flops(2, 1), f.train_flops(2, 1) / 2.0);
    }

    #[test]
    fn epoch_flops_count_the_fed_tokens() {
        let flops = FlopModel { layer_params: 10, lm_head_params: 100 };
        let mut e: TrainEpochResult = serde_json::from_value(serde_json::json!({
            "steps": 1, "micro_batch": 4, "grad_accum": 2, "samples": 2, "steps_per_epoch": 1,
            "epoch_tokens": 50, "epoch_loss_positions": 20, "trained_tokens": 50, "train_seconds": 1.0,
            "wall_seconds": 1.0, "tokens_per_s": 50.0, "epoch_seconds": 1.0, "epoch_seconds_by_steps": 1.0,
            "train_gflops": 1.0, "flops": flops,
        }))
        .unwrap();
        // Saved before `epoch_fed_tokens` existed: every real token was fed.
        assert_eq!(e.epoch_fed_tokens, 0);
        assert_eq!(e.epoch_flops(), flops.train_flops(50, 20));
        e.epoch_fed_tokens = 48;
        assert_eq!(e.epoch_flops(), 4.0 * (10.0 * 48.0 + 100.0 * 20.0));
    }

    #[test]
    fn packing_fills_rows_exactly_and_keeps_flags() {
        let a = Example { ids: vec![1, 2, 3], is_target: vec![false, true, true] };
        let b = Example { ids: vec![4, 5], is_target: vec![false, true] };
        let batch = packed_batch(&[a, b], 2, 4).unwrap();
        assert_eq!((batch.batch_size, batch.seq_len, batch.real_tokens), (2, 4, 8));
        // Stream: 1 2 3 4 | 5 1 2 3 (cycled).
        assert_eq!(batch.ids, [1, 2, 3, 4, 5, 1, 2, 3]);
        // Row 0 targets 2, 3 (positions 0, 1); row 1 targets 2, 3 (flat positions 5, 6).
        assert_eq!(batch.targets, [2, 3, 2, 3]);
        assert_eq!(batch.positions, [0, 1, 5, 6]);
        assert!(packed_batch(&[], 1, 4).is_err());
    }
}
