//! The end-of-run summary of a `train-qwen-lora` run, [`TrainSummary`], written as
//! [`SUMMARY_FILE`] in the output directory and printed on stdout ([`fmt::Display`]). It lives
//! apart from `lora-trainer` so that what only reads it (`results-table`) builds no candle; the
//! trainer re-exports it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The summary's file name in a run's output directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// `bytes` as MiB for log lines, `?` when unknown.
pub fn format_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_string(), |b| format!("{}MiB", b / (1024 * 1024)))
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    /// Stopped by Ctrl-C (or the stop flag); a checkpoint was written.
    Interrupted,
    /// Stopped at `TrainOptions::halt_after_step`; a checkpoint was written.
    Halted,
}

/// The end-of-run report, also written as `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub status: RunStatus,
    pub global_steps: usize,
    pub total_steps: usize,
    /// Wall-clock seconds of this invocation (training, evaluation and saving).
    pub wall_seconds: f64,
    /// Seconds spent in training steps, over all invocations of the run.
    pub train_seconds: f64,
    /// Real (non-padding) tokens trained on, over all invocations.
    pub train_tokens: u64,
    pub tokens_per_sec: f64,
    /// 1-based epoch with the lowest eval loss.
    pub best_epoch: Option<usize>,
    pub best_eval_loss: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// The best adapter (PEFT format), once an epoch has finished.
    pub final_model: Option<PathBuf>,
    /// The latest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// The products with frozen weights ran in bf16 (`frozen_matmul`; false in summaries written
    /// before it existed).
    #[serde(default)]
    pub bf16_products: bool,
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        writeln!(f, "status: {:?}", self.status)?;
        writeln!(f, "steps: {}/{}", self.global_steps, self.total_steps)?;
        writeln!(f, "wall time: {:.1} s (training {:.1} s)", self.wall_seconds, self.train_seconds)?;
        writeln!(f, "throughput: {:.1} tokens/s ({} tokens)", self.tokens_per_sec, self.train_tokens)?;
        writeln!(f, "best epoch: {}", self.best_epoch.map_or("-".to_string(), |e| e.to_string()))?;
        writeln!(f, "best eval loss: {}", opt(self.best_eval_loss))?;
        writeln!(f, "peak memory: {}", format_mib(self.peak_memory_bytes))?;
        writeln!(f, "frozen-weight products: {}", if self.bf16_products { "bf16, f32 sums" } else { "f32" })?;
        if let Some(p) = &self.final_model {
            writeln!(f, "final model: {}", p.display())?;
        }
        if let Some(p) = &self.checkpoint {
            writeln!(f, "checkpoint: {}", p.display())?;
        }
        Ok(())
    }
}

impl TrainSummary {
    /// Reads a `summary.json`; the error says whether the file is unreadable, no JSON, or JSON of
    /// another shape.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let text = std::fs::read_to_string(path).map_err(ReadError::Io)?;
        serde_json::from_str(&text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ReadError::NotASummary(e),
            _ => ReadError::NotJson(e),
        })
    }
}

/// Why [`TrainSummary::read`] failed.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    NotJson(serde_json::Error),
    /// JSON, but not a summary (a field missing or of the wrong type).
    NotASummary(serde_json::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::NotJson(e) => write!(f, "not JSON: {e}"),
            Self::NotASummary(e) => write!(f, "not a train-qwen-lora summary.json: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> TrainSummary {
        TrainSummary {
            status: RunStatus::Completed,
            global_steps: 12,
            total_steps: 12,
            wall_seconds: 70.0,
            train_seconds: 60.0,
            train_tokens: 6000,
            tokens_per_sec: 100.0,
            best_epoch: Some(2),
            best_eval_loss: Some(0.5),
            peak_memory_bytes: Some(3 << 30),
            final_model: Some("out/final_model".into()),
            checkpoint: None,
            bf16_products: false,
        }
    }

    #[test]
    fn reads_what_is_written_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SUMMARY_FILE);
        std::fs::write(&path, serde_json::to_string(&summary()).unwrap()).unwrap();
        assert_eq!(TrainSummary::read(&path).unwrap(), summary());
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(TrainSummary::read(&path), Err(ReadError::NotJson(_))));
        std::fs::write(&path, r#"{"global_steps": 3}"#).unwrap();
        assert!(matches!(TrainSummary::read(&path), Err(ReadError::NotASummary(_))));
        assert!(matches!(TrainSummary::read(&dir.path().join("nope")), Err(ReadError::Io(_))));
    }
}
