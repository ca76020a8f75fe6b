//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong running an evaluation or reading/writing its report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the eval set is empty; nothing to evaluate (check --eval and --limit)")]
    NoSamples,

    #[error(
        "eval sample {index} (doc_id {doc_id}) is not a ChatML question/answer pair; regenerate \
         the eval set with gen-eval-set"
    )]
    NotChatMl { index: usize, doc_id: String },

    #[error("batch size must be at least 1")]
    BatchSize,

    #[error("generation failed on questions {start}..{end}: {source}")]
    Generation { start: usize, end: usize, source: Box<dyn std::error::Error + Send + Sync> },

    #[error("the generator returned {got} answers for a batch of {expected} questions")]
    AnswerCount { expected: usize, got: usize },

    #[error("cannot write report {path}: {source}")]
    WriteReport { path: PathBuf, source: kb_dataset::Error },

    #[error("cannot read report {path}: {source}")]
    ReadReport { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a valid report: {source}")]
    ParseReport { path: PathBuf, source: serde_json::Error },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
