//! `diagnose-errors`: answers the whole eval set (or reuses the scored answers of a
//! `test-qwen-lora` report), counts every raw answer below the threshold as an error, groups the
//! errors by topic, tells which topic each was confused with, prints suggestions and writes
//! `error_analysis.json` plus a confusion heat map (`error_analysis.svg`).
//!
//! ```text
//! diagnose-errors --gguf models/qwen2.5-coder-0.5b-instruct.gguf --adapter qwen_lora_output/final_model
//! diagnose-errors --from-report test_outputs/test_results_qwen_with_source.json
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use cli_support::{AdapterArgs, GenerationArgs, ModelArgs};
use diagnose::{DiagnoseOptions, analyze, print_report, write_analysis};
use kb_dataset::{Kb, Templates, read_jsonl};

/// Find which topics the model gets wrong, and what it confuses them with.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    adapter: AdapterArgs,

    /// Take the raw answers and their scores from this test-qwen-lora JSON report instead of
    /// generating them (it must have answered every eval question, matched by question, against
    /// the same expected answers).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["no_adapter"])]
    from_report: Option<PathBuf>,

    /// Eval set: ChatML JSONL lines with the expected answers and doc_ids.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    eval: PathBuf,

    /// Knowledge base: what a wrong answer is compared with to find the confused topic.
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    kb: PathBuf,

    /// Question templates: the topic of every KB doc.
    #[arg(long, value_name = "FILE", default_value = "data/questions.toml")]
    questions: PathBuf,

    /// A raw answer less similar than this (difflib ratio) to the expected one is an error.
    #[arg(long, value_name = "RATIO", default_value_t = DiagnoseOptions::default().threshold)]
    threshold: f64,

    /// A wrong answer less similar than this to every KB entry is classified as `none`.
    #[arg(long, value_name = "RATIO", default_value_t = DiagnoseOptions::default().floor)]
    floor: f64,

    /// Analysis to write (JSON); the heat map goes beside it with the extension .svg.
    #[arg(long, value_name = "FILE", default_value = "error_analysis.json")]
    out: PathBuf,

    #[command(flatten)]
    generation: GenerationArgs,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let eval = read_jsonl(&args.eval).context("reading --eval")?;
    if eval.is_empty() {
        bail!("{}: no eval samples to run", args.eval.display());
    }
    let kb = Kb::load(&args.kb).context("reading --kb")?;
    kb_dataset::check_doc_ids(&eval, &kb, &args.eval)?;
    let templates = Templates::load(&args.questions, &kb).context("reading --questions")?;
    let opts = DiagnoseOptions { threshold: args.threshold, floor: args.floor };
    // Checked before a long generation run, not after it.
    for (flag, v) in [("--threshold", opts.threshold), ("--floor", opts.floor)] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{flag} {v}: a difflib ratio between 0 and 1 (e.g. 0.90)");
        }
    }
    if args.out.extension().is_some_and(|e| e == "svg") {
        bail!(
            "--out {}: the JSON analysis goes there and the heat map beside it as .svg; give a .json path",
            args.out.display()
        );
    }
    let svg = args.out.with_extension("svg");
    let mut inputs = vec![("--eval", args.eval.as_path()), ("--kb", &args.kb), ("--questions", &args.questions)];
    inputs.extend(args.from_report.as_deref().map(|p| ("--from-report", p)));
    inputs.extend(args.adapter.input_paths().into_iter().chain(args.model.input_paths()));
    kb_dataset::check_outputs(&[("--out", &args.out), ("--out (its .svg heat map)", &svg)], &inputs)?;

    // The evaluated questions: a report's own (matched by question), or answers generated now
    // and scored as test-qwen-lora scores them.
    let details = match &args.from_report {
        Some(path) => lora_eval::read_report(path).context("reading --from-report")?.details_for(&eval, path)?,
        None => {
            let answers = cli_support::generate_answers(&args.model, &args.adapter, &args.generation, &eval)?;
            lora_eval::evaluate_answers(&eval, None, answers)?.details
        }
    };
    let analysis = analyze(&details, &kb, &templates, &opts)?;
    print_report(&analysis, &mut std::io::stdout().lock())?;
    let svg = write_analysis(&analysis, &args.out).with_context(|| format!("writing --out {}", args.out.display()))?;
    println!("analysis written to {} (heat map: {})", args.out.display(), svg.display());
    Ok(())
}

cli_support::args_test!(Args);
