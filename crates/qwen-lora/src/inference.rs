//! A model ready to answer: base + adapter merged in memory, tokenizer and stop tokens.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::cli::ModelArgs;
use crate::generate::{GenerationConfig, generate};
use crate::load::SourceInfo;
use crate::model::Qwen2;
use crate::{Error, Result, adapter};

/// A loaded model for generation.
pub struct Loaded {
    pub model: Qwen2,
    pub tokenizer: Tokenizer,
    /// Tokens that end an answer (`<|im_end|>`, `<|endoftext|>`).
    pub stop: Vec<u32>,
    pub source: SourceInfo,
}

/// Loads the base model named by `args` and, when given, the adapter in `adapter_dir`, merged into
/// the weights (`W + scale·B·A`) so generation costs the same as the base model.
pub fn load_model(args: &ModelArgs, adapter_dir: Option<&Path>) -> Result<Loaded> {
    let base = args.load()?;
    let stop = base.eos_token_ids();
    let mut model = Qwen2::new(&base.config, base.vb.clone(), None)?;
    if let Some(dir) = adapter_dir {
        let cfg = adapter::load_adapter(&mut model, dir)?;
        tracing::info!(adapter = %dir.display(), r = cfg.r, alpha = cfg.lora_alpha, "merged adapter");
        model.merge_lora()?;
    }
    Ok(Loaded { model, tokenizer: base.tokenizer, stop, source: base.source })
}

impl Loaded {
    /// Token ids of `text`; ChatML markers in it become their special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| Error::msg(format!("tokenizing: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| Error::msg(format!("decoding: {e}")))
    }

    /// Generates for every prompt text (already formatted) and decodes the answers.
    pub fn generate_texts(
        &self,
        prompts: &[String],
        cfg: &GenerationConfig,
        on_done: impl FnMut(usize),
    ) -> Result<Vec<String>> {
        let ids = prompts.iter().map(|p| self.encode(p)).collect::<Result<Vec<_>>>()?;
        let out = generate(&self.model, &ids, &self.stop, cfg, on_done)?;
        out.iter().map(|o| self.decode(o)).collect()
    }
}
