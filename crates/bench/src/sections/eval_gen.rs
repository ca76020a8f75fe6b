//! The whole eval set's generation as the evaluator runs it (batched, greedy, stopping at
//! `<|im_end|>`), against generating one prompt at a time on a sample of it.
//!
//! The per-prompt estimate for the whole set scales the sample's seconds per generated token by
//! the tokens the batched run generated: greedy batched decoding gives the same tokens as
//! per-prompt decoding, so both runs produce the same answers.

use std::fmt::Write as _;

use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::{ChatModel, Decode};
use serde::{Deserialize, Serialize};

use crate::reference::{LIVE, References};
use crate::settings::{Settings, eval_prompts};
use crate::sys::timed;
use crate::table::{Row, bytes, rate, row, secs};
use crate::targets::{EVAL_GEN, EVAL_GEN_VS_LLAMA_CPP};

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

impl EvalGenResult {
    /// Against transformers one prompt at a time (estimated) and llama.cpp's one stream, ours one
    /// at a time, and the section's peak memory (`peak`, bytes) beside transformers'.
    pub fn rows(&self, refs: &References, peak: Option<u64>) -> Vec<Row> {
        let g = self;
        let mut rows = Vec::new();
        if let Some(t) = &refs.transformers_tok_s {
            let ref_s = g.batched_tokens as f64 / t.value;
            rows.push(row(
                &format!(
                    "eval set generation, {} prompts (ours batched {}; transformers one at a time, estimated)",
                    g.prompts, g.batch_size
                ),
                secs(g.batched_seconds),
                Some((secs(ref_s), t.source)),
                Some(ref_s / g.batched_seconds),
                EVAL_GEN.check(ref_s / g.batched_seconds),
            ));
        }
        let l = &refs.llama_cpp_tok_s;
        rows.push(row(
            "eval set generation, aggregate tokens/s vs llama.cpp one stream",
            format!("{:.1} tok/s", g.batched_tokens_per_s),
            rate(l, "tok/s"),
            Some(g.batched_tokens_per_s / l.value),
            EVAL_GEN_VS_LLAMA_CPP.check(g.batched_tokens_per_s / l.value),
        ));
        rows.push(row(
            "eval set generation, ours one prompt at a time (estimated)",
            secs(g.per_prompt_estimate_seconds),
            None,
            None,
            None,
        ));
        if let Some(p) = peak {
            let other = refs
                .file
                .transformers_generate
                .as_ref()
                .and_then(|g| g.peak_memory_bytes)
                .map(|b| (format!("{} (transformers)", bytes(b as f64)), LIVE));
            rows.push(row("eval generation peak memory", bytes(p as f64), other, None, None));
        }
        rows
    }

    pub fn details(&self, w: &mut String) {
        let g = self;
        let _ = writeln!(w, "### eval-gen (greedy, stop at <|im_end|>, at most {} new tokens)\n", g.max_new_tokens);
        let _ = writeln!(
            w,
            "- batched (batch {}): {} prompts, {} tokens in {} = {:.1} tok/s",
            g.batch_size,
            g.prompts,
            g.batched_tokens,
            secs(g.batched_seconds),
            g.batched_tokens_per_s
        );
        let _ = writeln!(
            w,
            "- one at a time, first {} prompts: {} tokens in {} = {:.1} tok/s",
            g.per_prompt_n,
            g.per_prompt_tokens,
            secs(g.per_prompt_seconds),
            g.per_prompt_tokens_per_s
        );
        let _ = writeln!(
            w,
            "- whole set one at a time, estimated = batched tokens / per-prompt tok/s = {} (batched is {:.1}× faster); the same estimate is used for the reference's per-prompt rate\n",
            secs(g.per_prompt_estimate_seconds),
            g.per_prompt_estimate_seconds / g.batched_seconds
        );
    }
}
