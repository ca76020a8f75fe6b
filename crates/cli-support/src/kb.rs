//! `--kb FILE --questions FILE`, the inputs of the binaries that write data sets.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kb_dataset::{Kb, Templates};

/// The knowledge base and its question templates.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct KbArgs {
    /// Knowledge base: JSON lines with `doc_id`, `text`, `text_hash`.
    #[arg(long, default_value = "data/kb.jsonl")]
    pub kb: PathBuf,

    /// Question templates (TOML; the format is described at the top of the shipped file).
    #[arg(long, default_value = "data/questions.toml")]
    pub questions: PathBuf,
}

impl KbArgs {
    /// Both files with their flags: inputs an output must not overwrite.
    pub fn input_paths(&self) -> Vec<(&'static str, &Path)> {
        vec![("--kb", self.kb.as_path()), ("--questions", self.questions.as_path())]
    }

    /// Loads the KB, then the templates checked against it; errors name the flag.
    pub fn load(&self) -> anyhow::Result<(Kb, Templates)> {
        let kb = Kb::load(&self.kb).context("loading the knowledge base (--kb)")?;
        let templates =
            Templates::load(&self.questions, &kb).context("loading the question templates (--questions)")?;
        Ok((kb, templates))
    }
}
