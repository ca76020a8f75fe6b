//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or running a training job. Messages name the file,
/// field or sample involved and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: invalid training config: {message}")]
    ConfigFile { path: PathBuf, message: String },

    #[error("invalid training config: `{field}` {message}")]
    InvalidConfig { field: String, message: String },

    // The OS error is the source, printed after the path in an error chain (`{:#}`).
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("sample #{number}: {message}")]
    Sample {
        /// 1-based position in the sample list.
        number: usize,
        message: String,
    },

    #[error("{0}")]
    NoData(String),

    #[error(
        "{what} became {value} at optimizer step {step} (epoch {epoch}); training stopped. {}",
        match checkpoint {
            Some(p) => format!("The last good checkpoint is {}; lower the learning rate and resume from it with --resume.", p.display()),
            None => "No checkpoint was written yet; lower the learning rate and start again.".to_string(),
        }
    )]
    NonFinite {
        /// "loss" or "gradient norm".
        what: &'static str,
        value: f64,
        step: usize,
        epoch: usize,
        checkpoint: Option<PathBuf>,
    },

    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("cannot resume from {path}: {message}")]
    Resume { path: PathBuf, message: String },

    #[error(
        "{path} already holds a training run ({found}); pass --resume to continue it, --overwrite to start \
         over (deleting that run's adapter, checkpoints and metrics), or choose another --output"
    )]
    RunExists { path: PathBuf, found: String },

    #[error(transparent)]
    Model(#[from] qwen_lora::Error),

    /// A step of building the model to train ([`crate::model::training_model`]) failed.
    #[error("{what}")]
    Build {
        what: &'static str,
        #[source]
        source: qwen_lora::Error,
    },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Writing an output (the shared atomic writer's error names the file).
    #[error(transparent)]
    Output(#[from] kb_dataset::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig { field: field.into(), message: message.into() }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.into(), message: message.into() }
    }
}
