//! The Qwen2 decoder (Qwen2 technical report, arXiv:2407.10671; HF `modeling_qwen2.py`).
//!
//! Pre-norm decoder blocks: `h = x + Attn(RMSNorm(x))`, `y = h + MLP(RMSNorm(h))`, with
//! grouped-query attention (q/k/v biases, rotary embeddings) and a SwiGLU MLP. Unlike
//! candle-transformers' inference model, the forward keeps every position (training needs them),
//! the KV cache is explicit, and every projection is a [`Linear`] that may carry a LoRA adapter.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use crate::bf16::Bf16Weight;
use crate::fused;
use crate::lora::{Linear, LoraConfig};
use crate::ops::{self, AttnMask, Frozen, RopeTable};
use crate::{Config, Error, Result};

/// Whether dropout is active. Training dropout masks derive from `dropout_seed` (and the layer),
/// so a resumed run replays exactly the same masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Eval,
    Train { dropout_seed: u64 },
}

impl Mode {
    fn seed(self) -> Option<u64> {
        match self {
            Mode::Eval => None,
            Mode::Train { dropout_seed } => Some(dropout_seed),
        }
    }
}

/// Keys and values of every layer for the tokens seen so far: (b, kv_heads, t, head_dim) each.
#[derive(Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `idx` (u32), e.g. when some rows have finished generating.
    pub fn select_rows(&mut self, idx: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(idx, 0)?;
            *v = v.index_select(idx, 0)?;
        }
        Ok(())
    }

    /// Appends `other`'s rows below this cache's. The shorter of the two is left-padded with zero
    /// keys and values to the longer one's length; the caller marks those positions invalid.
    pub fn append_rows(&mut self, other: KvCache) -> Result<()> {
        if self.is_empty() {
            *self = other;
            return Ok(());
        }
        let t = self.len().max(other.len());
        let pad_front = |x: &Tensor| -> Result<Tensor> {
            let (b, h, tx, d) = x.dims4()?; // (b, n_kv, t_x, head_dim)
            if tx == t {
                return Ok(x.clone());
            }
            let zeros = Tensor::zeros((b, h, t - tx, d), x.dtype(), x.device())?;
            Ok(Tensor::cat(&[&zeros, x], 2)?)
        };
        if self.layers.len() != other.layers.len() {
            return Err(Error::msg("KvCache::append_rows: the caches hold different numbers of layers"));
        }
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            match (mine.as_mut(), theirs) {
                (Some((k, v)), Some((k2, v2))) => {
                    *k = Tensor::cat(&[pad_front(k)?, pad_front(&k2)?], 0)?;
                    *v = Tensor::cat(&[pad_front(v)?, pad_front(&v2)?], 0)?;
                }
                (None, None) => {}
                _ => return Err(Error::msg("KvCache::append_rows: a layer is cached in one cache only")),
            }
        }
        Ok(())
    }

    /// Drops the first `n` cached positions of every row (positions no row can attend to).
    pub fn drop_leading(&mut self, n: usize) -> Result<()> {
        let t = self.len();
        if n > t {
            return Err(Error::msg(format!("KvCache::drop_leading: {n} positions asked, {t} cached")));
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, n, t - n)?;
            *v = v.narrow(2, n, t - n)?;
        }
        Ok(())
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

struct Block {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: Tensor,
    post_attention_layernorm: Tensor,
}

/// Qwen2 causal language model.
pub struct Qwen2 {
    cfg: Config,
    embed_tokens: Tensor, // (vocab, h)
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor, // (vocab, h); the embedding when tied
    lm_head_half: Option<Tensor>,
    /// bf16 copies of the vocabulary projection for training ([`Qwen2::use_bf16_matmuls`]).
    lm_head_bf16: Option<Arc<Bf16Weight>>,
    /// The embedding is tied and released: token rows come from `lm_head_bf16`.
    embed_from_bf16: bool,
    lora: Option<LoraConfig>,
}

