//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong reading, validating or writing KB and data-set files.
///
/// Every variant names the file and, where there is one, the line (1-based) or the entry, so a
/// user can fix the input without reading Rust.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The OS error is the source, printed after this message in an error chain (`{:#}`); naming
    // it here too would print it twice.
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },

    #[error("cannot write {path}: {message}")]
    Output { path: PathBuf, message: String },

    #[error("{path}:{line}: not valid UTF-8 (byte {byte} of the line); save the file as UTF-8")]
    InvalidUtf8 { path: PathBuf, line: usize, byte: usize },

    #[error("{path}:{line}: malformed JSON: {message}")]
    Json { path: PathBuf, line: usize, message: String },

    #[error("{path}:{line}: missing field `{field}`; every line needs it")]
    MissingField { path: PathBuf, line: usize, field: &'static str },

    #[error("{path}:{line}: field `{field}` is invalid: {message}")]
    InvalidField { path: PathBuf, line: usize, field: &'static str, message: String },

    #[error("{path}: the knowledge base is empty; add one JSON object per line with a `text` field")]
    EmptyKb { path: PathBuf },

    #[error(
        "{path}:{line}: duplicate doc_id {doc_id} (first seen on line {first_line}); each entry needs its own text"
    )]
    DuplicateDocId { path: PathBuf, line: usize, first_line: usize, doc_id: String },

    #[error("{path}: invalid TOML: {message}")]
    Toml { path: PathBuf, message: String },

    #[error("{path}: {location}: {message}")]
    Template { path: PathBuf, location: String, message: String },

    #[error("templates {templates} name {doc_id}, which is not in {kb}; load the templates with this KB")]
    KbMismatch { templates: PathBuf, kb: PathBuf, doc_id: String },

    #[error("invalid sampling request: {0}")]
    Sampling(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
