//! The other systems' figures: measured live by `scripts/bench_reference.py` (its JSON, passed
//! with `--reference`), or else the earlier measurements of `data/reference.toml` ([`Earlier`],
//! which says where each came from), labelled as such.

use std::path::Path;
use std::sync::LazyLock;

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

/// A figure measured earlier, for the 0.5B (`small`) and 1.5B (`large`) models.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BySize {
    /// The notes it was read from.
    pub file: String,
    pub small: Option<f64>,
    pub large: Option<f64>,
    /// What the report shows as its source (filled in from `file`).
    #[serde(skip)]
    pub label: String,
}

impl BySize {
    pub fn get(&'static self, size: ModelSize) -> Option<Figure> {
        let value = match size {
            ModelSize::Small => self.small,
            ModelSize::Large => self.large,
        }?;
        Some(Figure { value, source: &self.label })
    }
}

/// A count measured earlier.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub file: String,
    pub steps: usize,
}

/// A figure measured earlier that the report quotes as text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    pub file: String,
    pub text: String,
    #[serde(skip)]
    pub label: String,
}

/// The earlier figures of `data/reference.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earlier {
    /// transformers + PEFT, seconds of one training micro-step (batch 4 padded to 192).
    pub micro_step_seconds: BySize,
    /// Micro-steps of the reference in one epoch of the shipped training set.
    pub micro_steps_per_epoch: Count,
    /// Peak RSS of the reference's whole training run, bytes.
    pub train_peak_bytes: BySize,
    /// transformers `generate`, one prompt at a time.
    pub transformers_tokens_per_s: BySize,
    /// llama.cpp, one stream.
    pub llama_cpp_tokens_per_s: BySize,
    /// torch's matmul rate, where it was not measured live on the same shapes.
    pub torch_matmul: Quote,
    /// The reference's own eval run.
    pub reference_eval: Quote,
}

/// The source label of a figure measured earlier and read from `file`.
fn earlier_label(file: &str) -> String {
    format!("reference (measured earlier, {file})")
}

impl Earlier {
    fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let mut e: Self = toml::from_str(text)?;
        for f in [
            &mut e.micro_step_seconds,
            &mut e.train_peak_bytes,
            &mut e.transformers_tokens_per_s,
            &mut e.llama_cpp_tokens_per_s,
        ] {
            f.label = earlier_label(&f.file);
        }
        for q in [&mut e.torch_matmul, &mut e.reference_eval] {
            q.label = earlier_label(&q.file);
        }
        Ok(e)
    }
}

/// The earlier figures, read once from the data file compiled into the binary.
pub static EARLIER: LazyLock<Earlier> = LazyLock::new(|| {
    Earlier::parse(include_str!("../data/reference.toml")).expect("crates/bench/data/reference.toml parses")
});

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
        let e = &*EARLIER;
        let t = file.transformers_train.as_ref();
        let earlier_epoch = || {
            let step = e.micro_step_seconds.get(size).expect("an earlier micro-step figure for every model size");
            Figure { value: step.value * e.micro_steps_per_epoch.steps as f64, ..step }
        };
        Self {
            epoch_seconds: t.map_or_else(earlier_epoch, |t| live(t.epoch_seconds)),
            train_peak_bytes: match t.and_then(|t| t.peak_memory_bytes) {
                Some(b) => Some(live(b as f64)),
                None => e.train_peak_bytes.get(size),
            },
            transformers_tok_s: match &file.transformers_generate {
                Some(g) => Some(live(g.tokens_per_s)),
                None => e.transformers_tokens_per_s.get(size),
            },
            llama_cpp_tok_s: file.llama_cpp.as_ref().map_or_else(
                || e.llama_cpp_tokens_per_s.get(size).expect("an earlier llama.cpp figure for every model size"),
                |g| live(g.tokens_per_s),
            ),
            file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EARLIER_LABEL: &str = "reference (measured earlier, PERFORMANCE.md)";

    #[test]
    fn the_data_file_says_where_each_figure_comes_from() {
        let e = &*EARLIER;
        assert_eq!(e.micro_step_seconds.label, EARLIER_LABEL);
        assert_eq!(e.train_peak_bytes.label, "reference (measured earlier, MODELS.md)");
        assert_eq!((e.micro_step_seconds.small, e.micro_steps_per_epoch.steps), (Some(18.0), 75));
        assert_eq!(e.transformers_tokens_per_s.large, None);
        // A figure without its source is refused.
        assert!(Earlier::parse("[micro_step_seconds]\nsmall = 1.0\n").is_err());
    }

    #[test]
    fn earlier_figures_without_a_file_and_live_ones_with_it() {
        let r = References::new(None, ModelSize::Small);
        assert_eq!(r.epoch_seconds, Figure { value: 1350.0, source: EARLIER_LABEL });
        assert_eq!(r.llama_cpp_tok_s.value, 28.0);
        // 1.5B: its own training and llama.cpp figures, none where nothing was measured.
        let r = References::new(None, ModelSize::Large);
        assert_eq!(r.epoch_seconds, Figure { value: 53.5 * 75.0, source: EARLIER_LABEL });
        assert_eq!(r.llama_cpp_tok_s.value, 15.0);
        assert_eq!((r.transformers_tok_s, r.train_peak_bytes), (None, None));
        let file: ReferenceFile = serde_json::from_str(
            r#"{"llama_cpp": {"prompts": 2, "max_new_tokens": 150, "tokens": 100, "seconds": 4.0, "tokens_per_s": 25.0},
                "skipped": ["transformers: not installed"]}"#,
        )
        .unwrap();
        let r = References::new(Some(file), ModelSize::Small);
        assert_eq!(r.llama_cpp_tok_s, Figure { value: 25.0, source: LIVE });
        assert_eq!(r.transformers_tok_s.map(|f| f.source), Some(EARLIER_LABEL));
        assert_eq!(r.file.skipped.len(), 1);
    }
}
