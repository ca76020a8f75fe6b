//! LoRA: low-rank adapters on frozen projections (Hu et al., 2021, arXiv:2106.09685).
//!
//! `y = x·Wᵀ + b + scale · dropout(x)·Aᵀ·Bᵀ`, with `A (r, in)` kaiming-uniform and `B (out, r)`
//! zero at the start, so an untrained adapter changes nothing; `scale = alpha / r`
//! (`alpha / √r` with rsLoRA). Only `A` and `B` are [`Var`]s; the base weight stays a plain tensor
//! and gets no gradient. Training runs each adapted projection as one [`ops::lora_linear`] op,
//! which regenerates its dropout mask in the backward pass instead of keeping it; elsewhere the
//! base goes through [`ops::linear`] and the low-rank term is added with candle primitives.
//! [`merge_weight`] folds an adapter into its weight, for every caller that merges.

use candle_core::{D, DType, Tensor, Var};
use rand::{Rng, rngs::StdRng};

use crate::frozen::Frozen;
use crate::kernels::dropout::Dropout;
use crate::{Error, Result, ops};

pub use crate::lora_config::{LoraConfig, MODULES};

/// The trainable part of one projection.
pub struct Adapter {
    /// (r, in)
    pub a: Var,
    /// (out, r)
    pub b: Var,
    pub scale: f64,
    pub dropout: f64,
}

/// A projection: frozen weight (out, in), optional bias, optional adapter.
pub struct Linear {
    pub(crate) w: Frozen,
    pub(crate) b: Option<Tensor>,
    pub(crate) adapter: Option<Adapter>,
    /// Distinguishes this layer's dropout masks from every other layer's.
    pub(crate) id: u64,
}

impl Linear {
    pub fn new(w: Tensor, b: Option<Tensor>, id: u64) -> Self {
        Self { w: Frozen::Dense(w), b, adapter: None, id }
    }

    /// The frozen weight as the kernels take it.
    pub fn frozen(&self) -> &Frozen {
        &self.w
    }

    /// Training with bf16 products: packs the (f32, CPU) weight ([`crate::bf16::Bf16Weight`])
    /// and releases the f32 copy, so the layer can no longer be merged, exported or decoded with.
    pub fn use_bf16(&mut self) -> Result<()> {
        self.w = self.w.to_bf16()?;
        Ok(())
    }

    fn check_dense(&self, what: &str) -> Result<()> {
        match self.w {
            Frozen::Bf16(_) => Err(Error::msg(format!("{what}: the f32 weight was released for bf16 training"))),
            _ => Ok(()),
        }
    }

    /// The full-precision weight; `None` once released for bf16 training.
    pub fn weight(&self) -> Option<&Tensor> {
        self.w.dense()
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }
    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// The dtype adapters use: f64 when the base is f64 (gradient checks), else f32.
    fn adapter_dtype(&self) -> DType {
        adapter_dtype(self.w.dtype())
    }

    /// Training and merging read the full-precision weight: drops an f16 decoding copy.
    fn drop_half_copy(&mut self) {
        if let Frozen::DenseHalf { w, .. } = &self.w {
            self.w = Frozen::Dense(w.clone());
        }
    }

    /// Attaches a fresh adapter: A ~ kaiming-uniform(a = √5) = U(±1/√in), B = 0, as PEFT does.
    pub fn attach(&mut self, cfg: &LoraConfig, rng: &mut StdRng) -> Result<()> {
        self.drop_half_copy();
        let (out, inp) = self.w.dims()?;
        let bound = 1.0 / (inp as f64).sqrt();
        let a: Vec<f64> = (0..cfg.r * inp).map(|_| rng.random_range(-bound..bound)).collect();
        let dt = self.adapter_dtype();
        let dev = self.w.device();
        let a = Tensor::from_vec(a, (cfg.r, inp), &dev)?.to_dtype(dt)?;
        let b = Tensor::zeros((out, cfg.r), dt, &dev)?;
        self.set_adapter(a, b, cfg)
    }

    /// Installs given A (r, in) and B (out, r), checking their shapes against the weight.
    pub fn set_adapter(&mut self, a: Tensor, b: Tensor, cfg: &LoraConfig) -> Result<()> {
        self.drop_half_copy();
        let (out, inp) = self.w.dims()?;
        if a.dims() != [cfg.r, inp] || b.dims() != [out, cfg.r] {
            return Err(Error::msg(format!(
                "adapter shapes A {:?} / B {:?} do not fit a ({out}, {inp}) weight with rank {}: expected A [{}, {inp}] and B [{out}, {}]",
                a.dims(),
                b.dims(),
                cfg.r,
                cfg.r,
                cfg.r
            )));
        }
        let dt = self.adapter_dtype();
        let dev = self.w.device();
        self.adapter = Some(Adapter {
            a: Var::from_tensor(&a.to_dtype(dt)?.to_device(&dev)?)?,
            b: Var::from_tensor(&b.to_dtype(dt)?.to_device(&dev)?)?,
            scale: cfg.scale(),
            dropout: cfg.lora_dropout,
        });
        Ok(())
    }

