//! The post-processing flags (feature `model`): [`PostArgs`], shared by the binaries that
//! post-process answers (`test-qwen-lora`, `serve-qwen-lora`), and the [`PostProcessor`] they set up.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kb_dataset::{Kb, read_jsonl};
use postprocess::{PostProcessor, Retriever, Rules};

/// How answers are checked against the KB (the KB itself is the binary's `--kb`).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct PostArgs {
    /// The training set the adapter learned from: post-processing indexes its questions for
    /// retrieval and calibrates its thresholds on them (never on an eval set).
    #[arg(long, value_name = "FILE", default_value = "data/train_qwen_v1.jsonl")]
    pub train: PathBuf,

    /// Post-process without retrieval: KB matching and --rules only.
    #[arg(long)]
    pub no_retrieval: bool,

    /// Retrieval overrules the model only at margins where it was right this often on training
    /// questions it had not seen (leave-one-out over --train).
    #[arg(long, value_name = "P", default_value_t = postprocess::CONFIDENT_PRECISION)]
    pub retrieval_precision: f64,

    /// Optional rules file of explicit overrides (per-topic question patterns and the KB doc they
    /// point to, e.g. data/rules.toml), applied before retrieval.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// An answer this similar (difflib ratio) to a KB entry counts as KB_MATCH.
    #[arg(long, value_name = "RATIO", default_value_t = postprocess::DEFAULT_KB_MATCH_THRESHOLD)]
    pub kb_match_threshold: f64,
}

impl PostArgs {
    /// The files these flags read, with their flags: inputs an output must not overwrite.
    pub fn input_paths(&self) -> Vec<(&'static str, &Path)> {
        let mut paths = vec![("--train", self.train.as_path())];
        paths.extend(self.rules.as_deref().map(|p| ("--rules", p)));
        paths
    }

    /// KB matching, then retrieval over --train unless --no-retrieval, then --rules if given.
    pub fn post_processor(&self, kb: &Kb) -> anyhow::Result<PostProcessor> {
        let mut post = PostProcessor::new(kb.clone(), self.kb_match_threshold).context("--kb-match-threshold")?;
        if !self.no_retrieval {
            let training = read_jsonl(&self.train).context("reading --train")?;
            post = post.with_retriever(
                Retriever::new(kb, &training, &self.train, self.retrieval_precision)
                    .context("--train, --retrieval-precision")?,
            );
        }
        if let Some(path) = &self.rules {
            post = post.with_rules(Rules::load(path, kb).context("reading --rules")?);
        }
        Ok(post)
    }
}
