//! The one error type of the packaging library.

use std::path::PathBuf;

/// Everything that can go wrong building or verifying a package. Messages name the file and
/// say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The OS error is the source, printed after this message in an error chain (`{:#}`).
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },

    /// The archive could not be reserved or renamed into place (the writer's error names it).
    #[error(transparent)]
    Output(#[from] kb_dataset::Error),

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
    move |source| Error::Read { path: path.to_path_buf(), source }
}

pub(crate) fn write_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write { path: path.to_path_buf(), source }
}