fn linear(vb: &VarBuilder, name: &str, out: usize, inp: usize, bias: bool, id: u64) -> Result<Linear> {
    let vb = vb.pp(name);
    let w = vb.get((out, inp), "weight")?;
    let b = if bias { Some(vb.get(out, "bias")?) } else { None };
    Ok(Linear::new(w, b, id))
}

impl Attention {
    fn new(cfg: &Config, vb: &VarBuilder, layer: u64) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let id = |m: u64| layer * 16 + m;
        Ok(Self {
            q_proj: linear(vb, "q_proj", nh * hd, h, true, id(0))?,
            k_proj: linear(vb, "k_proj", nkv * hd, h, true, id(1))?,
            v_proj: linear(vb, "v_proj", nkv * hd, h, true, id(2))?,
            o_proj: linear(vb, "o_proj", h, nh * hd, false, id(3))?,
            n_heads: nh,
            n_kv: nkv,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTable,
        mask: &AttnMask,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        seed: Option<u64>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.n_heads, self.n_kv, self.head_dim);
        let q = self.q_proj.forward(x, seed)?.reshape((b, t, nh, hd))?; // (b, t, nh, hd)
        let k = self.k_proj.forward(x, seed)?.reshape((b, t, nkv, hd))?; // (b, t, nkv, hd)
        let v = self.v_proj.forward(x, seed)?.reshape((b, t, nkv, hd))?;
        let q = ops::rope(&q, rope)?; // (b, nh, t, hd)
        let mut k = ops::rope(&k, rope)?; // (b, nkv, t, hd)
        let mut v = v.transpose(1, 2)?.contiguous()?; // (b, nkv, t, hd)
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?; // (b, nkv, t_k, hd)
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *cache = Some((k.clone(), v.clone()));
        }
        // The heads sharing a KV head are stacked along the query axis: no repeated K/V copies.
        let g = nh / nkv;
        let q = q.reshape((b, nkv, g * t, hd))?; // (b, nkv, g·t, hd)
        let scores = q.matmul(&k.t()?)?; // (b, nkv, g·t, t_k)
        let p = ops::masked_softmax(&scores, mask, 1.0 / (hd as f64).sqrt(), t)?;
        let o = p.matmul(&v)?; // (b, nkv, g·t, hd)
        let o = o.reshape((b, nh, t, hd))?.transpose(1, 2)?.contiguous()?.reshape((b, t, nh * hd))?;
        self.o_proj.forward(&o, seed)
    }
}

impl Mlp {
    fn new(cfg: &Config, vb: &VarBuilder, layer: u64) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let id = |m: u64| layer * 16 + m;
        Ok(Self {
            gate_proj: linear(vb, "gate_proj", i, h, false, id(4))?,
            up_proj: linear(vb, "up_proj", i, h, false, id(5))?,
            down_proj: linear(vb, "down_proj", h, i, false, id(6))?,
        })
    }

    fn forward(&self, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x, seed)?; // (b, t, i)
        let up = self.up_proj.forward(x, seed)?; // (b, t, i)
        let down = &self.down_proj;
        // Training: one op, so `silu(gate)·up` (b, t, i) is not kept for the backward pass.
        if seed.is_some()
            && down.adapter().is_none()
            && down.bias().is_none()
            && fused::swiglu_down_applies(&gate, &down.frozen())
        {
            return fused::swiglu_down(&gate, &up, &down.frozen()); // (b, t, h)
        }
        down.forward(&ops::swiglu(&gate, &up)?, seed) // (b, t, h)
    }
}

impl Block {
    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        let (a, m) = (&mut self.self_attn, &mut self.mlp);
        [
            ("q_proj", &mut a.q_proj),
            ("k_proj", &mut a.k_proj),
            ("v_proj", &mut a.v_proj),
            ("o_proj", &mut a.o_proj),
            ("gate_proj", &mut m.gate_proj),
            ("up_proj", &mut m.up_proj),
            ("down_proj", &mut m.down_proj),
        ]
    }
    fn linears(&self) -> [(&'static str, &Linear); 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            ("q_proj", &a.q_proj),
            ("k_proj", &a.k_proj),
            ("v_proj", &a.v_proj),
            ("o_proj", &a.o_proj),
            ("gate_proj", &m.gate_proj),
            ("up_proj", &m.up_proj),
            ("down_proj", &m.down_proj),
        ]
    }
}

