//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong running an evaluation or reading/writing its report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the eval set is empty; nothing to evaluate (check --eval and --limit)")]
    NoSamples,

    #[error("batch size must be at least 1")]
    BatchSize,

    // Sources are printed after these messages in an error chain (`{:#}`), so the messages do
    // not repeat them.
    #[error("generation failed on questions {start}..{end}")]
    Generation { start: usize, end: usize, source: Box<dyn std::error::Error + Send + Sync> },

    #[error("the generator returned {got} answers for a batch of {expected} questions")]
    AnswerCount { expected: usize, got: usize },

    #[error("cannot write report {path}")]
    WriteReport { path: PathBuf, source: kb_dataset::Error },

    #[error("cannot read report {path}")]
    ReadReport { path: PathBuf, source: std::io::Error },

    #[error("{path}: not a valid report")]
    ParseReport { path: PathBuf, source: serde_json::Error },

    #[error(
        "{path} has no answer to `{question}`: that report answered another eval set (or fewer of its \
         questions, with --limit); run test-qwen-lora on this eval set once without --limit or --answers-from"
    )]
    MissingAnswer { path: PathBuf, question: String },

    #[error(
        "{path} scored `{question}` against another {field} than the eval set's: that report answered another \
         version of the eval set; run test-qwen-lora on this one (--answers-from {path} scores its answers again)"
    )]
    OtherEvalSet { path: PathBuf, question: String, field: &'static str },

    #[error(
        "{path}: {field} is {value}, not a fraction between 0 and 1 (reports store scores and rates as fractions; \
         one written in percents says so with a pass_threshold of 85)"
    )]
    NotAFraction { path: PathBuf, field: String, value: f64 },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
