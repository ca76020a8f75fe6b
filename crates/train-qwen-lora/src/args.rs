//! The command line of `train-qwen-lora` and how it merges with the config file: defaults <
//! `--config FILE` < flags.

use std::path::PathBuf;

use clap::Parser;
use cli_support::ModelArgs;
use lora_trainer::{FrozenMatmul, LossMode, TrainConfig};

/// Train a LoRA adapter for Qwen2.5 on ChatML samples (answer-only loss by default).
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
pub struct Args {
    /// TOML file with training settings (see data/train.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Training samples (JSONL, one `{"text": ChatML}` per line).
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    pub train: PathBuf,

    /// Evaluation samples (JSONL), scored for loss after every epoch.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    pub eval: PathBuf,

    /// Output directory (adapter, checkpoints, metrics).
    #[arg(long, value_name = "DIR", default_value = "qwen_lora_output")]
    pub output: PathBuf,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Passes over the training set.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,

    /// Stop after N optimizer steps (the schedule then spans N steps).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,

    /// Continue from the latest checkpoint in --output, or from the checkpoint DIR given.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub resume: Option<Option<PathBuf>>,

    /// Start a new run even though --output holds an earlier one: its adapter, checkpoints and
    /// metrics are deleted first. Without it such an --output is refused (unless --resume).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,

    /// Seed for adapter initialisation, batch order and dropout.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Tokens that carry loss: `answer` (the assistant's answer and its closing <|im_end|>) or
    /// `sequence` (every token, as the Python reference did).
    #[arg(long, value_name = "MODE")]
    pub loss: Option<LossMode>,

    /// Peak learning rate.
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,

    /// Samples per micro-batch.
    #[arg(long, value_name = "N")]
    pub micro_batch: Option<usize>,

    /// Micro-batches per optimizer step.
    #[arg(long, value_name = "N")]
    pub grad_accum: Option<usize>,

    /// Linear warmup length in optimizer steps.
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<usize>,

    /// Truncate samples to this many tokens.
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,

    /// LoRA rank.
    #[arg(long, value_name = "R")]
    pub lora_r: Option<usize>,

    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, value_name = "ALPHA")]
    pub lora_alpha: Option<f64>,

    /// LoRA dropout probability.
    #[arg(long, value_name = "P")]
    pub lora_dropout: Option<f64>,

    /// Optimizer steps between metric lines.
    #[arg(long, value_name = "N")]
    pub logging_steps: Option<usize>,

    /// Precision of the products with the frozen weights: `bf16` (bf16 operands, f32 sums; about
    /// twice as fast, needs a CPU with AVX512-BF16), `f32`, or `auto` (bf16 where the CPU has it).
    #[arg(long, value_name = "MODE")]
    pub frozen_matmul: Option<FrozenMatmul>,
}

impl Args {
    /// Defaults < --config file < flags.
    pub fn resolve_config(&self) -> anyhow::Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {
                $(if let Some(v) = self.$flag.clone() { c.$($field).+ = v; })*
            };
        }
        set!(epochs => epochs, seed => seed, loss => loss, lr => learning_rate, micro_batch => micro_batch,
             grad_accum => grad_accum, warmup_steps => warmup_steps, max_length => max_length,
             lora_r => lora.r, lora_alpha => lora.lora_alpha, lora_dropout => lora.lora_dropout,
             logging_steps => logging_steps, frozen_matmul => frozen_matmul);
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        c.validate()?;
        Ok(c)
    }
}

cli_support::args_test!(Args);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(&file, "epochs = 7\nseed = 1\n[lora]\nr = 4\n").unwrap();
        let a = Args::try_parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--seed",
            "9",
            "--loss",
            "sequence",
            "--lora-alpha",
            "8",
        ])
        .unwrap();
        let c = a.resolve_config().unwrap();
        assert_eq!((c.epochs, c.seed, c.loss, c.lora.r, c.lora.lora_alpha), (7, 9, LossMode::Sequence, 4, 8.0));
        assert_eq!(c.learning_rate, 3e-4);
        let a = Args::try_parse_from(["x", "--resume"]).unwrap();
        assert_eq!(a.resume, Some(None));
        let a = Args::try_parse_from(["x", "--resume", "out/checkpoint-4", "--max-steps", "3"]).unwrap();
        assert_eq!(a.resume, Some(Some(PathBuf::from("out/checkpoint-4"))));
        assert_eq!(a.resolve_config().unwrap().max_steps, Some(3));
        assert!(Args::try_parse_from(["x", "--loss", "tokens"]).is_err());
    }
}
