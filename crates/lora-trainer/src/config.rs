//! The training hyper-parameters: one serde struct with defaults (see [`TrainConfig`]), read from
//! TOML, overridden by command-line flags, and written back next to the adapter it produced.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::DType;
use qwen_lora::lora::LoraConfig;
use qwen_lora::model::Qwen2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the resolved config written into the output directory.
pub const RESOLVED_CONFIG_FILE: &str = "train_config.toml";

/// Which tokens carry loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossMode {
    /// Only the assistant's answer, including its closing `<|im_end|>` (current SFT practice).
    Answer,
    /// Every non-padding token, prompt included (what the Python reference did).
    Sequence,
}

/// Precision of the products with frozen weights (the bulk of the training compute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrozenMatmul {
    /// bf16 when the CPU has AVX512-BF16 and the model is f32 on the CPU, else f32.
    Auto,
    /// f32 throughout.
    F32,
    /// bf16 operands with f32 sums (`qwen_lora::bf16`); an error where the CPU lacks AVX512-BF16.
    Bf16,
}

impl FrozenMatmul {
    /// Applies the setting to a freshly built model; returns whether bf16 is in effect.
    pub fn apply(self, model: &mut Qwen2) -> Result<bool> {
        let eligible = model.dtype() == DType::F32 && model.device().is_cpu();
        let bf16 = match self {
            FrozenMatmul::F32 => false,
            FrozenMatmul::Auto => eligible && qwen_lora::bf16::available(),
            FrozenMatmul::Bf16 => true,
        };
        if bf16 {
            model.use_bf16_matmuls().map_err(|e| Error::invalid("frozen_matmul", e.to_string()))?;
        }
        Ok(bf16)
    }
}

/// Learning-rate schedule after the linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Half a cosine from the peak down to 0 (transformers' `get_cosine_schedule_with_warmup`).
    Cosine,
    /// Straight line from the peak down to 0.
    Linear,
    /// Stays at the peak.
    Constant,
}

