//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong loading a rules file or configuring the post-processor.
///
/// Rule errors name the file, the line and the rule (its 1-based position and topic), so the
/// rules file can be fixed without reading Rust.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The OS error is the source, printed after this message in an error chain (`{:#}`).
    #[error("cannot read rules file {path}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("{path}: invalid rules file: {message}")]
    Toml { path: PathBuf, message: String },

    #[error(
        "{path}:{line}: rule {rule} (topic `{topic}`): doc_id `{doc_id}` is not in the KB {kb}; \
         use a doc_id from that file (the KB may have changed since the rules were written)"
    )]
    UnknownDocId { path: PathBuf, line: usize, rule: usize, topic: String, doc_id: String, kb: PathBuf },

    #[error(
        "{path}:{line}: rule {rule} (topic `{topic}`): pattern `{pattern}` is not a valid regex: \
         {message}"
    )]
    BadRegex { path: PathBuf, line: usize, rule: usize, topic: String, pattern: String, message: String },

    #[error(
        "{path}:{line}: rule {rule} (topic `{topic}`): `patterns` is empty; give at least one \
         keyword regex the question must match"
    )]
    EmptyPatterns { path: PathBuf, line: usize, rule: usize, topic: String },

    #[error(
        "{path}:{line}: rule {rule} (topic `{topic}`): an empty pattern matches every question; \
         remove it or write a keyword"
    )]
    EmptyPattern { path: PathBuf, line: usize, rule: usize, topic: String },

    #[error("{path}:{line}: `uncovered_refusal` must be a refusal: start it with `{prefix}`")]
    NotARefusal { path: PathBuf, line: usize, prefix: &'static str },

    #[error("{path}:{line}: rule {rule}: `topic` is empty; name the topic (e.g. `vpn`)")]
    EmptyTopic { path: PathBuf, line: usize, rule: usize },

    #[error(
        "{path}:{line}: rule {rule}: topic `{topic}` is already used by rule {first_rule}; \
         merge the two rules or rename one"
    )]
    DuplicateTopic { path: PathBuf, line: usize, rule: usize, first_rule: usize, topic: String },

    #[error("{path}:{line}: doc_id `{doc_id}` is not in the KB; regenerate the training set from this KB")]
    TrainingSample { path: PathBuf, line: usize, doc_id: String },

    #[error("retrieval precision {0} is out of range; use a number above 0 and at most 1 (e.g. 0.9)")]
    Precision(f64),

    #[error(
        "{path}: the rules file has no [[rule]]; without rules nothing is corrected: add rules (see the \
         header of data/rules.toml) or name another file"
    )]
    NoRules { path: PathBuf },

    #[error("KB match threshold {0} is out of range; use a number between 0 and 1 (e.g. 0.80)")]
    Threshold(f64),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
