//! `gen-train-set`: writes the ChatML training set from the knowledge base and the question
//! templates, and prints its distribution (target vs actual, per doc, per style).
//!
//! ```text
//! cargo run -p gen-train-set -- --total 300 --unanswerable-ratio 0.25 --seed 42
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cli_support::KbArgs;
use kb_dataset::{TrainRequest, build_train_set, write_jsonl};

/// Write the LoRA training set (ChatML JSON lines) from the KB and question templates.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    kb: KbArgs,

    /// Output file (JSON lines); written atomically, and not at all on error.
    #[arg(long, default_value = "data/train_qwen_v1.jsonl")]
    out: PathBuf,

    /// Number of samples to write.
    #[arg(long, default_value_t = 300)]
    total: usize,

    /// Samples per KB entry instead of `--total` (total = N × entries): sizes the set to a KB
    /// of any size, e.g. 20, the shipped recipe's 300 for 15 entries. When the templates are too
    /// few for that, the largest total they allow is written, with a warning.
    #[arg(long, conflicts_with = "total")]
    per_entry: Option<usize>,

    /// Share of unanswerable samples, between 0 and 1 (count = round(total * ratio)).
    #[arg(long, default_value_t = 0.25)]
    unanswerable_ratio: f64,

    /// Seed for picking and shuffling; the same inputs and seed give identical bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn run(args: &Args) -> anyhow::Result<()> {
    kb_dataset::check_outputs(&[("--out", &args.out)], &args.kb.input_paths())?;
    let (kb, templates) = args.kb.load()?;
    let total = match args.per_entry {
        None => args.total,
        Some(n) => {
            let wanted = n * kb.entries().len();
            let total = kb_dataset::largest_total(&templates, args.unanswerable_ratio, wanted).max(1);
            if total < wanted {
                tracing::warn!(
                    "--per-entry {n}: {} allows {total} samples without repeating a question, not {wanted}; \
                     writing {total} (synthesize more questions, or add them, for a larger set)",
                    args.kb.questions.display()
                );
            }
            total
        }
    };
    let request = TrainRequest { total, unanswerable_ratio: args.unanswerable_ratio, seed: args.seed };
    let set = build_train_set(&kb, &templates, &request).context("sampling the training set")?;
    write_jsonl(&args.out, &set.samples)
        .with_context(|| format!("writing the training set to {}", args.out.display()))?;
    tracing::info!(samples = set.samples.len(), out = %args.out.display(), "training set written");
    println!("wrote {} samples to {}\n", set.samples.len(), args.out.display());
    print!("{}", set.distribution);
    Ok(())
}

fn main() -> ExitCode {
    cli_support::main(|| run(&Args::parse()))
}

cli_support::args_test!(Args);
