//! Batched, KV-cached generation with continuous batching.
//!
//! Prompts are sorted by length (longest first) and decoded `batch_size` at a time. A finished row
//! leaves the batch (its cache rows are dropped) and, once a quarter of the slots are free (or as
//! many as there are prompts left), the next prompts are prefilled together and join it, their
//! cache left-padded to the batch's length; so one long answer never leaves most slots idle.
//! Positions count real tokens only, so a row decodes exactly like the same prompt alone (a test
//! checks it token for token). With sampling (temperature > 0) the draws of [`generate`] follow
//! the batch's row order, so a seed reproduces a run only with the same batch size;
//! [`generate_seeded`] gives every prompt its own seed instead.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::kv_cache::KvCache;
use crate::model::{Qwen2, positions_from_mask};
use crate::{Error, Result};

/// Decoding settings. `temperature == 0` is greedy.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub repetition_penalty: f32,
    pub seed: u64,
    /// Prompts decoded together.
    pub batch_size: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self { max_new_tokens: 150, temperature: 0.0, top_p: 1.0, repetition_penalty: 1.0, seed: 42, batch_size: 16 }
    }
}

/// Generates a continuation for every prompt; returns the new tokens of each (without the stop
/// token), in the prompts' order. `on_done` is called with the number of prompts finished so far.
pub fn generate(
    model: &Qwen2,
    prompts: &[Vec<u32>],
    stop: &[u32],
    cfg: &GenerationConfig,
    on_done: impl FnMut(usize),
) -> Result<Vec<Vec<u32>>> {
    run(model, prompts, stop, cfg, Draws::Shared(Box::new(StdRng::seed_from_u64(cfg.seed))), on_done)
}

/// [`generate`] with prompt `i` sampling from its own `seeds[i]` (`cfg.seed` is unused), so
/// each answer depends only on its prompt and seed, not on the other prompts of the call.
pub fn generate_seeded(
    model: &Qwen2,
    prompts: &[Vec<u32>],
    seeds: &[u64],
    stop: &[u32],
    cfg: &GenerationConfig,
    on_done: impl FnMut(usize),
) -> Result<Vec<Vec<u32>>> {
    if seeds.len() != prompts.len() {
        return Err(Error::msg(format!("generate: {} seeds for {} prompts", seeds.len(), prompts.len())));
    }
    let draws = Draws::PerPrompt(seeds.iter().map(|&s| StdRng::seed_from_u64(s)).collect());
    run(model, prompts, stop, cfg, draws, on_done)
}

/// Where sampled tokens draw their randomness.
enum Draws {
    /// One generator for the whole call, in row order.
    Shared(Box<StdRng>),
    /// One per prompt.
    PerPrompt(Vec<StdRng>),
}

impl Draws {
    fn rng(&mut self, prompt: usize) -> &mut StdRng {
        match self {
            Draws::Shared(rng) => rng,
            Draws::PerPrompt(rngs) => &mut rngs[prompt],
        }
    }
}

