//! The benchmark's sections. Each measures one thing, returns plain figures (medians over
//! `repeats` after one warm-up unless it says otherwise) and never compares: ratios are the
//! report's job.

pub mod decode;
pub mod eval_gen;
pub mod load;
pub mod matmul;
pub mod train;

use std::path::PathBuf;

use anyhow::Context;
use qwen_lora::cli::ModelArgs;
use serde::{Deserialize, Serialize};

/// One part of the benchmark, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// Matmul GFLOP/s on the model's projection shapes (f32, and bf16 where the CPU has it): the practical ceiling.
    Matmul,
    /// Base model load time.
    Load,
    /// Greedy decode tokens/s, batch 1 and batched.
    Decode,
    /// One LoRA forward+backward on a fixed batch, beside a plain forward.
    TrainStep,
    /// `--steps` optimizer steps of the real recipe, scaled to one and three epochs.
    TrainEpoch,
    /// The whole eval set's generation, batched, against per-prompt generation.
    EvalGen,
}

impl Section {
    pub const ALL: [Section; 6] =
        [Section::Matmul, Section::Load, Section::Decode, Section::TrainStep, Section::TrainEpoch, Section::EvalGen];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Section::Matmul => "matmul",
            Section::Load => "load",
            Section::Decode => "decode",
            Section::TrainStep => "train-step",
            Section::TrainEpoch => "train-epoch",
            Section::EvalGen => "eval-gen",
        }
    }
}

/// What the sections need to know; filled from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: ModelArgs,
    /// Timed repeats (after one warm-up) for the short sections.
    pub repeats: usize,
    /// Optimizer steps timed by `train-epoch`.
    pub steps: usize,
    pub train_file: PathBuf,
    pub eval_file: PathBuf,
    /// Tokens generated per prompt by `decode` (end-of-sequence ignored).
    pub decode_tokens: usize,
    /// Prompts decoded together in `decode`'s batched run.
    pub decode_batch: usize,
    /// Tokens per row of the `matmul` input.
    pub matmul_tokens: usize,
    /// `matmul` shapes: hidden size, K/V width, MLP width.
    pub matmul_dims: [usize; 3],
    /// `train-step`'s batch: rows × tokens.
    pub step_rows: usize,
    pub step_len: usize,
    /// `eval-gen`: at most this many eval prompts (all by default).
    pub eval_limit: Option<usize>,
    /// `eval-gen`: prompts generated one at a time, the estimate's sample.
    pub per_prompt: usize,
    /// `eval-gen`: max new tokens and batch size, as the evaluator uses them.
    pub eval_max_new_tokens: usize,
    pub eval_batch: usize,
    /// Precision of the training sections' products with frozen weights.
    pub frozen_matmul: lora_trainer::FrozenMatmul,
}

/// The eval set's user questions, wrapped as ChatML prompts.
pub fn eval_prompts(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let path = &settings.eval_file;
    let samples = kb_dataset::read_jsonl(path).with_context(|| format!("reading the eval set {}", path.display()))?;
    let prompts: Vec<String> = samples.iter().map(kb_dataset::Sample::prompt).collect();
    anyhow::ensure!(!prompts.is_empty(), "{}: no samples; pass an eval set with --eval-set", path.display());
    Ok(prompts)
}

/// The training set's samples.
pub fn train_samples(settings: &Settings) -> anyhow::Result<Vec<kb_dataset::Sample>> {
    let path = &settings.train_file;
    let samples =
        kb_dataset::read_jsonl(path).with_context(|| format!("reading the training set {}", path.display()))?;
    anyhow::ensure!(!samples.is_empty(), "{}: no samples; pass a training set with --train", path.display());
    Ok(samples)
}

/// The eval set's samples (question and answer), as the trainer scores them.
pub fn eval_samples(settings: &Settings) -> anyhow::Result<Vec<kb_dataset::Sample>> {
    let path = &settings.eval_file;
    kb_dataset::read_jsonl(path).with_context(|| format!("reading the eval set {}", path.display()))
}
