//! The Qwen2 decoder (Qwen2 technical report, arXiv:2407.10671; HF `modeling_qwen2.py`;
//! candle-transformers' `models/qwen2.rs`).
//!
//! Pre-norm decoder blocks: `h = x + Attn(RMSNorm(x))`, `y = h + MLP(RMSNorm(h))`, with
//! grouped-query attention (q/k/v biases, rotary embeddings) and a SwiGLU MLP. Unlike
//! candle-transformers' inference model, the forward keeps every position (training needs them),
//! the KV cache ([`KvCache`]) is passed in rather than kept inside, and every projection is a
//! [`Linear`] that may carry a LoRA adapter. The hyper-parameters are [`Config`]; field names
//! and `vb.pp(..)` paths are the checkpoint's key names.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use crate::frozen::Frozen;
pub use crate::kv_cache::KvCache;
use crate::lora::{Linear, LoraConfig};
use crate::ops::{self, AttnMask, RopeTable};
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

fn linear(vb: &VarBuilder, name: &str, out: usize, inp: usize, bias: bool, id: u64) -> Result<Linear> {
    let vb = vb.pp(name);
    let w = vb.get((out, inp), "weight")?;
    let b = if bias { Some(vb.get(out, "bias")?) } else { None };
    Ok(Linear::new(w, b, id))
}

struct Attention {
    q_proj: Linear, // (nh·hd, h), with bias
    k_proj: Linear, // (nkv·hd, h), with bias
    v_proj: Linear, // (nkv·hd, h), with bias
    o_proj: Linear, // (h, nh·hd)
    n_heads: usize,
    n_kv: usize,
    head_dim: usize,
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

    /// x (b, t, h) → (b, t, h). With a cache, keys and values of earlier steps are prepended and
    /// the cache then holds this step's too.
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
        let v = self.v_proj.forward(x, seed)?.reshape((b, t, nkv, hd))?; // (b, t, nkv, hd)
        let q = ops::rope(&q, rope)?; // (b, nh, t, hd)
        let mut k = ops::rope(&k, rope)?; // (b, nkv, t, hd)
        let mut v = v.transpose(1, 2)?.contiguous()?; // (b, nkv, t, hd)
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?; // (b, nkv, t_k, hd)
                v = Tensor::cat(&[pv, &v], 2)?; // (b, nkv, t_k, hd)
            }
            *cache = Some((k.clone(), v.clone()));
        }
        // The heads sharing a KV head are stacked along the query axis: no repeated K/V copies.
        let g = nh / nkv;
        let q = q.reshape((b, nkv, g * t, hd))?; // (b, nkv, g·t, hd)
        let scores = q.matmul(&k.t()?)?; // (b, nkv, g·t, t_k)
        let p = ops::masked_softmax(&scores, mask, 1.0 / (hd as f64).sqrt(), t)?; // (b, nkv, g·t, t_k)
        let o = p.matmul(&v)?; // (b, nkv, g·t, hd)
        let o = o.reshape((b, nh, t, hd))?.transpose(1, 2)?.contiguous()?.reshape((b, t, nh * hd))?; // (b, t, nh·hd)
        self.o_proj.forward(&o, seed) // (b, t, h)
    }
}

struct Mlp {
    gate_proj: Linear, // (i, h)
    up_proj: Linear,   // (i, h)
    down_proj: Linear, // (h, i)
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

    /// x (b, t, h) → (b, t, h).
    fn forward(&self, x: &Tensor, seed: Option<u64>) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x, seed)?; // (b, t, i)
        let up = self.up_proj.forward(x, seed)?; // (b, t, i)
        let down = &self.down_proj;
        // Training: one op, so `silu(gate)·up` (b, t, i) is not kept for the backward pass.
        if seed.is_some()
            && down.adapter().is_none()
            && down.bias().is_none()
            && ops::swiglu_down_applies(&gate, down.frozen())
        {
            return ops::swiglu_down(&gate, &up, down.frozen()); // (b, t, h)
        }
        down.forward(&ops::swiglu(&gate, &up)?, seed) // (b, t, h)
    }
}

struct Block {
    self_attn: Attention,
    mlp: Mlp,
    input_layernorm: Tensor,          // (h,)
    post_attention_layernorm: Tensor, // (h,)
}

impl Block {
    fn new(cfg: &Config, vb: &VarBuilder, layer: u64) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            self_attn: Attention::new(cfg, &vb.pp("self_attn"), layer)?,
            mlp: Mlp::new(cfg, &vb.pp("mlp"), layer)?,
            input_layernorm: vb.get(h, "input_layernorm.weight")?,
            post_attention_layernorm: vb.get(h, "post_attention_layernorm.weight")?,
        })
    }

    /// x (b, t, h) → (b, t, h).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: Tensor,
        rope: &RopeTable,
        mask: &AttnMask,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        seed: Option<u64>,
        eps: f64,
    ) -> Result<Tensor> {
        let a = self.self_attn.forward(&ops::rms_norm(&x, &self.input_layernorm, eps)?, rope, mask, cache, seed)?;
        let x = (x + a)?; // (b, t, h)
        let m = self.mlp.forward(&ops::rms_norm(&x, &self.post_attention_layernorm, eps)?, seed)?;
        Ok((x + m)?) // (b, t, h)
    }

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

