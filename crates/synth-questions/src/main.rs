//! `synth-questions`: writes a `questions.toml` from `kb.jsonl` alone, with a local
//! Qwen2.5-Instruct as the generator.
//!
//! ```text
//! synth-questions --gguf models/qwen2.5-coder-1.5b-instruct.gguf --kb my/kb.jsonl --out my/questions.toml
//! ```
//!
//! Every answer of the generator is cached beside the output (`OUT.cache.jsonl`): an interrupted
//! run continues where it stopped, and editing a KB entry regenerates only that entry.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use cli_support::ModelArgs;
use kb_synth::{QwenGenerator, RunPaths, SynthConfig};

/// Synthesize question templates (questions.toml) from a knowledge base alone.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    /// The generator model (a larger one than the model being tuned may write better questions).
    #[command(flatten)]
    model: ModelArgs,

    /// Knowledge base: JSON lines with a `text` field (ids are derived from it).
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    kb: PathBuf,

    /// Question templates to write (the format of data/questions.toml).
    #[arg(long, value_name = "FILE", default_value = "questions.toml")]
    out: PathBuf,

    /// Replace an existing --out (which may hold your edits).
    #[arg(long)]
    overwrite: bool,

    /// Generation cache [default: OUT.cache.jsonl]; delete it to generate everything afresh.
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,

    /// Keep no cache.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,

    /// Seed of every sampled request (each request mixes it with its entry and task).
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,

    /// Sampling temperature of the question lists.
    #[arg(long, default_value_t = SynthConfig::default().temperature)]
    temperature: f64,

    /// Requests decoded together.
    #[arg(long, value_name = "N", default_value_t = SynthConfig::default().batch_size)]
    batch_size: usize,

    /// Rounds of list requests at most: lists whose pool is still short after filtering are
    /// asked again with new seeds (1: no top-ups).
    #[arg(long, value_name = "N", default_value_t = SynthConfig::default().rounds)]
    rounds: u32,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        anyhow::bail!("--temperature: must be a finite number > 0 (the lists are sampled)");
    }
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size: must be at least 1");
    }
    let mut paths = RunPaths::beside(args.kb, args.out);
    paths.overwrite = args.overwrite;
    if args.no_cache {
        paths.cache = None;
    } else if let Some(cache) = args.cache {
        paths.cache = Some(cache);
    }
    let cfg = SynthConfig {
        seed: args.seed,
        temperature: args.temperature,
        batch_size: args.batch_size,
        rounds: args.rounds,
        ..SynthConfig::default()
    };
    let kb = paths.check()?;
    let spec = args.model.spec()?;
    let mut generator = QwenGenerator::load(&spec, cfg.batch_size).context("loading the generator model")?;
    let bar = cli_support::progress_bar(0, "synthesizing");
    let summary = kb_synth::run(&paths, &kb, &cfg, &mut generator, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    print!("{}", kb_synth::render_summary(&summary));
    println!("wrote {} (summary {})", paths.out.display(), paths.summary.display());
    Ok(())
}

cli_support::args_test!(Args);