/// Every knob of a training run. Defaults are the reference recipe with LoRA on every linear
/// layer (`data/train.toml`); `data/train-reference.toml` is the reference's own, q/k/v/o.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate (reached after warmup).
    pub learning_rate: f64,
    /// Passes over the training set.
    pub epochs: usize,
    /// If set, stop after this many optimizer steps; the schedule then spans exactly these steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Samples per forward/backward pass.
    pub micro_batch: usize,
    /// Micro-batches whose gradients are summed before one optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps of linear warmup from 0 to the peak learning rate.
    pub warmup_steps: usize,
    /// Learning-rate decay after warmup.
    pub scheduler: SchedulerKind,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold; 0 disables clipping.
    pub max_grad_norm: f64,
    /// Samples longer than this many tokens are truncated (with a warning).
    pub max_length: usize,
    /// Seed for batch order and dropout masks.
    pub seed: u64,
    /// Which tokens carry loss: "answer" or "sequence".
    pub loss: LossMode,
    /// Optimizer steps between metric lines.
    pub logging_steps: usize,
    /// Optimizer steps between checkpoints (a checkpoint is also written after every epoch); 0 = epochs only.
    pub save_steps: usize,
    /// AdamW beta1 (first-moment decay).
    pub adam_beta1: f64,
    /// AdamW beta2 (second-moment decay).
    pub adam_beta2: f64,
    /// AdamW epsilon (added to the denominator).
    pub adam_epsilon: f64,
    /// Precision of the products with frozen weights: "auto", "f32" or "bf16".
    pub frozen_matmul: FrozenMatmul,
    /// The adapter.
    pub lora: LoraConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-4,
            epochs: 3,
            max_steps: None,
            micro_batch: 4,
            grad_accum: 2,
            warmup_steps: 10,
            scheduler: SchedulerKind::Cosine,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            max_length: 192,
            seed: 42,
            loss: LossMode::Answer,
            logging_steps: 5,
            save_steps: 20,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            frozen_matmul: FrozenMatmul::Auto,
            lora: LoraConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys are rejected so a typo cannot silently fall back to a default.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text).map_err(|message| Error::ConfigFile { path: path.to_path_buf(), message })
    }

    /// Parses TOML text; the error message carries toml's line/column and the offending key.
    pub fn from_toml_str(text: &str) -> std::result::Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.learning_rate) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return Err(Error::invalid("epochs", "must be at least 1 (or set max_steps)"));
        }
        if self.max_steps == Some(0) {
            return Err(Error::invalid("max_steps", "must be at least 1 when set"));
        }
        for (field, v) in [("micro_batch", self.micro_batch), ("grad_accum", self.grad_accum)] {
            if v == 0 {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        if self.logging_steps == 0 {
            return Err(Error::invalid("logging_steps", "must be at least 1"));
        }
        if self.max_length < 2 {
            return Err(Error::invalid("max_length", "must be at least 2 tokens"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("weight_decay", "must be >= 0"));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::invalid("max_grad_norm", "must be >= 0 (0 disables clipping)"));
        }
        for (field, v) in [("adam_beta1", self.adam_beta1), ("adam_beta2", self.adam_beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::invalid(field, "must be in [0, 1)"));
            }
        }
        if !positive(self.adam_epsilon) {
            return Err(Error::invalid("adam_epsilon", "must be a positive number"));
        }
        if let Some((field, message)) = self.lora.problem() {
            return Err(Error::invalid(format!("lora.{field}"), message));
        }
        Ok(())
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        // Plain numbers, strings and one nested table: serializing cannot fail.
        toml::to_string(self).expect("TrainConfig serializes to TOML")
    }

    /// Writes the resolved config as `train_config.toml` into `dir`, atomically.
    pub fn write_resolved(&self, dir: &Path) -> Result<()> {
        let text = format!(
            "# Resolved training config (defaults < --config file < flags) of the run in this directory.\n{}",
            self.to_toml()
        );
        Ok(kb_dataset::write_atomic(&dir.join(RESOLVED_CONFIG_FILE), text.as_bytes())?)
    }
}

impl FromStr for LossMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "answer" => Ok(LossMode::Answer),
            "sequence" => Ok(LossMode::Sequence),
            _ => Err(format!("unknown loss mode `{s}`; use `answer` or `sequence`")),
        }
    }
}

impl fmt::Display for LossMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossMode::Answer => "answer",
            LossMode::Sequence => "sequence",
        })
    }
}

impl FromStr for FrozenMatmul {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(FrozenMatmul::Auto),
            "f32" => Ok(FrozenMatmul::F32),
            "bf16" => Ok(FrozenMatmul::Bf16),
            _ => Err(format!("unknown frozen_matmul `{s}`; use `auto`, `f32` or `bf16`")),
        }
    }
}

impl fmt::Display for FrozenMatmul {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrozenMatmul::Auto => "auto",
            FrozenMatmul::F32 => "f32",
            FrozenMatmul::Bf16 => "bf16",
        })
    }
}

