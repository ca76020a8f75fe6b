//! The generator on a real model: a Qwen2.5-Instruct [`ChatModel`], each request a ChatML
//! conversation (system and user turn) decoded with its own seed.

use std::collections::BTreeMap;

use kb_dataset::chat_prompt;
use qwen_lora::generate::GenerationConfig;
use qwen_lora::load::SourceInfo;
use qwen_lora::{BaseModelId, ChatModel, Decode, ModelSpec};

use crate::generator::{Generator, Request};

/// Nucleus sampling and a mild repetition penalty for the sampled lists: small models otherwise
/// loop on one question pattern. Greedy requests use neither.
const TOP_P: f64 = 0.95;
const REPETITION_PENALTY: f32 = 1.1;

/// A loaded model answering synthesis requests.
pub struct QwenGenerator {
    model: ChatModel,
    identity: String,
    batch_size: usize,
}

impl QwenGenerator {
    /// Loads the generator `spec` names, decoding from f16 weights.
    pub fn load(spec: &ModelSpec, batch_size: usize) -> Result<QwenGenerator, qwen_lora::Error> {
        let model = ChatModel::load(spec, None, Decode::HalfWeights)?;
        // What the answers depend on, and not where the file lies: a GGUF by name and hash, a
        // hub model by id and commit; so a moved file keeps its cache.
        let id = BaseModelId::of(&model.source)?;
        let name = match &model.source {
            SourceInfo::Gguf { path } => path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned(),
            _ => id.name_or_path.clone(),
        };
        let identity = match &id.revision {
            Some(rev) => format!("{name} {rev} (f16 decoding)"),
            None => format!("{name} (f16 decoding)"),
        };
        Ok(QwenGenerator::new(model, identity, batch_size))
    }

    /// `identity` names the model and the decoding mode (both change the answers); it is part
    /// of every cache key.
    pub fn new(model: ChatModel, identity: String, batch_size: usize) -> QwenGenerator {
        QwenGenerator { model, identity, batch_size: batch_size.max(1) }
    }
}

impl Generator for QwenGenerator {
    fn identity(&self) -> String {
        format!("{} top_p={TOP_P} repetition_penalty={REPETITION_PENALTY}", self.identity)
    }

    fn generate(&mut self, requests: &[Request]) -> Result<Vec<String>, String> {
        // One decoding call per setting; each row draws from its own seed, so an answer does
        // not depend on the other requests of the call.
        let mut groups: BTreeMap<(usize, u64), Vec<usize>> = BTreeMap::new();
        for (i, r) in requests.iter().enumerate() {
            groups.entry((r.max_new_tokens, r.temperature.to_bits())).or_default().push(i);
        }
        let mut out = vec![String::new(); requests.len()];
        for ((max_new_tokens, temperature), rows) in groups {
            let temperature = f64::from_bits(temperature);
            let sampled = temperature > 0.0;
            let cfg = GenerationConfig {
                max_new_tokens,
                temperature,
                top_p: if sampled { TOP_P } else { 1.0 },
                repetition_penalty: if sampled { REPETITION_PENALTY } else { 1.0 },
                seed: 0,
                batch_size: self.batch_size,
            };
            let prompts: Vec<String> =
                rows.iter().map(|&i| chat_prompt(&requests[i].system, &requests[i].user)).collect();
            let seeds: Vec<u64> = rows.iter().map(|&i| requests[i].seed).collect();
            let texts =
                self.model.generate_texts_seeded(&prompts, &seeds, &cfg, |_| {}).map_err(|e| format!("{e:#}"))?;
            for (&i, t) in rows.iter().zip(texts) {
                out[i] = t;
            }
        }
        Ok(out)
    }
}
