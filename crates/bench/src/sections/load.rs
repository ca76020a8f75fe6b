//! Base model load time: reading the checkpoint (dequantizing a GGUF), building the tokenizer and
//! the model, as every binary does at start.

use qwen_lora::model::Qwen2;
use serde::{Deserialize, Serialize};

use super::Settings;
use crate::sys::{median, timed};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// What was loaded (hub id, directory or GGUF file).
    pub source: String,
    pub layers: usize,
    pub hidden: usize,
    /// Median seconds of `repeats` loads (no warm-up: the first load is what a user waits for,
    /// and the page cache holds the file after it).
    pub seconds: f64,
    /// Seconds of the first load alone.
    pub first_seconds: f64,
    pub repeats: usize,
}

pub fn run(s: &Settings) -> anyhow::Result<LoadResult> {
    let mut samples = Vec::new();
    let mut info = None;
    for r in 0..s.repeats.max(1) {
        let (desc, secs) = timed(|| {
            let base = s.model.load()?;
            let model = Qwen2::new(&base.config, base.vb.clone(), None)?;
            Ok((base.source.describe(), model.num_layers(), base.config.hidden_size))
        })?;
        tracing::info!("load {}/{}: {secs:.2} s", r + 1, s.repeats.max(1));
        samples.push(secs);
        info = Some(desc);
    }
    let (source, layers, hidden) = info.unwrap_or_default();
    Ok(LoadResult {
        source,
        layers,
        hidden,
        seconds: median(&samples),
        first_seconds: samples[0],
        repeats: samples.len(),
    })
}
