//! Base model load time: reading the checkpoint (dequantizing a GGUF), building the tokenizer and
//! the model, as every binary does at start.

use std::fmt::Write as _;

use qwen_lora::model::Qwen2;
use serde::{Deserialize, Serialize};

use crate::reference::{LIVE, References};
use crate::settings::Settings;
use crate::sys::{median, timed};
use crate::table::{Row, row, secs};

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

impl LoadResult {
    /// The side-by-side row, beside transformers' load when measured live.
    pub fn rows(&self, refs: &References) -> Vec<Row> {
        let live = refs.file.transformers_train.as_ref().and_then(|t| t.load_seconds);
        let other = live.map(|s| (secs(s), LIVE));
        let sp = live.map(|s| s / self.seconds);
        let what = if other.is_some() {
            "base model load (transformers: from_pretrained of the GGUF)"
        } else {
            "base model load"
        };
        vec![row(what, secs(self.seconds), other, sp, None)]
    }

    pub fn details(&self, w: &mut String) {
        let l = self;
        let _ = writeln!(
            w,
            "### load\n\n{}: {} layers, hidden {}; median {} of {} loads (first {}).\n",
            l.source,
            l.layers,
            l.hidden,
            secs(l.seconds),
            l.repeats,
            secs(l.first_seconds)
        );
    }
}
