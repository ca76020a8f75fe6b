//! The one error type of this crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write {path}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}:{line}: not a cache line: {message}; delete the file to start the cache afresh")]
    Cache { path: PathBuf, line: usize, message: String },

    #[error("generating: {0}")]
    Generate(String),

    #[error(
        "entry {doc_id}: no {what} survived the filters ({counts}); try another --seed or a larger --generator model"
    )]
    Starved { doc_id: String, what: &'static str, counts: String },

    #[error("{path} exists and may hold your edits; pass --overwrite to replace it, or choose another --out")]
    Exists { path: PathBuf },

    #[error(transparent)]
    Dataset(#[from] kb_dataset::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