/// Where a module lives in HF's key layout.
pub fn module_path(layer: usize, module: &str) -> String {
    let group = if ["gate_proj", "up_proj", "down_proj"].contains(&module) { "mlp" } else { "self_attn" };
    format!("model.layers.{layer}.{group}.{module}")
}

impl Qwen2 {
    /// Builds the model from HF-named weights; `lora` attaches fresh adapters (A kaiming, B = 0,
    /// seed 0; see [`Qwen2::attach_lora`] to choose the seed).
    pub fn new(cfg: &Config, vb: VarBuilder, lora: Option<&LoraConfig>) -> Result<Self> {
        if !cfg.num_attention_heads.is_multiple_of(cfg.num_key_value_heads)
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(Error::msg(format!(
                "config: hidden_size {} / num_attention_heads {} / num_key_value_heads {} do not divide evenly",
                cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
            )));
        }
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = vb.get((v, h), "model.embed_tokens.weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|l| {
                let vb = vb.pp(format!("model.layers.{l}"));
                Ok(Block {
                    self_attn: Attention::new(cfg, &vb.pp("self_attn"), l as u64)?,
                    mlp: Mlp::new(cfg, &vb.pp("mlp"), l as u64)?,
                    input_layernorm: vb.get(h, "input_layernorm.weight")?,
                    post_attention_layernorm: vb.get(h, "post_attention_layernorm.weight")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = vb.get(h, "model.norm.weight")?;
        let lm_head =
            if vb.contains_tensor("lm_head.weight") { vb.get((v, h), "lm_head.weight")? } else { embed_tokens.clone() };
        let mut model = Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            lm_head_half: None,
            lm_head_bf16: None,
            embed_from_bf16: false,
            lora: None,
        };
        if let Some(l) = lora {
            model.attach_lora(l, 0)?;
        }
        Ok(model)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }
    /// The adapter's configuration, when one is attached.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Attaches fresh adapters to the target modules of every layer, initialised from `seed`.
    pub fn attach_lora(&mut self, cfg: &LoraConfig, seed: u64) -> Result<()> {
        cfg.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        for block in &mut self.layers {
            for (name, lin) in block.linears_mut() {
                if cfg.target_modules.iter().any(|m| m == name) {
                    lin.attach(cfg, &mut rng)?;
                }
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// Installs adapter tensors keyed by (layer, module): used by adapter loading.
    pub(crate) fn set_adapters(
        &mut self,
        cfg: &LoraConfig,
        mut tensors: impl FnMut(usize, &str) -> Option<(Tensor, Tensor)>,
    ) -> Result<()> {
        cfg.validate()?;
        for (l, block) in self.layers.iter_mut().enumerate() {
            for (name, lin) in block.linears_mut() {
                lin.adapter = None;
                if let Some((a, b)) = tensors(l, name) {
                    lin.set_adapter(a, b, cfg).map_err(|e| Error::msg(format!("{}: {e}", module_path(l, name))))?;
                }
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// The adapter's trainable variables with their PEFT key names, sorted by name.
    pub fn lora_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (l, block) in self.layers.iter().enumerate() {
            for (name, lin) in block.linears() {
                if let Some(ad) = lin.adapter() {
                    let p = format!("base_model.model.{}", module_path(l, name));
                    out.push((format!("{p}.lora_A.weight"), ad.a.clone()));
                    out.push((format!("{p}.lora_B.weight"), ad.b.clone()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Folds every adapter into its base weight (for fast inference and export).
    pub fn merge_lora(&mut self) -> Result<()> {
        for block in &mut self.layers {
            for (_, lin) in block.linears_mut() {
                lin.merge()?;
            }
        }
        self.lora = None;
        Ok(())
    }

    /// Decoding steps read f16 copies of the projection and vocabulary weights (f32 CPU models):
    /// decoding is bound by reading the weights, so this nearly doubles tokens/s, at f16's
    /// rounding of the weights (logits move by ~1e-3). Inference only: merge adapters first.
    pub fn use_half_weights_for_decoding(&mut self) -> Result<()> {
        if self.lora.is_some() {
            return Err(Error::msg("use_half_weights_for_decoding: merge the adapter first"));
        }
        if self.uses_bf16_matmuls() {
            return Err(Error::msg("use_half_weights_for_decoding: the f32 weights were released for bf16 training"));
        }
        for block in &mut self.layers {
            for (_, lin) in block.linears_mut() {
                lin.keep_half_copy()?;
            }
        }
        if self.lm_head.dtype() == DType::F32 && self.lm_head.device().is_cpu() {
            self.lm_head_half = Some(self.lm_head.to_dtype(DType::F16)?);
        }
        Ok(())
    }

    /// Training in mixed precision: every frozen projection and the vocabulary projection multiply
    /// in bf16 with f32 sums ([`crate::bf16`]), about twice the f32 rate on CPUs with
    /// AVX512-BF16. The f32 weights are released — a tied embedding too, its rows then read
    /// (bf16-rounded) from the vocabulary projection's copy — so afterwards every forward runs
    /// through the bf16 products, and the model can no longer merge, export its weights or keep
    /// f16 decoding copies (those calls return errors). Fails, changing nothing, on other CPUs or
    /// for non-f32 models; check [`crate::bf16::available`] first.
    pub fn use_bf16_matmuls(&mut self) -> Result<()> {
        if !crate::bf16::available() {
            return Err(Error::msg("bf16 matmuls need a CPU with AVX512-BF16 (AMD Zen 4+, Intel Sapphire Rapids+)"));
        }
        if self.dtype() != DType::F32 || !self.device().is_cpu() {
            return Err(Error::msg(format!("bf16 matmuls need an f32 model on the CPU, not {:?}", self.dtype())));
        }
        let (v, h) = self.lm_head.dims2()?;
        // Packed straight from the weight's storage: a copy would add its size to the peak.
        let head = crate::fused::with_data::<f32, _>(&self.lm_head.contiguous()?, |w| {
            Bf16Weight::new(w, v, h).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })?;
        self.lm_head_bf16 = Some(Arc::new(head));
        self.lm_head_half = None;
        // Same shape, dtype and device, no data.
        let placeholder = Tensor::zeros((), DType::F32, self.device())?.broadcast_as((v, h))?;
        if self.lm_head.id() == self.embed_tokens.id() {
            self.embed_tokens = placeholder.clone();
            self.embed_from_bf16 = true;
        }
        self.lm_head = placeholder;
        for block in &mut self.layers {
            for (_, lin) in block.linears_mut() {
                lin.use_bf16()?;
            }
        }
        Ok(())
    }

    /// Whether [`Qwen2::use_bf16_matmuls`] is in effect.
    pub fn uses_bf16_matmuls(&self) -> bool {
        self.lm_head_bf16.is_some()
    }

    /// Every base tensor under its HF name (after a merge, the merged weights). An error after
    /// [`Qwen2::use_bf16_matmuls`], which released them.
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        if self.uses_bf16_matmuls() {
            return Err(Error::msg("named_weights: the f32 weights were released for bf16 training"));
        }
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed_tokens.clone())];
        for (l, block) in self.layers.iter().enumerate() {
            for (name, lin) in block.linears() {
                let p = module_path(l, name);
                out.push((format!("{p}.weight"), lin.weight().clone()));
                if let Some(b) = lin.bias() {
                    out.push((format!("{p}.bias"), b.clone()));
                }
            }
            out.push((format!("model.layers.{l}.input_layernorm.weight"), block.input_layernorm.clone()));
            out.push((
                format!("model.layers.{l}.post_attention_layernorm.weight"),
                block.post_attention_layernorm.clone(),
            ));
        }
        out.push(("model.norm.weight".into(), self.norm.clone()));
        if !self.cfg.tie_word_embeddings {
            out.push(("lm_head.weight".into(), self.lm_head.clone()));
        }
        Ok(out)
    }

    /// ids (b, t) u32, attention_mask (b, t) u32 (1 = token, 0 = padding) → hidden (b, t, h)
    /// after the final norm. Positions count real tokens only, so left-padded rows match
    /// unpadded ones.
    pub fn forward_hidden(&self, ids: &Tensor, attention_mask: &Tensor, mode: Mode) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let valid: Vec<u8> = attention_mask
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .map(|&m| (m != 0) as u8)
            .collect();
        if valid.len() != b * t {
            return Err(Error::msg(format!("attention_mask has {} entries for ids of shape ({b}, {t})", valid.len())));
        }
        let positions = positions_from_mask(&valid, b, t, &vec![0; b]);
        self.forward_with(ids, &positions, AttnMask::new(valid, t), None, mode)
    }

    /// One step of cached decoding: `ids (b, t_new)` at `positions` (b·t_new), `key_valid`
    /// (b, t_cached + t_new) marks real tokens; appends to `cache`.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &[u32],
        key_valid: Vec<u8>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let t_k = cache.len() + ids.dim(1)?;
        self.forward_with(ids, positions, AttnMask::new(key_valid, t_k), Some(cache), Mode::Eval)
    }

    fn forward_with(
        &self,
        ids: &Tensor,
        positions: &[u32],
        mask: AttnMask,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        let rope = RopeTable::new(positions, self.cfg.head_dim(), self.cfg.rope_theta);
        let mut x = self.embed(ids)?; // (b, t, h)
        if let Some(c) = cache.as_deref_mut() {
            c.layers.resize_with(self.layers.len(), || None);
        }
        let seed = mode.seed();
        let eps = self.cfg.rms_norm_eps;
        for (l, block) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            let a = block.self_attn.forward(
                &ops::rms_norm(&x, &block.input_layernorm, eps)?,
                &rope,
                &mask,
                layer_cache,
                seed,
            )?;
            x = (x + a)?;
            let m = block.mlp.forward(&ops::rms_norm(&x, &block.post_attention_layernorm, eps)?, seed)?;
            x = (x + m)?;
        }
        ops::rms_norm(&x, &self.norm, eps)
    }

    /// Token embeddings: ids (b, t) → (b, t, h).
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.cfg.hidden_size;
        match &self.lm_head_bf16 {
            Some(head) if self.embed_from_bf16 => {
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let vocab = self.cfg.vocab_size;
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(Error::msg(format!("token id {bad} is outside the vocabulary of {vocab}")));
                }
                let mut x = vec![0f32; ids.len() * h];
                x.par_chunks_mut(h).zip(ids.par_iter()).for_each(|(row, &id)| head.row_into(id as usize, row));
                Ok(Tensor::from_vec(x, (b, t, h), self.device())?)
            }
            _ => Ok(self.embed_tokens.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, h))?),
        }
    }

    /// hidden (n, h) → logits (n, vocab), in f32 (f64 for an f64 model). Call it only on the rows
    /// you need: the vocabulary projection is the largest matmul per token.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let hidden = if hidden.rank() == 1 { hidden.unsqueeze(0)? } else { hidden.clone() };
        let head = match &self.lm_head_bf16 {
            Some(p) => Frozen::Bf16(p.clone()),
            None => Frozen::Dense(self.lm_head.clone()),
        };
        let logits = ops::linear_frozen(&hidden, &head, self.lm_head_half.as_ref(), None)?;
        Ok(if logits.dtype() == DType::F64 { logits } else { logits.to_dtype(DType::F32)? })
    }

    /// Last real position of each row's hidden state → logits (b, vocab).
    pub fn last_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (_, t, _) = hidden.dims3()?;
        self.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

/// Position of each token: the number of real tokens before it in its row, counting `start[b]`
/// tokens already in the cache. Padding gets the next position; it is masked anyway.
pub(crate) fn positions_from_mask(valid: &[u8], b: usize, t: usize, start: &[u32]) -> Vec<u32> {
    let mut pos = Vec::with_capacity(b * t);
    for (row, &s) in valid.chunks(t).zip(start).take(b) {
        let mut n = s;
        for &v in row {
            pos.push(n);
            n += u32::from(v != 0);
        }
    }
    pos
}