fn run(
    model: &Qwen2,
    prompts: &[Vec<u32>],
    stop: &[u32],
    cfg: &GenerationConfig,
    mut draws: Draws,
    mut on_done: impl FnMut(usize),
) -> Result<Vec<Vec<u32>>> {
    if prompts.iter().any(|p| p.is_empty()) {
        return Err(Error::msg("generate: every prompt needs at least one token"));
    }
    let mut out = vec![Vec::new(); prompts.len()];
    // (No prompts: the loop below returns at once.)
    if cfg.max_new_tokens == 0 && !prompts.is_empty() {
        on_done(prompts.len());
        return Ok(out);
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let size = cfg.batch_size.max(1);
    let mut batch = Batch::default();
    let (mut queued, mut done) = (order.as_slice(), 0);
    loop {
        let free = size - batch.rows.len();
        if !queued.is_empty() && free >= (size / 4).max(1).min(queued.len()) {
            let (joining, rest) = queued.split_at(free.min(queued.len()));
            let joining: Vec<(usize, &[u32])> = joining.iter().map(|&i| (i, prompts[i].as_slice())).collect();
            batch.join(model, &joining)?;
            queued = rest;
        }
        if batch.rows.is_empty() {
            return Ok(out);
        }
        let logits = batch.logits.take().ok_or_else(|| Error::msg("generate: no logits for the batch"))?;
        let mut keep = Vec::with_capacity(batch.rows.len());
        let mut next = Vec::with_capacity(batch.rows.len());
        for (slot, row) in logits.to_dtype(DType::F32)?.to_vec2::<f32>()?.into_iter().enumerate() {
            let r = &mut batch.rows[slot];
            let tok = pick(row, &r.history, cfg, draws.rng(r.id));
            if !stop.contains(&tok) {
                out[r.id].push(tok);
                r.history.push(tok);
                if out[r.id].len() < cfg.max_new_tokens {
                    keep.push(slot);
                    next.push(tok);
                    continue;
                }
            }
            done += 1;
            on_done(done);
        }
        batch.keep(model.device(), &keep)?;
        if !batch.rows.is_empty() {
            batch.step(model, next)?;
        }
    }
}

/// One row of the running batch.
pub(crate) struct Row {
    /// Who the row decodes for: the prompt's index, or a live request's id.
    pub(crate) id: usize,
    /// Prompt and generated tokens (for the repetition penalty).
    pub(crate) history: Vec<u32>,
    /// Position of the next token.
    next_pos: u32,
    /// Which cached positions are real tokens (left padding is not).
    key_valid: Vec<u8>,
}

/// The rows being decoded, their shared KV cache and, between steps, their next-token logits.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) rows: Vec<Row>,
    cache: KvCache,
    /// (rows, vocab)
    pub(crate) logits: Option<Tensor>,
}

impl Batch {
    /// Prefills `joining` (`(id, prompt)`, left-padded to the longest prompt) and adds them below
    /// the rows already decoding.
    pub(crate) fn join(&mut self, model: &Qwen2, joining: &[(usize, &[u32])]) -> Result<()> {
        let (b, t) = (joining.len(), joining.iter().map(|(_, p)| p.len()).max().unwrap_or(0));
        // Padding ids are masked out; any id will do.
        let (mut ids, mut valid) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for &(_, p) in joining {
            ids.extend(std::iter::repeat_n(0, t - p.len()).chain(p.iter().copied()));
            valid.extend(std::iter::repeat_n(0u8, t - p.len()).chain(std::iter::repeat_n(1u8, p.len())));
        }
        let positions = positions_from_mask(&valid, b, t, &vec![0; b]);
        let mut cache = KvCache::default();
        let ids = Tensor::from_vec(ids, (b, t), model.device())?;
        let hidden = model.forward_cached(&ids, &positions, valid.clone(), &mut cache)?;
        let logits = model.last_logits(&hidden)?; // (b, vocab)

        // Left-pad whichever side is shorter so every row has the same number of cached positions.
        let (old_t, total) = (self.cache.len(), self.cache.len().max(t));
        for r in &mut self.rows {
            r.key_valid.splice(0..0, std::iter::repeat_n(0, total - old_t));
        }
        for (&(id, p), v) in joining.iter().zip(valid.chunks(t)) {
            let mut key_valid = vec![0; total - t];
            key_valid.extend_from_slice(v);
            self.rows.push(Row { id, history: p.to_vec(), next_pos: p.len() as u32, key_valid });
        }
        self.cache.append_rows(cache)?;
        self.logits = Some(match self.logits.take() {
            Some(old) => Tensor::cat(&[&old, &logits], 0)?,
            None => logits,
        });
        Ok(())
    }

    /// Keeps the rows at `slots` (in order) and drops cached positions that no row attends to.
    pub(crate) fn keep(&mut self, device: &Device, slots: &[usize]) -> Result<()> {
        if slots.len() < self.rows.len() {
            let mut rows: Vec<Option<Row>> = std::mem::take(&mut self.rows).into_iter().map(Some).collect();
            self.rows = slots.iter().filter_map(|&s| rows[s].take()).collect();
            if self.rows.is_empty() {
                self.cache = KvCache::default();
                return Ok(());
            }
            let idx = slots.iter().map(|&s| s as u32).collect::<Vec<_>>();
            self.cache.select_rows(&Tensor::from_vec(idx, slots.len(), device)?)?;
        }
        let lead = self.rows.iter().map(|r| r.key_valid.iter().take_while(|&&v| v == 0).count()).min().unwrap_or(0);
        if lead > 0 {
            self.cache.drop_leading(lead)?;
            for r in &mut self.rows {
                r.key_valid.drain(..lead);
            }
        }
        Ok(())
    }

