//! What the sections need to know, and the data sets they read.

use std::path::PathBuf;

use anyhow::Context;
use cli_support::ModelArgs;

/// What the sections need to know: the `bench` flags that say how to measure (the model, the data
/// sets, sizes and repeats). [`Settings::checked`] makes every count at least 1.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub model: ModelArgs,

    /// train-epoch: optimizer steps to time (each 2 micro-batches of 4), scaled to an epoch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub steps: usize,

    /// Timed repeats (after one warm-up) of matmul, load, decode and train-step; medians are reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: usize,

    /// Training set (ChatML JSONL) for train-step and train-epoch.
    #[arg(long = "train", value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    pub train_file: PathBuf,

    /// Evaluation set (ChatML JSONL) whose questions are the prompts of decode and eval-gen.
    #[arg(long = "eval-set", value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    pub eval_file: PathBuf,

    /// decode: new tokens per prompt (end-of-sequence is ignored so every row makes this many).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub decode_tokens: usize,

    /// decode: prompts in the batched run (the other run is batch 1).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub decode_batch: usize,

    /// matmul: tokens (rows) of the input; the default is about one micro-batch of the recipe on
    /// the shipped training set (4 samples of about 50 tokens), the size training multiplies at.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub matmul_tokens: usize,

    /// matmul: hidden size, K/V width and MLP width of the shapes (Qwen2.5-0.5B by default;
    /// 1536,256,8960 for 1.5B).
    #[arg(long, value_name = "H,KV,FFN", value_delimiter = ',', default_values_t = [896, 128, 4864])]
    pub matmul_dims: Vec<usize>,

    /// train-step: rows of the batch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub step_rows: usize,

    /// train-step: tokens per row (training samples are packed to fill it exactly).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub step_len: usize,

    /// eval-gen: use only the first N eval prompts [default: all].
    #[arg(long, value_name = "N")]
    pub eval_limit: Option<usize>,

    /// eval-gen: prompts generated one at a time for the per-prompt estimate.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub per_prompt: usize,

    /// eval-gen: most new tokens per answer (as the evaluator).
    #[arg(long, value_name = "N", default_value_t = 150)]
    pub eval_max_new_tokens: usize,

    /// eval-gen: prompts decoded together (as the evaluator).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub eval_batch: usize,

    /// train-step, train-epoch: precision of the products with frozen weights (`auto`: bf16 where
    /// the CPU has AVX512-BF16, as train-qwen-lora does; `f32`; `bf16`).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub frozen_matmul: lora_trainer::FrozenMatmul,
}

impl Settings {
    /// The settings with every count at least 1 (a row needs 2 tokens), or an error naming the
    /// flag that is wrong.
    pub fn checked(self) -> anyhow::Result<Self> {
        anyhow::ensure!(
            self.matmul_dims.len() == 3,
            "--matmul-dims takes three numbers H,KV,FFN (e.g. 896,128,4864), got {} value(s)",
            self.matmul_dims.len()
        );
        Ok(Self {
            repeats: self.repeats.max(1),
            steps: self.steps.max(1),
            decode_tokens: self.decode_tokens.max(1),
            decode_batch: self.decode_batch.max(1),
            matmul_tokens: self.matmul_tokens.max(1),
            step_rows: self.step_rows.max(1),
            step_len: self.step_len.max(2),
            per_prompt: self.per_prompt.max(1),
            eval_max_new_tokens: self.eval_max_new_tokens.max(1),
            eval_batch: self.eval_batch.max(1),
            ..self
        })
    }

    /// `matmul`'s shapes: hidden size, K/V width, MLP width (of [`Settings::checked`] settings).
    pub fn matmul_shape(&self) -> [usize; 3] {
        [self.matmul_dims[0], self.matmul_dims[1], self.matmul_dims[2]]
    }
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
