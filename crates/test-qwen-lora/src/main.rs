//! `test-qwen-lora`: answers every eval question with the model (batched greedy decoding by
//! default), post-processes the answers against the KB (retrieval calibrated on the training set,
//! plus an optional rules file), scores raw and final answers with difflib's ratio, prints the
//! report and writes it as JSON.
//!
//! ```text
//! test-qwen-lora --gguf models/qwen2.5-coder-0.5b-instruct.gguf --adapter qwen_lora_output/final_model
//! test-qwen-lora --gguf models/qwen2.5-coder-0.5b-instruct.gguf --no-adapter --report test_outputs/base.json
//! test-qwen-lora --answers-from test_outputs/base.json --report test_outputs/base-rescored.json
//! ```

mod args;

use std::collections::HashMap;

use anyhow::{Context, bail};
use clap::Parser;
use kb_dataset::{Kb, read_jsonl};
use lora_eval::{PrintOptions, RawAnswers, evaluate_answers, print_report, read_report, write_report};

use crate::args::Args;

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    // Every input is checked before the model loads, so a typo costs nothing.
    let mut inputs = vec![("--eval", args.eval.as_path()), ("--kb", &args.kb), ("--questions", &args.questions)];
    inputs.extend(args.post.input_paths());
    inputs.extend(args.answers_from.as_deref().map(|p| ("--answers-from", p)));
    inputs.extend(args.adapter.input_paths().into_iter().chain(args.model.input_paths()));
    kb_dataset::check_outputs(&[("--report", &args.report)], &inputs)?;
    let mut samples = read_jsonl(&args.eval).context("reading --eval")?;
    if let Some(n) = args.limit {
        samples.truncate(n);
    }
    if samples.is_empty() {
        bail!("{}: no eval samples to run (file empty, or --limit 0)", args.eval.display());
    }
    let kb = Kb::load(&args.kb).context("reading --kb")?;
    kb_dataset::check_doc_ids(&samples, &kb, &args.eval)?;
    let post = if args.no_postprocess { None } else { Some(args.post.post_processor(&kb)?) };
    let doc_labels = args.topic_labels(&kb);
    let answers = match &args.answers_from {
        Some(from) => {
            let earlier = read_report(from).with_context(|| format!("reading --answers-from {}", from.display()))?;
            RawAnswers::from_loaded_report(&earlier, from, &samples).context("--answers-from")?
        }
        None => {
            let answers = cli_support::generate_answers(&args.model, &args.adapter, &args.generation, &samples)?;
            let secs = answers.generation_seconds;
            tracing::info!(
                questions = samples.len(),
                secs = format!("{secs:.1}"),
                per_question_ms = format!("{:.0}", 1000.0 * secs / samples.len() as f64),
                "generated every answer"
            );
            answers
        }
    };
    let report = evaluate_answers(&samples, post.as_ref(), answers)?;
    finish(&args, &report, doc_labels)
}

/// Prints the report and writes its JSON.
fn finish(args: &Args, report: &lora_eval::Report, doc_labels: HashMap<String, String>) -> anyhow::Result<()> {
    let print = PrintOptions { examples: args.examples, worst: args.worst, doc_labels };
    print_report(&mut std::io::stdout().lock(), report, &print)?;
    write_report(&args.report, report).with_context(|| format!("writing --report {}", args.report.display()))?;
    println!("report written to {}", args.report.display());
    if report.summary.model_broken() {
        bail!(
            "the model is broken: {} of {} raw answers are empty or one repeated character (see {}); check the \
             adapter (a diverged training run?) or the base model",
            report.summary.degenerate_raw,
            report.summary.total_tests,
            args.report.display()
        );
    }
    Ok(())
}
