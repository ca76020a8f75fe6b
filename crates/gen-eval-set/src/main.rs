//! `gen-eval-set`: writes the ChatML evaluation set (held-out questions grouped by doc, then the
//! unanswerable ones) and prints its overlap with the training set: exact repeats and
//! near-duplicates (difflib ratio >= 0.8), warning above 30%.
//!
//! ```text
//! cargo run -p gen-eval-set -- --train data/train_qwen_v1.jsonl --out data/eval_qwen_v1.jsonl
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli_support::KbArgs;
use kb_dataset::{Kb, OverlapReport, build_eval_set, build_probe_set, read_jsonl, write_jsonl};

/// Write the evaluation set (ChatML JSON lines) and report its overlap with the training set.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    kb: KbArgs,

    /// Training set to check for overlap (JSON lines written by gen-train-set).
    #[arg(long, default_value = "data/train_qwen_v1.jsonl")]
    train: PathBuf,

    /// Output file (JSON lines); written atomically, and not at all on error.
    #[arg(long, default_value = "data/eval_qwen_v1.jsonl")]
    out: PathBuf,

    /// Write the questions of this hand-written probe file (the format of data/probe/probe.toml)
    /// instead of the templates' eval pools; --questions is then not read.
    #[arg(long, value_name = "FILE")]
    probe: Option<PathBuf>,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut inputs = args.kb.input_paths();
    inputs.push(("--train", &args.train));
    if let Some(probe) = &args.probe {
        inputs.push(("--probe", probe));
    }
    kb_dataset::check_outputs(&[("--out", &args.out)], &inputs)?;
    let eval = match &args.probe {
        Some(probe) => {
            let kb = Kb::load(&args.kb.kb).context("loading the knowledge base (--kb)")?;
            build_probe_set(&kb, probe).context("reading the probe file (--probe)")?
        }
        None => {
            let (kb, templates) = args.kb.load()?;
            build_eval_set(&kb, &templates).context("building the eval set")?
        }
    };
    let train = read_jsonl(&args.train).context("reading the training set (--train)")?;
    let report = OverlapReport::analyze(&eval, &train);
    write_jsonl(&args.out, &eval).with_context(|| format!("writing the eval set to {}", args.out.display()))?;
    if !report.exact.is_empty() || report.too_many_near() {
        tracing::warn!(
            exact = report.exact.len(),
            near = report.near.len(),
            "eval set overlaps the training set; see the report on stdout"
        );
    }
    let unanswerable = eval.iter().filter(|s| s.is_unanswerable()).count();
    println!(
        "wrote {} samples to {} ({} answerable, {} unanswerable)\n",
        eval.len(),
        args.out.display(),
        eval.len() - unanswerable,
        unanswerable
    );
    print!("{report}");
    Ok(())
}

fn main() -> ExitCode {
    cli_support::main(|| run(&Args::parse()))
}

cli_support::args_test!(Args);
