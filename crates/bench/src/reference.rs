//! The other systems' figures: measured live by `scripts/bench_reference.py` (its JSON, passed
//! with `--reference`), or else the earlier measurements on this kind of machine written in
//! `shared/PERFORMANCE.md` and `shared/MODELS.md`, labelled as such.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `scripts/bench_reference.py` writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReferenceFile {
    /// transformers + PEFT training micro-steps.
    #[serde(default)]
    pub transformers_train: Option<RefTrain>,
    /// transformers `generate`, one prompt at a time, PEFT adapter unmerged.
    #[serde(default)]
    pub transformers_generate: Option<RefGenerate>,
    /// llama-cpp-python, one stream.
    #[serde(default)]
    pub llama_cpp: Option<RefGenerate>,
    /// torch's f32 matmul on the same shapes as the `matmul` section.
    #[serde(default)]
    pub torch_matmul: Option<RefMatmul>,
    /// Versions of the Python packages used.
    #[serde(default)]
    pub versions: std::collections::BTreeMap<String, String>,
    /// Parts that were not run, and why.
    #[serde(default)]
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefTrain {
    pub micro_steps: usize,
    pub batch: usize,
    pub pad_to: usize,
    /// Median seconds of one micro-step (forward, backward; an optimizer step every 2nd).
    pub micro_step_seconds: f64,
    pub micro_steps_per_epoch: usize,
    pub epoch_seconds: f64,
    pub real_tokens_per_s: f64,
    pub padded_tokens_per_s: f64,
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// The forward ran under torch's CPU bf16 autocast (`--autocast-bf16`), not the recipe's f32.
    #[serde(default)]
    pub autocast_bf16: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefGenerate {
    pub prompts: usize,
    pub max_new_tokens: usize,
    /// Generated tokens over all prompts.
    pub tokens: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub load_seconds: Option<f64>,
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
}

/// torch's matmul throughput, the layer mix computed as the `matmul` section does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefMatmul {
    pub tokens: usize,
    /// hidden, K/V and MLP widths.
    pub dims: [usize; 3],
    pub fwd_gflops: f64,
    pub ceiling_gflops: f64,
    #[serde(default)]
    pub threads: Option<usize>,
}

impl ReferenceFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading --reference {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!("--reference {}: not the JSON that scripts/bench_reference.py writes", path.display())
        })
    }
}

/// A figure with where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub source: &'static str,
}

pub const LIVE: &str = "measured live";
pub const EARLIER: &str = "reference (measured earlier, PERFORMANCE.md)";
pub const EARLIER_MODELS: &str = "reference (measured earlier, MODELS.md)";

/// transformers + PEFT micro-step, batch 4 padded to 192 (PERFORMANCE.md): 0.5B, and the middle
/// of the 50–57 s it gives for 1.5B.
const EARLIER_MICRO_STEP_S: f64 = 18.0;
const EARLIER_MICRO_STEP_S_1_5B: f64 = 53.5;
/// 300 samples / batch 4.
const EARLIER_MICRO_STEPS_PER_EPOCH: f64 = 75.0;
/// transformers `generate` on 0.5B; PERFORMANCE.md has no 1.5B figure.
const EARLIER_TRANSFORMERS_TOK_S: f64 = 5.4;
/// llama.cpp one stream: 0.5B, 1.5B.
const EARLIER_LLAMA_CPP_TOK_S: f64 = 28.0;
const EARLIER_LLAMA_CPP_TOK_S_1_5B: f64 = 15.0;
/// Peak RSS of the reference's full 0.5B training run (MODELS.md); none is written for 1.5B.
const EARLIER_TRAIN_PEAK_BYTES: f64 = 7.6e9;

/// Which model the earlier figures must describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSize {
    /// Qwen2.5-0.5B.
    Small,
    /// Qwen2.5-1.5B.
    Large,
}

impl ModelSize {
    /// From the decoder layers' projection weights (0.36 G for 0.5B, 1.3 G for 1.5B).
    pub fn from_layer_params(layer_params: u64) -> Self {
        if layer_params < 1_000_000_000 { Self::Small } else { Self::Large }
    }
}

/// The reference figures the report compares with: live when measured, else the earlier ones
/// for the model's size, or none when nothing was measured for that size.
#[derive(Debug, Clone, PartialEq)]
pub struct References {
    pub epoch_seconds: Figure,
    pub train_peak_bytes: Option<Figure>,
    pub transformers_tok_s: Option<Figure>,
    pub llama_cpp_tok_s: Figure,
    pub file: ReferenceFile,
}

impl References {
    pub fn new(file: Option<ReferenceFile>, size: ModelSize) -> Self {
        let file = file.unwrap_or_default();
        let live = |v: f64| Figure { value: v, source: LIVE };
        let earlier = |v: f64| Figure { value: v, source: EARLIER };
        let small = size == ModelSize::Small;
        let t = file.transformers_train.as_ref();
        let micro_step = if small { EARLIER_MICRO_STEP_S } else { EARLIER_MICRO_STEP_S_1_5B };
        Self {
            epoch_seconds: t.map_or(earlier(micro_step * EARLIER_MICRO_STEPS_PER_EPOCH), |t| live(t.epoch_seconds)),
            train_peak_bytes: match t.and_then(|t| t.peak_memory_bytes) {
                Some(b) => Some(live(b as f64)),
                None => small.then_some(Figure { value: EARLIER_TRAIN_PEAK_BYTES, source: EARLIER_MODELS }),
            },
            transformers_tok_s: match &file.transformers_generate {
                Some(g) => Some(live(g.tokens_per_s)),
                None => small.then_some(earlier(EARLIER_TRANSFORMERS_TOK_S)),
            },
            llama_cpp_tok_s: file
                .llama_cpp
                .as_ref()
                .map_or(earlier(if small { EARLIER_LLAMA_CPP_TOK_S } else { EARLIER_LLAMA_CPP_TOK_S_1_5B }), |g| {
                    live(g.tokens_per_s)
                }),
            file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_figures_without_a_file_and_live_ones_with_it() {
        let r = References::new(None, ModelSize::Small);
        assert_eq!(r.epoch_seconds, Figure { value: 1350.0, source: EARLIER });
        assert_eq!(r.llama_cpp_tok_s.value, 28.0);
        // 1.5B: its own training and llama.cpp figures, none where nothing was measured.
        let r = References::new(None, ModelSize::Large);
        assert_eq!(r.epoch_seconds, Figure { value: 53.5 * 75.0, source: EARLIER });
        assert_eq!(r.llama_cpp_tok_s.value, 15.0);
        assert_eq!((r.transformers_tok_s, r.train_peak_bytes), (None, None));
        let file: ReferenceFile = serde_json::from_str(
            r#"{"llama_cpp": {"prompts": 2, "max_new_tokens": 150, "tokens": 100, "seconds": 4.0, "tokens_per_s": 25.0},
                "skipped": ["transformers: not installed"]}"#,
        )
        .unwrap();
        let r = References::new(Some(file), ModelSize::Small);
        assert_eq!(r.llama_cpp_tok_s, Figure { value: 25.0, source: LIVE });
        assert_eq!(r.transformers_tok_s.map(|f| f.source), Some(EARLIER));
        assert_eq!(r.file.skipped.len(), 1);
    }
}
