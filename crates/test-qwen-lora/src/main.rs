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

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use kb_dataset::{Kb, Templates, read_jsonl};
use lora_eval::{PrintOptions, RawAnswers, evaluate_answers, print_report, read_report, write_report};
use postprocess::{PostProcessor, Retriever, Rules};
use cli_support::{AdapterArgs, GenerationArgs, ModelArgs};

/// Evaluate a model on the eval set: similarity raw and after post-processing, answer sources,
/// refusal accuracy, per-doc accuracy.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    adapter: AdapterArgs,

    /// Eval set: ChatML JSONL lines with the expected answers.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    eval: PathBuf,

    /// Knowledge base the post-processing corrects answers from.
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    kb: PathBuf,

    /// The training set the adapter learned from: post-processing indexes its questions for
    /// retrieval and calibrates its thresholds on them (never on --eval).
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    train: PathBuf,

    /// Post-process without retrieval: KB matching and --rules only.
    #[arg(long)]
    no_retrieval: bool,

    /// Retrieval overrules the model only at margins where it was right this often on training
    /// questions it had not seen (leave-one-out over --train).
    #[arg(long, value_name = "P", default_value_t = postprocess::CONFIDENT_PRECISION)]
    retrieval_precision: f64,

    /// Optional rules file of explicit overrides (per-topic question patterns and the KB doc they
    /// point to, e.g. data/rules.toml), applied before retrieval.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,

    /// Question templates, used only to label docs by topic in the report (skipped when missing).
    #[arg(long, value_name = "FILE", default_value = "data/questions.toml")]
    questions: PathBuf,

    /// Evaluate only the first N questions.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// Score the model's answers as generated, without post-processing.
    #[arg(long)]
    no_postprocess: bool,

    /// An answer this similar (difflib ratio) to a KB entry counts as KB_MATCH.
    #[arg(long, value_name = "RATIO", default_value_t = 0.80)]
    kb_match_threshold: f64,

    /// JSON report to write (its directory is created).
    #[arg(long, value_name = "FILE", default_value = "test_outputs/test_results_qwen_with_source.json")]
    report: PathBuf,

    /// Questions shown in full at the top of the report.
    #[arg(long, value_name = "N", default_value_t = 5)]
    examples: usize,

    /// Lowest-scoring questions shown at the end of the report.
    #[arg(long, value_name = "N", default_value_t = 5)]
    worst: usize,

    /// Do not run the model: take each question's raw answer from this earlier report and only
    /// post-process and score again (seconds, for editing --rules or --kb-match-threshold). Its
    /// generation time is carried over.
    #[arg(long, value_name = "REPORT", conflicts_with_all = ["adapter", "no_adapter"])]
    answers_from: Option<PathBuf>,

    #[command(flatten)]
    generation: GenerationArgs,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    // Every input is checked before the model loads, so a typo costs nothing.
    let mut inputs = vec![
        ("--eval", args.eval.as_path()),
        ("--kb", &args.kb),
        ("--train", &args.train),
        ("--questions", &args.questions),
    ];
    inputs.extend(args.rules.as_deref().map(|p| ("--rules", p)));
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
    let post = if args.no_postprocess { None } else { Some(post_processor(&args, &kb)?) };
    let doc_labels = topic_labels(&args, &kb);
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

/// KB matching, then retrieval over --train unless --no-retrieval, then --rules if given.
fn post_processor(args: &Args, kb: &Kb) -> anyhow::Result<PostProcessor> {
    let mut post = PostProcessor::new(kb.clone(), args.kb_match_threshold).context("--kb-match-threshold")?;
    if !args.no_retrieval {
        let training = read_jsonl(&args.train).context("reading --train")?;
        post = post.with_retriever(
            Retriever::new(kb, &training, &args.train, args.retrieval_precision)
                .context("--train, --retrieval-precision")?,
        );
    }
    if let Some(path) = &args.rules {
        post = post.with_rules(Rules::load(path, kb).context("reading --rules")?);
    }
    Ok(post)
}

/// doc_id → topic, for readable per-doc lines; without the templates file, doc_ids are shown.
fn topic_labels(args: &Args, kb: &Kb) -> HashMap<String, String> {
    if !args.questions.is_file() {
        return HashMap::new();
    }
    match Templates::load(&args.questions, kb) {
        Ok(t) => t.docs().iter().map(|d| (d.doc_id.clone(), d.topic.clone())).collect(),
        Err(e) => {
            tracing::warn!("--questions: {:#}; per-doc lines show doc_ids", anyhow::Error::from(e));
            HashMap::new()
        }
    }
}

cli_support::args_test!(Args);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_and_no_adapter_conflict() {
        assert!(Args::try_parse_from(["x", "--no-adapter", "--adapter", "a"]).is_err());
        let a = Args::try_parse_from(["x", "--no-adapter"]).unwrap();
        assert!(a.adapter.no_adapter);
    }
}