    /// Feeds each row its next token; leaves the logits of the token after it.
    pub(crate) fn step(&mut self, model: &Qwen2, next: Vec<u32>) -> Result<()> {
        let n = self.rows.len();
        let positions: Vec<u32> = self.rows.iter().map(|r| r.next_pos).collect();
        let mut key_valid = Vec::with_capacity(n * (self.cache.len() + 1));
        for r in &mut self.rows {
            r.next_pos += 1;
            r.key_valid.push(1);
            key_valid.extend_from_slice(&r.key_valid);
        }
        let ids = Tensor::from_vec(next, (n, 1), model.device())?;
        let hidden = model.forward_cached(&ids, &positions, key_valid, &mut self.cache)?;
        self.logits = Some(model.last_logits(&hidden)?);
        Ok(())
    }
}

/// Chooses the next token from one row of logits.
pub(crate) fn pick(mut logits: Vec<f32>, history: &[u32], cfg: &GenerationConfig, rng: &mut StdRng) -> u32 {
    if cfg.repetition_penalty != 1.0 {
        for &tok in history {
            if let Some(l) = logits.get_mut(tok as usize) {
                *l = if *l > 0.0 { *l / cfg.repetition_penalty } else { *l * cfg.repetition_penalty };
            }
        }
    }
    if cfg.temperature <= 0.0 {
        return argmax(&logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i as u32, (((l - max) as f64) / cfg.temperature).exp())).collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Nucleus: the smallest prefix whose mass reaches top_p.
    let mut mass = 0.0;
    let mut cut = probs.len();
    for (k, p) in probs.iter().enumerate() {
        mass += p.1 / total;
        if mass >= cfg.top_p {
            cut = k + 1;
            break;
        }
    }
    probs.truncate(cut);
    let kept: f64 = probs.iter().map(|p| p.1).sum();
    let mut r = rng.random::<f64>() * kept;
    for (tok, p) in &probs {
        r -= p;
        if r <= 0.0 {
            return *tok;
        }
    }
    probs.last().map_or(0, |p| p.0)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_nn::VarBuilder;

    use super::*;
    use crate::fixture::{tiny_config, tiny_tensors};

    fn model() -> Qwen2 {
        let ts: HashMap<String, Tensor> = tiny_tensors(5).unwrap().into_iter().collect();
        Qwen2::new(&tiny_config(), VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu), None).unwrap()
    }

    fn sampled(batch_size: usize) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: 8,
            temperature: 1.0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
            batch_size,
        }
    }

    #[test]
    fn a_seeded_prompt_samples_the_same_alone_or_in_any_batch() {
        let m = model();
        let prompts: Vec<Vec<u32>> = (0..4u32).map(|i| (1..4 + i).collect()).collect();
        let seeds = [11, 12, 13, 14];
        let alone: Vec<Vec<u32>> = prompts
            .iter()
            .zip(seeds)
            .map(|(p, s)| {
                generate_seeded(&m, std::slice::from_ref(p), &[s], &[], &sampled(1), |_| {}).unwrap().remove(0)
            })
            .collect();
        for size in [4, 2] {
            assert_eq!(
                generate_seeded(&m, &prompts, &seeds, &[], &sampled(size), |_| {}).unwrap(),
                alone,
                "batch {size}"
            );
        }
        let other = generate_seeded(&m, &prompts[..1], &[99], &[], &sampled(1), |_| {}).unwrap().remove(0);
        assert_ne!(other, alone[0], "another seed, another sample");
        assert!(generate_seeded(&m, &prompts, &seeds[..1], &[], &sampled(1), |_| {}).is_err());
    }
}
