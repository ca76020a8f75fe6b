//! The model a run trains: the base model's weights, a fresh LoRA adapter and the precision of
//! the products with the frozen weights, as every trainer (the binary, bench, tests) builds it.

use qwen_lora::load::BaseModel;
use qwen_lora::model::Qwen2;

use crate::config::TrainConfig;
use crate::error::{Error, Result};

/// Builds the model to train from `base`: takes its weights (the model then holds the only
/// reference, so with bf16 products their f32 copies are released), attaches `config.lora`
/// seeded with `config.seed`, and applies `config.frozen_matmul`, logging which precision runs.
/// `base` keeps its config, tokenizer and source.
pub fn training_model(base: &mut BaseModel, config: &TrainConfig) -> Result<Qwen2> {
    let context = |what: &'static str| move |source| Error::Build { what, source };
    let mut model = base.take_model().map_err(context("building the model"))?;
    model.attach_lora(&config.lora, config.seed).map_err(context("attaching the LoRA adapter"))?;
    let bf16 = config.frozen_matmul.apply(&mut model)?;
    tracing::info!(
        "products with frozen weights in {} (frozen_matmul = {})",
        if bf16 { "bf16 with f32 sums" } else { "f32" },
        config.frozen_matmul
    );
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qwen_lora::ModelSpec;
    use qwen_lora::load::ModelSource;

    #[test]
    fn the_model_carries_the_configured_adapter() {
        let dir = tempfile::tempdir().unwrap();
        qwen_lora::fixture::write_tiny_model(dir.path(), 1).unwrap();
        let mut base = ModelSpec::cpu(ModelSource::Dir(dir.path().to_path_buf())).load().unwrap();
        let mut config = TrainConfig { frozen_matmul: crate::FrozenMatmul::F32, ..TrainConfig::default() };
        config.lora.r = 4;
        let model = training_model(&mut base, &config).unwrap();
        let vars = model.lora_vars();
        assert!(!vars.is_empty(), "no LoRA variables attached");
        assert!(vars.iter().all(|(_, v)| v.as_tensor().dims().contains(&4)), "rank is not config.lora.r");
    }
}
