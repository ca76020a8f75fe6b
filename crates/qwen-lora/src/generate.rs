//! Batched, KV-cached generation.
//!
//! Prompts are sorted by length, cut into batches, left-padded and decoded together; a finished
//! row leaves the batch (its cache rows are dropped), so long answers do not keep short ones
//! busy. Positions count real tokens only, so a padded row decodes exactly like the same prompt
//! alone (a test checks it token for token).

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::model::{KvCache, Qwen2, positions_from_mask};
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
    mut on_done: impl FnMut(usize),
) -> Result<Vec<Vec<u32>>> {
    if prompts.iter().any(|p| p.is_empty()) {
        return Err(Error::msg("generate: every prompt needs at least one token"));
    }
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let mut out = vec![Vec::new(); prompts.len()];
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut done = 0;
    for chunk in order.chunks(cfg.batch_size.max(1)) {
        let batch: Vec<&[u32]> = chunk.iter().map(|&i| prompts[i].as_slice()).collect();
        let results = generate_batch(model, &batch, stop, cfg, &mut rng)?;
        for (&i, r) in chunk.iter().zip(results) {
            out[i] = r;
        }
        done += chunk.len();
        on_done(done);
    }
    Ok(out)
}

fn generate_batch(
    model: &Qwen2,
    prompts: &[&[u32]],
    stop: &[u32],
    cfg: &GenerationConfig,
    rng: &mut StdRng,
) -> Result<Vec<Vec<u32>>> {
    let dev = model.device().clone();
    let b = prompts.len();
    let t = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    // Left padding: every row's last prompt token sits at column t − 1.
    let pad = stop.first().copied().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * t);
    let mut valid = Vec::with_capacity(b * t);
    for p in prompts {
        ids.extend(std::iter::repeat_n(pad, t - p.len()).chain(p.iter().copied()));
        valid.extend(std::iter::repeat_n(0u8, t - p.len()).chain(std::iter::repeat_n(1u8, p.len())));
    }
    let positions = positions_from_mask(&valid, b, t, &vec![0; b]);
    let mut cache = KvCache::default();
    let ids_t = Tensor::from_vec(ids, (b, t), &dev)?;
    let hidden = model.forward_cached(&ids_t, &positions, valid.clone(), &mut cache)?;
    let mut logits = model.last_logits(&hidden)?; // (b, vocab)

    // Per active row: original index, tokens so far (for the repetition penalty), next position.
    let mut active: Vec<usize> = (0..b).collect();
    let mut history: Vec<Vec<u32>> = prompts.iter().map(|p| p.to_vec()).collect();
    let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    let mut out = vec![Vec::new(); b];
    let mut key_valid: Vec<Vec<u8>> = valid.chunks(t).map(|c| c.to_vec()).collect();

    for step in 0..cfg.max_new_tokens {
        let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut keep = Vec::with_capacity(active.len());
        let mut next = Vec::with_capacity(active.len());
        for (slot, row) in rows.into_iter().enumerate() {
            let i = active[slot];
            let tok = pick(row, &history[i], cfg, rng);
            if stop.contains(&tok) {
                continue;
            }
            out[i].push(tok);
            history[i].push(tok);
            if step + 1 < cfg.max_new_tokens {
                keep.push(slot);
                next.push(tok);
            }
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() < active.len() {
            let idx = Tensor::from_vec(keep.iter().map(|&s| s as u32).collect::<Vec<_>>(), keep.len(), &dev)?;
            cache.select_rows(&idx)?;
            active = keep.iter().map(|&s| active[s]).collect();
            key_valid = keep.iter().map(|&s| std::mem::take(&mut key_valid[s])).collect();
        }
        for kv in &mut key_valid {
            kv.push(1);
        }
        let positions: Vec<u32> = active.iter().map(|&i| next_pos[i]).collect();
        for &i in &active {
            next_pos[i] += 1;
        }
        let n = active.len();
        let ids_t = Tensor::from_vec(next, (n, 1), &dev)?;
        let flat_valid: Vec<u8> = key_valid.iter().flatten().copied().collect();
        let hidden = model.forward_cached(&ids_t, &positions, flat_valid, &mut cache)?;
        logits = model.last_logits(&hidden)?;
    }
    Ok(out)
}

/// Chooses the next token from one row of logits.
fn pick(mut logits: Vec<f32>, history: &[u32], cfg: &GenerationConfig, rng: &mut StdRng) -> u32 {
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
