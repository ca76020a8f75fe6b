//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong diagnosing or building the fix set. Messages name the file,
/// line or sample and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a data file (the KB crate's error already names the file and line).
    #[error(transparent)]
    Dataset(#[from] kb_dataset::Error),

    // The OS error is the source, printed after this message in an error chain (`{:#}`).
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{path}: not an error analysis ({message}); pass the error_analysis.json written by diagnose-errors")]
    AnalysisJson { path: PathBuf, message: String },

    #[error("invalid option: {0}")]
    Options(String),

    #[error(
        "refusing to write: eval question {question:?} would enter the training data ({origin}); \
         eval questions must never be trained on — remove it from the training pools"
    )]
    EvalLeak { question: String, origin: String },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
