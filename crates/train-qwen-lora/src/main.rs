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

mod args;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lora_trainer::{Resume, RunStatus, TrainOptions};

use crate::args::Args;

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
    let model = lora_trainer::training_model(&mut base, &config)?;
    let base_id = qwen_lora::BaseModelId::of(&base.source).context("identifying the base model")?;
    let mut opts = TrainOptions::new(&args.output, base_id);
    opts.resume = args.resume.clone().map(|dir| dir.map_or(Resume::Latest, Resume::From));
    opts.overwrite = args.overwrite;
    // A second Ctrl-C: the user does not want to wait for the checkpoint.
    cli_support::stop_on_first_ctrl_c(
        opts.stop.clone(),
        "interrupted: writing a checkpoint (press Ctrl-C again to quit at once)",
    );

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
    cli_support::main(|| {
        let status = run(Args::parse())?;
        Ok(if status == RunStatus::Interrupted { ExitCode::from(cli_support::INTERRUPTED) } else { ExitCode::SUCCESS })
    })
}
