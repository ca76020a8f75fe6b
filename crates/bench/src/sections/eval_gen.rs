//! The whole eval set's generation as the evaluator runs it (batched, greedy, stopping at
//! `<|im_end|>`), against generating one prompt at a time on a sample of it.
//!
//! The per-prompt estimate for the whole set scales the sample's seconds per generated token by
//! the tokens the batched run generated: greedy batched decoding gives the same tokens as
//! per-prompt decoding, so both runs produce the same answers.

use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::{ChatModel, Decode};
use serde::{Deserialize, Serialize};

use super::{Settings, eval_prompts};
use crate::sys::timed;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalGenResult {
    pub prompts: usize,
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Batched run over every prompt (one run, no repeat).
    pub batched_seconds: f64,
    pub batched_tokens: usize,
    pub batched_tokens_per_s: f64,
    /// The per-prompt sample: the first `per_prompt_n` prompts, one at a time.
    pub per_prompt_n: usize,
    pub per_prompt_seconds: f64,
    pub per_prompt_tokens: usize,
    pub per_prompt_tokens_per_s: f64,
    /// Whole set one prompt at a time, estimated: batched_tokens / per_prompt_tokens_per_s.
    pub per_prompt_estimate_seconds: f64,
}

pub fn run(s: &Settings) -> anyhow::Result<EvalGenResult> {
    let loaded = ChatModel::load(&s.model.spec()?, None, Decode::HalfWeights)?;
    let mut texts = eval_prompts(s)?;
    if let Some(n) = s.eval_limit {
        texts.truncate(n.max(1));
    }
    let ids = texts.iter().map(|t| loaded.encode(t)).collect::<qwen_lora::Result<Vec<_>>>()?;
    let cfg = |batch_size| GenerationConfig {
        max_new_tokens: s.eval_max_new_tokens,
        temperature: 0.0,
        batch_size,
        ..GenerationConfig::default()
    };
    // Warm-up: touch every weight once.
    generate(&loaded.model, &ids[..1], &loaded.stop, &GenerationConfig { max_new_tokens: 2, ..cfg(1) }, |_| {})?;

    let batch = cfg(s.eval_batch.max(1));
    let (out, batched_seconds) = timed(|| Ok(generate(&loaded.model, &ids, &loaded.stop, &batch, |_| {})?))?;
    let batched_tokens: usize = out.iter().map(Vec::len).sum();
    tracing::info!("eval-gen batched: {} prompts, {batched_tokens} tokens in {batched_seconds:.1} s", ids.len());

    let n = s.per_prompt.clamp(1, ids.len());
    let one = cfg(1);
    let (mut per_prompt_seconds, mut per_prompt_tokens) = (0.0, 0);
    for (i, p) in ids[..n].iter().enumerate() {
        let (o, secs) = timed(|| Ok(generate(&loaded.model, std::slice::from_ref(p), &loaded.stop, &one, |_| {})?))?;
        per_prompt_seconds += secs;
        per_prompt_tokens += o[0].len();
        tracing::info!("eval-gen per prompt {}/{n}: {} tokens in {secs:.1} s", i + 1, o[0].len());
    }
    let per_prompt_tokens_per_s = per_prompt_tokens as f64 / per_prompt_seconds;
    Ok(EvalGenResult {
        prompts: ids.len(),
        max_new_tokens: s.eval_max_new_tokens,
        batch_size: batch.batch_size,
        batched_seconds,
        batched_tokens,
        batched_tokens_per_s: batched_tokens as f64 / batched_seconds,
        per_prompt_n: n,
        per_prompt_seconds,
        per_prompt_tokens,
        per_prompt_tokens_per_s,
        per_prompt_estimate_seconds: batched_tokens as f64 / per_prompt_tokens_per_s,
    })
}
