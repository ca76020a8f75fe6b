//! `bench`: kb-lora's speed on the real model, side by side with the Python reference and
//! llama.cpp, in one command that prints a Markdown report and can write it to a file.
//!
//! Sections (`--only` picks some): `matmul` (the f32 matmul ceiling), `load`, `decode` (batch 1
//! and batch 16), `train-step` (LoRA forward+backward beside a plain forward, achieved FLOP/s),
//! `train-epoch` (the real recipe for `--steps` optimizer steps, scaled to one and three epochs),
//! `eval-gen` (the whole eval set batched against one prompt at a time). Each section runs in a
//! child process so its peak memory is its own. Reference figures come from
//! `scripts/bench_reference.py`'s JSON (`--reference`) or, labelled so, from PERFORMANCE.md.
//! `scripts/bench.sh` builds, runs both and writes `docs/BENCHMARKS.md`.
//!
//! ```text
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --out docs/BENCHMARKS.md
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --only decode train-step --repeats 1
//! ```

mod reference;
mod report;
mod runner;
mod sections;
mod sys;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use cli_support::ModelArgs;
use qwen_lora::load::ModelSource;

use crate::reference::{ModelSize, ReferenceFile, References};
use crate::runner::Results;
use crate::sections::{Section, Settings};

/// Benchmark kb-lora on the real model (matmul ceiling, load, decode, training, eval generation)
/// and compare with the reference; prints a Markdown report.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    /// Run only these sections, in this order [default: all].
    #[arg(long, value_enum, num_args = 1.., value_name = "SECTION")]
    only: Vec<Section>,

    /// train-epoch: optimizer steps to time (each 2 micro-batches of 4), scaled to an epoch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    steps: usize,

    /// Timed repeats (after one warm-up) of matmul, load, decode and train-step; medians are reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeats: usize,

    /// Training set (ChatML JSONL) for train-step and train-epoch.
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    train: PathBuf,

    /// Evaluation set (ChatML JSONL) whose questions are the prompts of decode and eval-gen.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    eval_set: PathBuf,

    /// decode: new tokens per prompt (end-of-sequence is ignored so every row makes this many).
    #[arg(long, value_name = "N", default_value_t = 64)]
    decode_tokens: usize,

    /// decode: prompts in the batched run (the other run is batch 1).
    #[arg(long, value_name = "N", default_value_t = 16)]
    decode_batch: usize,

    /// matmul: tokens (rows) of the input; the default is about one micro-batch of the recipe on
    /// the shipped training set (4 samples of about 50 tokens), the size training multiplies at.
    #[arg(long, value_name = "N", default_value_t = 200)]
    matmul_tokens: usize,

    /// matmul: hidden size, K/V width and MLP width of the shapes (Qwen2.5-0.5B by default;
    /// 1536,256,8960 for 1.5B).
    #[arg(long, value_name = "H,KV,FFN", value_delimiter = ',', default_values_t = [896, 128, 4864])]
    matmul_dims: Vec<usize>,

    /// train-step: rows of the batch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    step_rows: usize,

    /// train-step: tokens per row (training samples are packed to fill it exactly).
    #[arg(long, value_name = "N", default_value_t = 64)]
    step_len: usize,

    /// eval-gen: use only the first N eval prompts [default: all].
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,

    /// eval-gen: prompts generated one at a time for the per-prompt estimate.
    #[arg(long, value_name = "N", default_value_t = 4)]
    per_prompt: usize,

    /// eval-gen: most new tokens per answer (as the evaluator).
    #[arg(long, value_name = "N", default_value_t = 150)]
    eval_max_new_tokens: usize,

    /// eval-gen: prompts decoded together (as the evaluator).
    #[arg(long, value_name = "N", default_value_t = 16)]
    eval_batch: usize,

    /// train-step, train-epoch: precision of the products with frozen weights (`auto`: bf16 where
    /// the CPU has AVX512-BF16, as train-qwen-lora does; `f32`; `bf16`).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    frozen_matmul: lora_trainer::FrozenMatmul,

    /// Reference figures measured live: the JSON written by scripts/bench_reference.py.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,

    /// Write the report (Markdown) to this file, e.g. docs/BENCHMARKS.md [default: stdout only].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// With --out: add this run below the file's content instead of replacing it.
    #[arg(long, requires = "out")]
    append: bool,

    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Measure nothing: render the report from a JSON file written earlier by --json (e.g. with a
    /// new --reference).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["only", "in_process"])]
    results: Option<PathBuf>,

    /// Run every section in this process (peak memory is then a running peak, not per section).
    #[arg(long)]
    in_process: bool,

    /// Internal: run this one section and write its results to --child-out.
    #[arg(long, hide = true, value_enum, requires = "child_out")]
    child: Option<Section>,

    /// Internal: where a child writes its results.
    #[arg(long, hide = true, value_name = "FILE")]
    child_out: Option<PathBuf>,
}

