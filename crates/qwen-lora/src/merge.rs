//! Folding a saved adapter into a loaded model: the one merge that inference, `merge-lora` and
//! every other caller holding a [`Qwen2`] run. Per weight it is [`crate::lora::merge_weight`],
//! which `export-gguf` also calls on GGUF tensors, so merged weights are the same bits
//! everywhere.

use std::path::Path;

use crate::Result;
use crate::adapter::{AdapterConfig, load_adapter};
use crate::model::Qwen2;

/// Loads the adapter in `adapter_dir` onto `model` (checking it fits) and folds it into the
/// weights, `W + scale·B·A`, so the model then runs at the base model's cost. Returns the
/// adapter's configuration as its `adapter_config.json` gives it.
pub fn merge_adapter(model: &mut Qwen2, adapter_dir: &Path) -> Result<AdapterConfig> {
    let cfg = load_adapter(model, adapter_dir)?;
    model.merge_lora()?;
    Ok(cfg)
}
