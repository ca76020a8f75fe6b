//! The command line of `test-qwen-lora`, and the post-processing and topic labels it asks for.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;
use cli_support::{AdapterArgs, GenerationArgs, ModelArgs, PostArgs};
use kb_dataset::{Kb, Templates};

/// Evaluate a model on the eval set: similarity raw and after post-processing, answer sources,
/// refusal accuracy, per-doc accuracy.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub adapter: AdapterArgs,

    /// Eval set: ChatML JSONL lines with the expected answers.
    #[arg(long, value_name = "FILE", default_value = "data/eval_qwen_v1.jsonl")]
    pub eval: PathBuf,

    /// Knowledge base the post-processing corrects answers from.
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    pub kb: PathBuf,

    #[command(flatten)]
    pub post: PostArgs,

    /// Question templates, used only to label docs by topic in the report (skipped when missing).
    #[arg(long, value_name = "FILE", default_value = "data/questions.toml")]
    pub questions: PathBuf,

    /// Evaluate only the first N questions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Score the model's answers as generated, without post-processing.
    #[arg(long)]
    pub no_postprocess: bool,

    /// JSON report to write (its directory is created).
    #[arg(long, value_name = "FILE", default_value = "test_outputs/test_results_qwen_with_source.json")]
    pub report: PathBuf,

    /// Questions shown in full at the top of the report.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub examples: usize,

    /// Lowest-scoring questions shown at the end of the report.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub worst: usize,

    /// Do not run the model: take each question's raw answer from this earlier report and only
    /// post-process and score again (seconds, for editing --rules or --kb-match-threshold). Its
    /// generation time is carried over.
    #[arg(long, value_name = "REPORT", conflicts_with_all = ["adapter", "no_adapter"])]
    pub answers_from: Option<PathBuf>,

    #[command(flatten)]
    pub generation: GenerationArgs,
}

impl Args {
    /// doc_id → topic, for readable per-doc lines; without the templates file, doc_ids are shown.
    pub fn topic_labels(&self, kb: &Kb) -> HashMap<String, String> {
        if !self.questions.is_file() {
            return HashMap::new();
        }
        match Templates::load(&self.questions, kb) {
            Ok(t) => t.docs().iter().map(|d| (d.doc_id.clone(), d.topic.clone())).collect(),
            Err(e) => {
                tracing::warn!("--questions: {:#}; per-doc lines show doc_ids", anyhow::Error::from(e));
                HashMap::new()
            }
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