/// Qwen2 causal language model.
pub struct Qwen2 {
    cfg: Config,
    /// (vocab, h). `None` when it is tied to `lm_head` and was released for bf16 training: token
    /// rows then come (bf16-rounded) from `lm_head`'s packing.
    embed_tokens: Option<Tensor>,
    layers: Vec<Block>,
    norm: Tensor,    // (h,)
    lm_head: Frozen, // (vocab, h); the embedding when tied
    lora: Option<LoraConfig>,
    dtype: DType,
    device: Device,
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
            .map(|l| Block::new(cfg, &vb.pp(format!("model.layers.{l}")), l as u64))
            .collect::<Result<Vec<_>>>()?;
        let norm = vb.get(h, "model.norm.weight")?;
        let lm_head =
            if vb.contains_tensor("lm_head.weight") { vb.get((v, h), "lm_head.weight")? } else { embed_tokens.clone() };
        let mut model = Self {
            cfg: cfg.clone(),
            dtype: embed_tokens.dtype(),
            device: embed_tokens.device().clone(),
            embed_tokens: Some(embed_tokens),
            layers,
            norm,
            lm_head: Frozen::Dense(lm_head),
            lora: None,
        };
        if let Some(l) = lora {
            model.attach_lora(l, 0)?;
        }
        Ok(model)
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

    /// ids (b, t) at `positions` (b·t) → hidden (b, t, h) after the final norm.
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
            c.resize(self.layers.len());
        }
        let seed = mode.seed();
        let eps = self.cfg.rms_norm_eps;
        for (l, block) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer_mut(l));
            x = block.forward(x, &rope, &mask, layer_cache, seed, eps)?; // (b, t, h)
        }
        ops::rms_norm(&x, &self.norm, eps) // (b, t, h)
    }

    /// Token embeddings: ids (b, t) → (b, t, h).
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.cfg.hidden_size;
        match (&self.embed_tokens, &self.lm_head) {
            (Some(embed), _) => Ok(embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, h))?),
            (None, Frozen::Bf16(head)) => {
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let vocab = self.cfg.vocab_size;
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(Error::msg(format!("token id {bad} is outside the vocabulary of {vocab}")));
                }
                let mut x = vec![0f32; ids.len() * h]; // (b·t, h)
                x.par_chunks_mut(h).zip(ids.par_iter()).for_each(|(row, &id)| head.row_into(id as usize, row));
                Ok(Tensor::from_vec(x, (b, t, h), &self.device)?)
            }
            (None, _) => Err(Error::msg("internal: the embedding was released but the head is not packed")),
        }
    }

    /// hidden (n, h) → logits (n, vocab), in f32 (f64 for an f64 model). Call it only on the rows
    /// you need: the vocabulary projection is the largest matmul per token.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let hidden = if hidden.rank() == 1 { hidden.unsqueeze(0)? } else { hidden.clone() };
        let logits = ops::linear(&hidden, &self.lm_head, None)?; // (n, vocab)
        Ok(if logits.dtype() == DType::F64 { logits } else { logits.to_dtype(DType::F32)? })
    }

    /// Last real position of each row's hidden state (b, t, h) → logits (b, vocab).
    pub fn last_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (_, t, _) = hidden.dims3()?;
        self.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
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
    /// decoding is bound by reading the weights, so halving the bytes read speeds it up, at
    /// f16's rounding of the weights. Inference only: merge adapters first.
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
        self.lm_head = self.lm_head.clone().with_half_copy("use_half_weights_for_decoding")?;
        Ok(())
    }

    /// Training in mixed precision: every frozen projection and the vocabulary projection multiply
    /// in bf16 with f32 sums ([`crate::bf16`]), twice the multiply-adds per instruction of f32 on
    /// CPUs with AVX512-BF16. The f32 weights are released — a tied embedding too, its rows then read
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
        let tied = match (self.lm_head.dense(), &self.embed_tokens) {
            (Some(head), Some(embed)) => head.id() == embed.id(),
            _ => false,
        };
        self.lm_head = self.lm_head.to_bf16()?;
        if tied {
            self.embed_tokens = None;
        }
        for block in &mut self.layers {
            for (_, lin) in block.linears_mut() {
                lin.use_bf16()?;
            }
        }
        Ok(())
    }

    /// Whether [`Qwen2::use_bf16_matmuls`] is in effect.
    pub fn uses_bf16_matmuls(&self) -> bool {
        matches!(self.lm_head, Frozen::Bf16(_))
    }

    /// Every base tensor under its HF name (after a merge, the merged weights). An error after
    /// [`Qwen2::use_bf16_matmuls`], which released them.
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let released = || Error::msg("named_weights: the f32 weights were released for bf16 training");
        if self.uses_bf16_matmuls() {
            return Err(released());
        }
        let embed = self.embed_tokens.as_ref().ok_or_else(released)?;
        let mut out = vec![("model.embed_tokens.weight".to_string(), embed.clone())];
        for (l, block) in self.layers.iter().enumerate() {
            for (name, lin) in block.linears() {
                let p = module_path(l, name);
                out.push((format!("{p}.weight"), lin.weight().ok_or_else(released)?.clone()));
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
            out.push(("lm_head.weight".into(), self.lm_head.dense().ok_or_else(released)?.clone()));
        }
        Ok(out)
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