    /// `x (…, in) → (…, out)`. `dropout_seed` is `Some` in training mode.
    pub fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Tensor> {
        let Some(ad) = &self.adapter else {
            return ops::linear(x, &self.w, self.b.as_ref());
        };
        // Training: one op that keeps no mask and no masked copy of x for the backward pass.
        let dropout = match dropout_seed {
            Some(seed) if ad.dropout > 0.0 => Some((ad.dropout, seed ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
            _ => None,
        };
        if dropout_seed.is_some() && ops::lora_linear_applies(x, &self.w, &ad.a) {
            let (p, seed) = dropout.unwrap_or((0.0, 0));
            return ops::lora_linear(x, &self.w, self.b.as_ref(), &ad.a, &ad.b, ad.scale, p, seed);
        }
        let y = ops::linear(x, &self.w, self.b.as_ref())?;
        let in_dim = x.dim(D::Minus1)?;
        let m = x.elem_count() / in_dim;
        let mut h = x.reshape((m, in_dim))?.to_dtype(ad.a.dtype())?; // (m, in)
        if let Some(d) = dropout.and_then(|(p, seed)| Dropout::new(p, seed)) {
            let mask = match h.dtype() {
                DType::F64 => Tensor::from_vec(d.scales::<f64>(m * in_dim), (m, in_dim), h.device())?,
                _ => Tensor::from_vec(d.scales::<f32>(m * in_dim), (m, in_dim), h.device())?.to_dtype(h.dtype())?,
            };
            h = (h * mask)?;
        }
        let delta = h.matmul(&ad.a.t()?)?.matmul(&ad.b.t()?)?; // (m, r) → (m, out)
        let delta = (delta * ad.scale)?.to_dtype(y.dtype())?.reshape(y.shape())?;
        Ok((y + delta)?)
    }

    /// Keeps an f16 copy of the (f32, CPU) weight for decoding steps: half the bytes per token,
    /// at f16's rounding of the weights. Inference only; merge adapters first.
    pub fn keep_half_copy(&mut self) -> Result<()> {
        self.w = self.w.clone().with_half_copy("keep_half_copy")?;
        Ok(())
    }

    /// Folds the adapter into the weight, `W ← W + scale·B·A` ([`merge_weight`]), and drops it.
    pub fn merge(&mut self) -> Result<()> {
        self.check_dense("merge")?;
        if let Some(ad) = self.adapter.take() {
            let w = self.w.dense().expect("checked above");
            let merged = merge_weight(w, ad.a.as_tensor(), ad.b.as_tensor(), ad.scale)?;
            self.w = Frozen::Dense(merged.weight);
        }
        Ok(())
    }
}

/// The dtype of the adapter factors and the merge for a base weight of `dtype`: f64 for an f64
/// base (gradient checks), else f32.
fn adapter_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 { DType::F64 } else { DType::F32 }
}

/// A weight with its adapter folded in.
pub struct MergedWeight {
    /// `W + scale·B·A (out, in)`, in `W`'s dtype.
    pub weight: Tensor,
    /// `scale·B·A (out, in)`, in f32 (f64 for an f64 base).
    pub delta: Tensor,
}

/// `W (out, in) + scale · B (out, r) · A (r, in)`: the one merge, used by the model
/// ([`Linear::merge`]), the merged HF export and the merged GGUF export, so merged weights are
/// the same bits everywhere. The product and sum run in f32 (f64 for an f64 base) whatever the
/// factors' dtype; the sum is rounded back to `W`'s dtype. `A` and `B` are detached first:
/// variables would record a backprop graph that keeps the old weight and the delta alive.
pub fn merge_weight(w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<MergedWeight> {
    let dt = adapter_dtype(w.dtype());
    let (a, b) = (a.detach().to_dtype(dt)?, b.detach().to_dtype(dt)?);
    let delta = (b.matmul(&a)? * scale)?; // (out, r)·(r, in) → (out, in)
    let weight = (w.to_dtype(dt)? + &delta)?.to_dtype(w.dtype())?;
    Ok(MergedWeight { weight, delta })
}
