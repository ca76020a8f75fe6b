//! LoRA hyper-parameters: the one settings type, used by the model, the trainer's `[lora]`
//! section and (through [`crate::adapter::AdapterConfig`], PEFT's file format) saved adapters.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// LoRA hyper-parameters, named as in PEFT's `adapter_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scaling numerator: the update is multiplied by `alpha / r` (or `alpha / √r` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout probability on the adapter's input while training.
    pub lora_dropout: f64,
    /// Projections that get an adapter: any of q/k/v/o_proj, gate/up/down_proj.
    pub target_modules: Vec<String>,
    /// Rank-stabilized scaling `alpha / √r`.
    pub use_rslora: bool,
}

/// Module names an adapter can target, in the order the model builds them.
pub const MODULES: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.05,
            // Every linear layer (PEFT's "all-linear"); the reference adapted q/k/v/o only.
            target_modules: MODULES.map(String::from).to_vec(),
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor applied to `B·A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora { self.lora_alpha / (self.r as f64).sqrt() } else { self.lora_alpha / self.r as f64 }
    }

    /// The first setting a user got wrong, as `(field, what is wrong)`; the field is named as
    /// in PEFT's `adapter_config.json` and the trainer's `[lora]` section.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.r == 0 {
            return Some(("r", "must be at least 1 (the rank of the update)".into()));
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return Some((
                "lora_alpha",
                format!("must be a positive number (the update is scaled by lora_alpha / r), got {}", self.lora_alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Some(("lora_dropout", format!("must be in [0, 1), got {}", self.lora_dropout)));
        }
        if self.target_modules.is_empty() {
            return Some(("target_modules", format!("is empty: name at least one of {}", MODULES.join(", "))));
        }
        for (i, m) in self.target_modules.iter().enumerate() {
            if !MODULES.contains(&m.as_str()) {
                return Some((
                    "target_modules",
                    format!("names an unknown target module '{m}': use any of {}", MODULES.join(", ")),
                ));
            }
            if self.target_modules[..i].contains(m) {
                return Some(("target_modules", format!("lists '{m}' twice; name each projection once")));
            }
        }
        None
    }

    /// Checks the values a user can get wrong ([`LoraConfig::problem`]).
    pub fn validate(&self) -> Result<()> {
        match self.problem() {
            Some((field, message)) => Err(Error::msg(format!("{field} {message}"))),
            None => Ok(()),
        }
    }
}
