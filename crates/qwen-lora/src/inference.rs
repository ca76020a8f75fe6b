//! A model ready to answer: base + adapter merged in memory, tokenizer and stop tokens.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::generate::{GenerationConfig, generate, generate_seeded};
use crate::load::SourceInfo;
use crate::merge::merge_adapter;
use crate::model::Qwen2;
use crate::spec::ModelSpec;
use crate::{Error, Result};

/// How decoding steps read the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decode {
    /// From f16 copies (see [`Qwen2::use_half_weights_for_decoding`]): a decoding step is bound by
    /// reading the weights, so about twice as fast on a CPU.
    #[default]
    HalfWeights,
    /// From the f32 weights themselves: exact, about half the speed.
    ExactWeights,
}

/// A model ready to answer: base + adapter merged, tokenizer and stop tokens.
pub struct ChatModel {
    pub model: Qwen2,
    pub tokenizer: Tokenizer,
    /// Tokens that end an answer (`<|im_end|>`, `<|endoftext|>`).
    pub stop: Vec<u32>,
    pub source: SourceInfo,
}

impl ChatModel {
    /// Loads the base model `spec` names and, when given, the adapter in `adapter_dir`, merged into
    /// the weights (`W + scale·B·A`) so generation costs the same as the base model.
    pub fn load(spec: &ModelSpec, adapter_dir: Option<&Path>, decode: Decode) -> Result<Self> {
        let mut base = spec.load()?;
        let stop = base.eos_token_ids();
        let mut model = base.take_model()?;
        if let Some(dir) = adapter_dir {
            let cfg = merge_adapter(&mut model, dir)?;
            tracing::info!(adapter = %dir.display(), r = cfg.r, alpha = cfg.lora_alpha, "merged adapter");
        }
        if decode == Decode::HalfWeights {
            model.use_half_weights_for_decoding()?;
        }
        Ok(Self { model, tokenizer: base.tokenizer, stop, source: base.source })
    }

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

    /// [`ChatModel::generate_texts`] with a seed per prompt ([`generate_seeded`]).
    pub fn generate_texts_seeded(
        &self,
        prompts: &[String],
        seeds: &[u64],
        cfg: &GenerationConfig,
        on_done: impl FnMut(usize),
    ) -> Result<Vec<String>> {
        let ids = prompts.iter().map(|p| self.encode(p)).collect::<Result<Vec<_>>>()?;
        let out = generate_seeded(&self.model, &ids, seeds, &self.stop, cfg, on_done)?;
        out.iter().map(|o| self.decode(o)).collect()
    }
}