impl FromStr for SchedulerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cosine" => Ok(SchedulerKind::Cosine),
            "linear" => Ok(SchedulerKind::Linear),
            "constant" => Ok(SchedulerKind::Constant),
            _ => Err(format!("unknown scheduler `{s}`; use `cosine`, `linear` or `constant`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_recipe_on_every_linear_layer() {
        let c = TrainConfig::default();
        assert_eq!((c.lora.r, c.lora.lora_alpha, c.lora.lora_dropout), (16, 32.0, 0.05));
        assert_eq!(c.lora.target_modules, qwen_lora::lora::MODULES);
        assert_eq!((c.learning_rate, c.epochs, c.micro_batch, c.grad_accum), (3e-4, 3, 4, 2));
        assert_eq!((c.warmup_steps, c.weight_decay, c.max_grad_norm, c.max_length), (10, 0.01, 1.0, 192));
        assert_eq!((c.scheduler, c.loss, c.seed), (SchedulerKind::Cosine, LossMode::Answer, 42));
        c.validate().unwrap();
    }

    #[test]
    fn partial_toml_keeps_defaults_and_round_trips() {
        let c = TrainConfig::from_toml_str("epochs = 5\nloss = \"sequence\"\n[lora]\nr = 8\n").unwrap();
        assert_eq!((c.epochs, c.loss, c.lora.r), (5, LossMode::Sequence, 8));
        assert_eq!(c.lora.lora_alpha, 32.0);
        let back = TrainConfig::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let with_max = TrainConfig { max_steps: Some(7), ..c };
        assert_eq!(TrainConfig::from_toml_str(&with_max.to_toml()).unwrap(), with_max);
    }

    #[test]
    fn unknown_keys_are_rejected_with_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "epochs = 2\nlearnig_rate = 1e-3\n").unwrap();
        let e = TrainConfig::from_toml_file(&p).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("learnig_rate"), "{e}");
        std::fs::write(&p, "[lora]\nrank = 4\n").unwrap();
        let e = TrainConfig::from_toml_file(&p).unwrap_err().to_string();
        assert!(e.contains("rank"), "{e}");
        std::fs::write(&p, "loss = \"tokens\"\n").unwrap();
        assert!(TrainConfig::from_toml_file(&p).is_err());
    }

    #[test]
    fn validate_names_the_field() {
        let c = TrainConfig { micro_batch: 0, ..TrainConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("micro_batch"));
        let mut c = TrainConfig::default();
        c.lora.lora_dropout = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("lora.lora_dropout"));
        let c = TrainConfig { learning_rate: f64::NAN, ..TrainConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("learning_rate"));
        let mut c = TrainConfig::default();
        c.lora.target_modules = ["q_proj", "v_proj", "q_proj"].map(String::from).to_vec();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("lora.target_modules") && e.contains("'q_proj' twice"), "{e}");
        c.lora.target_modules = vec!["qproj".into()];
        assert!(c.validate().unwrap_err().to_string().contains("unknown target module 'qproj'"));
    }

    #[test]
    fn resolved_config_is_written_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let c = TrainConfig { seed: 7, ..TrainConfig::default() };
        c.write_resolved(dir.path()).unwrap();
        assert_eq!(TrainConfig::from_toml_file(&dir.path().join(RESOLVED_CONFIG_FILE)).unwrap(), c);
    }

    #[test]
    fn shipped_train_toml_holds_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/train.toml");
        assert_eq!(TrainConfig::from_toml_file(&path).unwrap(), TrainConfig::default());
    }

    #[test]
    fn the_reference_preset_differs_from_the_defaults_only_in_its_target_modules() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/train-reference.toml");
        let mut expected = TrainConfig::default();
        expected.lora.target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec();
        assert_eq!(TrainConfig::from_toml_file(&path).unwrap(), expected);
    }

    #[test]
    fn modes_parse_from_flags() {
        assert_eq!("sequence".parse::<LossMode>().unwrap(), LossMode::Sequence);
        assert!("all".parse::<LossMode>().unwrap_err().contains("answer"));
        assert_eq!("linear".parse::<SchedulerKind>().unwrap(), SchedulerKind::Linear);
        assert_eq!("bf16".parse::<FrozenMatmul>().unwrap(), FrozenMatmul::Bf16);
        assert!("fp16".parse::<FrozenMatmul>().unwrap_err().contains("auto"));
        let c = TrainConfig::from_toml_str("frozen_matmul = \"f32\"\n").unwrap();
        assert_eq!(c.frozen_matmul, FrozenMatmul::F32);
        assert!(TrainConfig::from_toml_str("frozen_matmul = \"half\"\n").unwrap_err().contains("frozen_matmul"));
    }
}
