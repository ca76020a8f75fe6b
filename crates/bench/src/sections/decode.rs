//! Greedy decode speed, one prompt and a batch of prompts, with the end-of-sequence token ignored
//! so every row generates exactly `decode_tokens` tokens (counted, not assumed).
//!
//! tokens/s counts generated tokens over the whole call, prompt prefill included; "decode only"
//! subtracts a run with one new token (the prefill) from both tokens and time.

use std::fmt::Write as _;

use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::{ChatModel, Decode};
use serde::{Deserialize, Serialize};

use crate::reference::References;
use crate::settings::{Settings, eval_prompts};
use crate::sys::{median, timed};
use crate::table::{Row, rate, row, table};
use crate::targets::{DECODE_BATCHED, DECODE_ONE, DECODE_VS_LLAMA_CPP};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeRun {
    /// Prompts decoded together.
    pub batch: usize,
    /// Tokens generated in one timed call, all rows together.
    pub tokens: usize,
    /// Median seconds of the call.
    pub seconds: f64,
    /// Median seconds of the same call with one new token: prefill and the first token.
    pub prefill_seconds: f64,
    /// Generated tokens per second, all rows together, prefill included.
    pub tokens_per_s: f64,
    /// The same without the prefill.
    pub decode_tokens_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeResult {
    pub max_new_tokens: usize,
    /// Mean prompt length in tokens.
    pub prompt_tokens: f64,
    pub runs: Vec<DecodeRun>,
}

pub fn run(s: &Settings) -> anyhow::Result<DecodeResult> {
    let loaded = ChatModel::load(&s.model.spec()?, None, Decode::HalfWeights)?;
    let texts = eval_prompts(s)?;
    let n = s.decode_batch.max(1);
    // Distinct prompts; a small eval set is cycled.
    let ids = texts.iter().cycle().take(n).map(|t| loaded.encode(t)).collect::<qwen_lora::Result<Vec<_>>>()?;
    let prompt_tokens = ids.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    let mut runs = Vec::new();
    let mut batches = vec![1, n];
    batches.dedup();
    for b in batches {
        let prompts = &ids[..b];
        let call = |max_new_tokens: usize| {
            let cfg =
                GenerationConfig { max_new_tokens, batch_size: b, temperature: 0.0, ..GenerationConfig::default() };
            // No stop tokens: rows run to max_new_tokens.
            timed(|| Ok(generate(&loaded.model, prompts, &[], &cfg, |_| {})?))
        };
        call(4)?; // warm-up
        let (mut full, mut prefill, mut tokens) = (Vec::new(), Vec::new(), 0);
        for r in 0..s.repeats.max(1) {
            let (out, secs) = call(s.decode_tokens)?;
            tokens = out.iter().map(Vec::len).sum();
            let (_, pre) = call(1)?;
            tracing::info!(
                "decode batch {b} {}/{}: {tokens} tokens in {secs:.2} s ({:.1} tokens/s), prefill {pre:.2} s",
                r + 1,
                s.repeats.max(1),
                tokens as f64 / secs
            );
            full.push(secs);
            prefill.push(pre);
        }
        let (secs, pre) = (median(&full), median(&prefill));
        runs.push(DecodeRun {
            batch: b,
            tokens,
            seconds: secs,
            prefill_seconds: pre,
            tokens_per_s: tokens as f64 / secs,
            decode_tokens_per_s: tokens.saturating_sub(b) as f64 / (secs - pre).max(1e-9),
        });
    }
    Ok(DecodeResult { max_new_tokens: s.decode_tokens, prompt_tokens, runs })
}

impl DecodeResult {
    /// Per batch size: tokens/s against transformers (when there is a figure) and llama.cpp.
    pub fn rows(&self, refs: &References) -> Vec<Row> {
        let mut rows = Vec::new();
        for run in &self.runs {
            let what = |who: &str| {
                format!(
                    "greedy decode, batch {}, {} new tokens each, tokens/s vs {who}",
                    run.batch, self.max_new_tokens
                )
            };
            let ours = format!("{:.1} tok/s", run.tokens_per_s);
            if let Some(t) = &refs.transformers_tok_s {
                let st = run.tokens_per_s / t.value;
                let target = if run.batch == 1 { DECODE_ONE } else { DECODE_BATCHED };
                rows.push(row(
                    &what("transformers one prompt"),
                    ours.clone(),
                    rate(t, "tok/s"),
                    Some(st),
                    target.check(st),
                ));
            }
            let l = &refs.llama_cpp_tok_s;
            let sl = run.tokens_per_s / l.value;
            let lt = if run.batch == 1 { None } else { DECODE_VS_LLAMA_CPP.check(sl) };
            rows.push(row(&what("llama.cpp one stream"), ours, rate(l, "tok/s"), Some(sl), lt));
        }
        rows
    }

    pub fn details(&self, w: &mut String) {
        let d = self;
        let _ = writeln!(
            w,
            "### decode (greedy, end-of-sequence ignored, {} new tokens per prompt, prompts of {:.0} tokens on average)\n",
            d.max_new_tokens, d.prompt_tokens
        );
        table(
            w,
            &["batch", "tokens", "seconds", "tokens/s (prefill incl.)", "prefill s", "tokens/s decode only"],
            d.runs.iter().map(|x| {
                vec![
                    x.batch.to_string(),
                    x.tokens.to_string(),
                    format!("{:.2}", x.seconds),
                    format!("{:.1}", x.tokens_per_s),
                    format!("{:.2}", x.prefill_seconds),
                    format!("{:.1}", x.decode_tokens_per_s),
                ]
            }),
        );
    }
}
