//! The one error type of the packaging library.

use std::path::PathBuf;

/// Everything that can go wrong building or verifying a package. Messages name the file and
/// say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written, or the archive reserved or renamed into place:
    /// kb-dataset's file errors, which name the file (the OS error is their source, printed after
    /// the message in an error chain, `{:#}`).
    #[error(transparent)]
    Io(#[from] kb_dataset::Error),

    /// The eval report (lora-eval's error names the file, and the field of a bad figure).
    #[error(transparent)]
    Report(#[from] lora_eval::Error),

    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },

    #[error(
        "package {path} FAILED verification ({} problem(s)):\n  {}",
        problems.len(),
        problems.join("\n  ")
    )]
    Verify { path: PathBuf, problems: Vec<String> },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn read_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| kb_dataset::Error::Read { path: path.to_path_buf(), source }.into()
}

pub(crate) fn write_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| kb_dataset::Error::Write { path: path.to_path_buf(), source }.into()
}
