//! LoRA: low-rank adapters on frozen projections (Hu et al., 2021, arXiv:2106.09685).
//!
//! `y = x·Wᵀ + b + scale · dropout(x)·Aᵀ·Bᵀ`, with `A (r, in)` kaiming-uniform and `B (out, r)`
//! zero at the start, so an untrained adapter changes nothing; `scale = alpha / r`
//! (`alpha / √r` with rsLoRA). Only `A` and `B` are [`Var`]s; the base weight stays a plain tensor
//! and gets no gradient. Training runs each adapted projection as one [`fused::lora_linear`] op,
//! which regenerates its dropout mask in the backward pass instead of keeping it; elsewhere the
//! base goes through [`ops::linear`] and the low-rank term is added with candle primitives.

use std::sync::Arc;

use candle_core::{D, DType, Tensor, Var};
use rand::{Rng, rngs::StdRng};

use crate::ops::Frozen;
use crate::{Error, Result, bf16, fused, ops};

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
    pub(crate) w: Tensor,
    pub(crate) b: Option<Tensor>,
    pub(crate) adapter: Option<Adapter>,
    /// f16 copy of `w` for decoding steps ([`Linear::keep_half_copy`]).
    pub(crate) w_half: Option<Tensor>,
    /// Distinguishes this layer's dropout masks from every other layer's.
    pub(crate) id: u64,
    /// bf16 copies for training ([`Linear::use_bf16`]); `w` is then a placeholder.
    pub(crate) packed: Option<Arc<bf16::Bf16Weight>>,
}

impl Linear {
    pub fn new(w: Tensor, b: Option<Tensor>, id: u64) -> Self {
        Self { w, b, adapter: None, w_half: None, id, packed: None }
    }

    /// The frozen weight as the kernels take it: the bf16 copies when there are.
    pub fn frozen(&self) -> Frozen {
        match &self.packed {
            Some(p) => Frozen::Bf16(p.clone()),
            None => Frozen::Dense(self.w.clone()),
        }
    }

    /// Training with bf16 products: packs the (f32, CPU) weight ([`bf16::Bf16Weight`]) and
    /// releases the f32 copy, so the layer can no longer be merged, exported or decoded with.
    pub fn use_bf16(&mut self) -> Result<()> {
        if self.packed.is_some() {
            return Ok(());
        }
        if self.w.dtype() != DType::F32 || !self.w.device().is_cpu() {
            return Err(Error::msg(format!(
                "bf16 matmuls need f32 weights on the CPU, not {:?} on {:?}",
                self.w.dtype(),
                self.w.device()
            )));
        }
        let (out, inp) = self.w.dims2()?;
        let packed = fused::with_data::<f32, _>(&self.w.contiguous()?, |w| {
            bf16::Bf16Weight::new(w, out, inp).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })?;
        self.packed = Some(Arc::new(packed));
        // Same shape, dtype and device, no data: a zero broadcast.
        self.w = Tensor::zeros((), DType::F32, self.w.device())?.broadcast_as((out, inp))?;
        self.w_half = None;
        Ok(())
    }

    fn check_dense(&self, what: &str) -> Result<()> {
        match self.packed {
            Some(_) => Err(Error::msg(format!("{what}: the f32 weight was released for bf16 training"))),
            None => Ok(()),
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.w
    }
    pub fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }
    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// The dtype adapters use: f64 when the base is f64 (gradient checks), else f32.
    fn adapter_dtype(&self) -> DType {
        if self.w.dtype() == DType::F64 { DType::F64 } else { DType::F32 }
    }

    /// Attaches a fresh adapter: A ~ kaiming-uniform(a = √5) = U(±1/√in), B = 0, as PEFT does.
    pub fn attach(&mut self, cfg: &LoraConfig, rng: &mut StdRng) -> Result<()> {
        self.w_half = None; // training reads the f32 weights
        let (out, inp) = self.w.dims2()?;
        let bound = 1.0 / (inp as f64).sqrt();
        let a: Vec<f64> = (0..cfg.r * inp).map(|_| rng.random_range(-bound..bound)).collect();
        let dt = self.adapter_dtype();
        let a = Tensor::from_vec(a, (cfg.r, inp), self.w.device())?.to_dtype(dt)?;
        let b = Tensor::zeros((out, cfg.r), dt, self.w.device())?;
        self.set_adapter(a, b, cfg)
    }

    /// Installs given A (r, in) and B (out, r), checking their shapes against the weight.
    pub fn set_adapter(&mut self, a: Tensor, b: Tensor, cfg: &LoraConfig) -> Result<()> {
        self.w_half = None;
        let (out, inp) = self.w.dims2()?;
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
        self.adapter = Some(Adapter {
            a: Var::from_tensor(&a.to_dtype(dt)?.to_device(self.w.device())?)?,
            b: Var::from_tensor(&b.to_dtype(dt)?.to_device(self.w.device())?)?,
            scale: cfg.scale(),
            dropout: cfg.lora_dropout,
        });
        Ok(())
    }

    /// `x (…, in) → (…, out)`. `dropout_seed` is `Some` in training mode.
    pub fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Tensor> {
        let frozen = self.frozen();
        let Some(ad) = &self.adapter else {
            return ops::linear_frozen(x, &frozen, self.w_half.as_ref(), self.b.as_ref());
        };
        // Training: one op that keeps no mask and no masked copy of x for the backward pass.
        let dropout = match dropout_seed {
            Some(seed) if ad.dropout > 0.0 => Some((ad.dropout, seed ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
            _ => None,
        };
        if dropout_seed.is_some() && fused::lora_linear_applies(x, &frozen, &ad.a) {
            let (p, seed) = dropout.unwrap_or((0.0, 0));
            return fused::lora_linear(x, &frozen, self.b.as_ref(), &ad.a, &ad.b, ad.scale, p, seed);
        }
        let y = ops::linear_frozen(x, &frozen, self.w_half.as_ref(), self.b.as_ref())?;
        let in_dim = x.dim(D::Minus1)?;
        let m = x.elem_count() / in_dim;
        let mut h = x.reshape((m, in_dim))?.to_dtype(ad.a.dtype())?; // (m, in)
        if let Some(d) = dropout.and_then(|(p, seed)| fused::Dropout::new(p, seed)) {
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
        self.check_dense("keep_half_copy")?;
        if self.w.dtype() == DType::F32 && self.w.device().is_cpu() {
            self.w_half = Some(self.w.to_dtype(DType::F16)?);
        }
        Ok(())
    }

    /// Folds the adapter into the weight, `W ← W + scale·B·A`, and drops it.
    pub fn merge(&mut self) -> Result<()> {
        self.check_dense("merge")?;
        if let Some(ad) = self.adapter.take() {
            self.w_half = None;
            // Detached: A and B are variables, so ops on them record a backprop graph, and the
            // merged weight would keep the old weight, B·A and the scaled delta alive through it.
            let (a, b) = (ad.a.as_tensor().detach(), ad.b.as_tensor().detach());
            let delta = (b.matmul(&a)? * ad.scale)?; // (out, in)
            self.w = (self.w.to_dtype(delta.dtype())? + delta)?.to_dtype(self.w.dtype())?;
        }
        Ok(())
    }
}