impl Args {
    fn settings(&self) -> anyhow::Result<Settings> {
        let &[h, kv, ffn] = self.matmul_dims.as_slice() else {
            anyhow::bail!(
                "--matmul-dims takes three numbers H,KV,FFN (e.g. 896,128,4864), got {} value(s)",
                self.matmul_dims.len()
            );
        };
        Ok(Settings {
            model: self.model.clone(),
            repeats: self.repeats.max(1),
            steps: self.steps.max(1),
            train_file: self.train.clone(),
            eval_file: self.eval_set.clone(),
            decode_tokens: self.decode_tokens.max(1),
            decode_batch: self.decode_batch.max(1),
            matmul_tokens: self.matmul_tokens.max(1),
            matmul_dims: [h, kv, ffn],
            step_rows: self.step_rows.max(1),
            step_len: self.step_len.max(2),
            eval_limit: self.eval_limit,
            per_prompt: self.per_prompt.max(1),
            eval_max_new_tokens: self.eval_max_new_tokens.max(1),
            eval_batch: self.eval_batch.max(1),
            frozen_matmul: self.frozen_matmul,
        })
    }
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.settings()?;
    if let (Some(section), Some(out)) = (args.child, &args.child_out) {
        return runner::write_results(out, &runner::run_here(section, &settings));
    }
    let mut inputs = vec![("--train", args.train.as_path()), ("--eval-set", &args.eval_set)];
    inputs.extend(given([("--reference", &args.reference), ("--results", &args.results)]));
    inputs.extend(args.model.input_paths());
    kb_dataset::check_outputs(&given([("--out", &args.out), ("--json", &args.json)]), &inputs)?;
    // Fail on a bad reference file before spending minutes measuring.
    let reference = args.reference.as_deref().map(ReferenceFile::read).transpose()?;
    let sections = if args.only.is_empty() { Section::ALL.to_vec() } else { args.only.clone() };
    let mut results = Results::default();
    if let Some(path) = &args.results {
        results = runner::read_results(path).with_context(|| format!("--results {}", path.display()))?;
    } else {
        for &section in &sections {
            let r = if args.in_process { runner::run_here(section, &settings) } else { runner::run_child(section)? };
            results.merge(r);
        }
    }
    let header = results.run.clone().unwrap_or_else(|| report::Header {
        date: sys::today_utc(),
        machine: sys::Machine::detect(),
        model: format!("{} ({:?})", describe(&args.model.source()), args.model.dtype()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        repeats: settings.repeats,
        isolated: !args.in_process,
    });
    results.run = Some(header.clone());
    let text = report::render(&header, &results, &References::new(reference, model_size(&results, &settings)));
    println!("{text}");
    if let Some(path) = &args.json {
        runner::write_results(path, &results)?;
    }
    if let Some(path) = &args.out {
        let old = if args.append { std::fs::read_to_string(path).unwrap_or_default() } else { String::new() };
        let body = if old.is_empty() {
            format!("# Benchmarks\n\nWritten by `scripts/bench.sh` (the `bench` binary).\n\n{text}")
        } else {
            format!("{}\n\n{text}", old.trim_end())
        };
        kb_dataset::write_atomic(path, body.as_bytes()).with_context(|| format!("writing --out {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !results.failed.is_empty() {
        let names: Vec<&str> = results.failed.keys().map(String::as_str).collect();
        anyhow::bail!("sections failed: {} (see the report and the messages above)", names.join(", "));
    }
    Ok(())
}

/// The optional files among `items` that were given, with their flags.
fn given<'a>(items: [(&'static str, &'a Option<PathBuf>); 2]) -> Vec<(&'static str, &'a Path)> {
    items.into_iter().filter_map(|(flag, path)| Some((flag, path.as_deref()?))).collect()
}

/// The model's size, for picking earlier reference figures: from the training sections' FLOP
/// model when they ran, else from the matmul shapes (hidden 1536 and up is the 1.5B).
fn model_size(results: &Results, settings: &Settings) -> ModelSize {
    let flops = results.train_epoch.as_ref().map(|e| e.flops).or(results.train_step.as_ref().map(|t| t.flops));
    match flops {
        Some(f) => ModelSize::from_layer_params(f.layer_params),
        None if settings.matmul_dims[0] >= 1536 => ModelSize::Large,
        None => ModelSize::Small,
    }
}

fn describe(src: &ModelSource) -> String {
    match src {
        ModelSource::Hub { id, revision } => format!("hub {id}@{}", revision.as_deref().unwrap_or("main")),
        ModelSource::Dir(d) => format!("directory {}", d.display()),
        ModelSource::Gguf(p) => format!("GGUF {}", p.display()),
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
    fn sections_and_dims_parse() {
        let a = Args::try_parse_from(["bench", "--only", "decode", "train-step", "--matmul-dims", "1536,256,8960"])
            .unwrap();
        assert_eq!(a.only, [Section::Decode, Section::TrainStep]);
        assert_eq!(a.settings().unwrap().matmul_dims, [1536, 256, 8960]);
        let a = Args::try_parse_from(["bench", "--matmul-dims", "1536,256"]).unwrap();
        assert!(a.settings().unwrap_err().to_string().contains("--matmul-dims takes three numbers"));
        assert!(Args::try_parse_from(["bench", "--only", "train"]).is_err());
        assert!(Args::try_parse_from(["bench", "--append"]).is_err(), "--append needs --out");
    }
}
