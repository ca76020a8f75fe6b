//! `train-qwen-lora`: trains a LoRA adapter for Qwen2.5 on a ChatML JSONL data set.
//!
//! Settings come from the defaults (the reference recipe on every linear layer), then `--config FILE` (see
//! `data/train.toml`), then the flags. Outputs in `--output`: `final_model/` (the best epoch by eval
//! loss, PEFT format), `checkpoint-<step>/`, `train_config.toml`, `metrics.jsonl`, `loss.svg`,
//! `summary.json`. The summary is printed on stdout.
//!
//! ```text
//! train-qwen-lora --gguf models/qwen2.5-coder-0.5b-instruct.gguf \
//!     --train data/train_qwen_v1.jsonl --eval data/eval_qwen_v1.jsonl --output qwen_lora_output
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Parser;
use lora_trainer::{FrozenMatmul, LossMode, Resume, RunStatus, TrainConfig, TrainOptions};
use qwen_lora::cli::ModelArgs;

/// Train a LoRA adapter for Qwen2.5 on ChatML samples (answer-only loss by default).
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    /// TOML file with training settings (see data/train.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Training samples (JSONL, one `{"text": ChatML}` per line).
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    train: PathBuf,

    /// Evaluation samples (JSONL), scored for loss after every epoch.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    eval: PathBuf,

    /// Output directory (adapter, checkpoints, metrics).
    #[arg(long, value_name = "DIR", default_value = "qwen_lora_output")]
    output: PathBuf,

    #[command(flatten)]
    model: ModelArgs,

    /// Passes over the training set.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,

    /// Stop after N optimizer steps (the schedule then spans N steps).
    #[arg(long, value_name = "N")]
    max_steps: Option<usize>,

    /// Continue from the latest checkpoint in --output, or from the checkpoint DIR given.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    resume: Option<Option<PathBuf>>,

    /// Start a new run even though --output holds an earlier one: its adapter, checkpoints and
    /// metrics are deleted first. Without it such an --output is refused (unless --resume).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,

    /// Seed for adapter initialisation, batch order and dropout.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Tokens that carry loss: `answer` (the assistant's answer and its closing <|im_end|>) or
    /// `sequence` (every token, as the Python reference did).
    #[arg(long, value_name = "MODE")]
    loss: Option<LossMode>,

    /// Peak learning rate.
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,

    /// Samples per micro-batch.
    #[arg(long, value_name = "N")]
    micro_batch: Option<usize>,

    /// Micro-batches per optimizer step.
    #[arg(long, value_name = "N")]
    grad_accum: Option<usize>,

    /// Linear warmup length in optimizer steps.
    #[arg(long, value_name = "N")]
    warmup_steps: Option<usize>,

    /// Truncate samples to this many tokens.
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,

    /// LoRA rank.
    #[arg(long, value_name = "R")]
    lora_r: Option<usize>,

    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, value_name = "ALPHA")]
    lora_alpha: Option<f64>,

    /// LoRA dropout probability.
    #[arg(long, value_name = "P")]
    lora_dropout: Option<f64>,

    /// Optimizer steps between metric lines.
    #[arg(long, value_name = "N")]
    logging_steps: Option<usize>,

    /// Precision of the products with the frozen weights: `bf16` (bf16 operands, f32 sums; about
    /// twice as fast, needs a CPU with AVX512-BF16), `f32`, or `auto` (bf16 where the CPU has it).
    #[arg(long, value_name = "MODE")]
    frozen_matmul: Option<FrozenMatmul>,
}

impl Args {
    /// Defaults < --config file < flags.
    fn resolve_config(&self) -> anyhow::Result<TrainConfig> {
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

fn run(args: Args) -> anyhow::Result<RunStatus> {
    let config = args.resolve_config()?;
    // Bad data fails here, naming file and line, before the model is even loaded.
    let read = |path: &PathBuf| -> anyhow::Result<Vec<kb_dataset::Sample>> {
        let samples = kb_dataset::read_jsonl(path)?;
        anyhow::ensure!(!samples.is_empty(), "{}: no samples; the file needs one JSON object per line", path.display());
        Ok(samples)
    };
    let train_samples = read(&args.train)?;
    let eval_samples = read(&args.eval)?;
    lora_trainer::check_output_dir(&args.output, args.resume.is_some(), args.overwrite)?;
    // What the run would replace must not be an input. --config may be the earlier run's
    // train_config.toml: it is read first, and rewritten with the resolved settings on purpose.
    // A --resume checkpoint is read whole before any checkpoint is replaced.
    let replaced = lora_trainer::run_outputs(&args.output)?;
    let outputs: Vec<(&str, &Path)> = replaced.iter().map(|p| ("--output", p.as_path())).collect();
    let mut inputs = vec![("--train", args.train.as_path()), ("--eval", args.eval.as_path())];
    inputs.extend(args.model.input_paths());
    kb_dataset::check_outputs(&outputs, &inputs)?;

    let mut base = args.model.load().context("loading the base model")?;
    // The model takes the weights: with bf16 products it releases their f32 copies.
    let mut model = base.take_model().context("building the model")?;
    model.attach_lora(&config.lora, config.seed).context("attaching the LoRA adapter")?;
    let bf16 = config.frozen_matmul.apply(&mut model)?;
    tracing::info!(
        "products with frozen weights in {} (frozen_matmul = {})",
        if bf16 { "bf16 with f32 sums" } else { "f32" },
        config.frozen_matmul
    );
    let base_id = qwen_lora::BaseModelId::of(&base.source).context("identifying the base model")?;
    let mut opts = TrainOptions::new(&args.output, base_id);
    opts.resume = args.resume.clone().map(|dir| dir.map_or(Resume::Latest, Resume::From));
    opts.overwrite = args.overwrite;
    let stop = opts.stop.clone();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user does not want to wait for the checkpoint.
            kb_dataset::remove_temps_of_this_process();
            std::process::exit(i32::from(cli_support::INTERRUPTED));
        }
        eprintln!("interrupted: writing a checkpoint (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;

    let summary = lora_trainer::train(&model, &base.tokenizer, &train_samples, &eval_samples, &config, &opts)
        .with_context(|| format!("training (train set {}, eval set {})", args.train.display(), args.eval.display()))?;
    print!("{summary}");
    if summary.status == RunStatus::Interrupted {
        eprintln!(
            "stopped early; continue with: train-qwen-lora --output {} --resume (and the same settings)",
            args.output.display()
        );
    }
    Ok(summary.status)
}

fn main() -> ExitCode {
    cli_support::park_idle_candle_workers();
    cli_support::init_logging();
    match cli_support::on_compute_pool(|| run(Args::parse())) {
        Ok(RunStatus::Interrupted) => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }

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
