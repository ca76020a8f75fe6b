//! `fix-remaining-issues`: reads `error_analysis.json` (from diagnose-errors) and writes a training
//! set with targeted extra samples: new phrasings from the templates' reserved augment pools for
//! weak topics, contrastive samples for both topics of each confusion, extra refusals when
//! unanswerable questions were answered. Eval questions are never written.
//!
//! ```text
//! fix-remaining-issues --analysis error_analysis.json --train data/train_qwen_v1.jsonl \
//!     --out data/train_qwen_final.jsonl
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use diagnose::{FixOptions, build_fix, load_analysis, print_fix};
use kb_dataset::{Kb, Templates, read_jsonl, write_jsonl};

/// Add targeted training samples for the weak and confused topics of an error analysis.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    /// Error analysis written by diagnose-errors.
    #[arg(long, value_name = "FILE", default_value = "error_analysis.json")]
    analysis: PathBuf,
    /// Knowledge base (answers of the new samples).
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    kb: PathBuf,
    /// Question templates holding the reserved augment pools.
    #[arg(long, value_name = "FILE", default_value = "data/questions.toml")]
    questions: PathBuf,
    /// Current training set; kept as is, new samples are appended.
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    train: PathBuf,
    /// Eval set; none of its questions may enter the output (checked, the run fails otherwise).
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    eval: PathBuf,
    /// Merged training set to write.
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_final.jsonl")]
    out: PathBuf,
    /// At most this many new samples per topic (and for refusals).
    #[arg(long, value_name = "N", default_value_t = FixOptions::default().per_topic)]
    per_topic: usize,
    /// Seed for picking from the pools.
    #[arg(long, default_value_t = FixOptions::default().seed)]
    seed: u64,
}

fn main() -> ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let inputs = [
        ("--analysis", args.analysis.as_path()),
        ("--kb", &args.kb),
        ("--questions", &args.questions),
        ("--train", &args.train),
        ("--eval", &args.eval),
    ];
    kb_dataset::check_outputs(&[("--out", &args.out)], &inputs)?;
    let analysis = load_analysis(&args.analysis).context("--analysis")?;
    let kb = Kb::load(&args.kb).context("--kb")?;
    let templates = Templates::load(&args.questions, &kb).context("--questions")?;
    let train = read_jsonl(&args.train).context("--train")?;
    let eval = read_jsonl(&args.eval).context("--eval")?;
    let opts = FixOptions { per_topic: args.per_topic, seed: args.seed };
    let outcome = build_fix(&analysis, &kb, &templates, &train, &eval, &opts)?;
    write_jsonl(&args.out, &outcome.samples).with_context(|| format!("--out {}", args.out.display()))?;
    print_fix(&outcome, &mut std::io::stdout().lock())?;
    println!("wrote {}", args.out.display());
    Ok(())
}

cli_support::args_test!(Args);
