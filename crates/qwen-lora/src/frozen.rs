//! A frozen weight `W (out, in)` in the precision forms the kernels read: one type for every
//! projection and the vocabulary projection, instead of optional copies beside a tensor.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::kernels::bf16::Bf16Weight;
use crate::kernels::elem::{CResult, Elem, use_kernels, with_data};
use crate::kernels::gemm::{gemm_into, rows, transposed};
use crate::{Error, Result};

/// A frozen weight `W (out, in)`.
#[derive(Clone, Debug)]
pub enum Frozen {
    /// f32 or f64, on any device.
    Dense(Tensor),
    /// An f32 CPU weight with an f16 copy (same shape) that inputs of at most
    /// [`crate::kernels::gemv::MAX_ROWS`] rows — decoding steps — read, moving half the bytes;
    /// larger inputs (prefill) use the f32 weight ([`Frozen::with_half_copy`]).
    DenseHalf { w: Tensor, half: Tensor },
    /// Packed bf16 for the training step's products ([`crate::bf16`]); the f32 weight is
    /// released, so it can no longer be merged, exported or decoded with ([`Frozen::to_bf16`]).
    Bf16(Arc<Bf16Weight>),
}

impl Frozen {
    /// `(out, in)`.
    pub fn dims(&self) -> CResult<(usize, usize)> {
        match self {
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => w.dims2(),
            Frozen::Bf16(p) => Ok(p.dims()),
        }
    }

    /// The full-precision weight, unless it was released for bf16 products.
    pub fn dense(&self) -> Option<&Tensor> {
        match self {
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => Some(w),
            Frozen::Bf16(_) => None,
        }
    }

    /// The dtype inputs must have: the weight's, f32 for bf16 products.
    pub fn dtype(&self) -> DType {
        self.dense().map_or(DType::F32, Tensor::dtype)
    }

    /// Where the weight lives (bf16 products run on the CPU).
    pub fn device(&self) -> Device {
        self.dense().map_or(Device::Cpu, |w| w.device().clone())
    }

    /// Whether the kernels can take `x` with this weight: CPU, and the weight's dtype (f32 for bf16).
    pub fn applies(&self, x: &Tensor) -> bool {
        use_kernels(x)
            && match self {
                Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => w.dtype() == x.dtype(),
                Frozen::Bf16(_) => x.dtype() == DType::F32,
            }
    }

    /// The same weight without its f16 copy: what training and merging read.
    pub fn without_half_copy(self) -> Self {
        match self {
            Frozen::DenseHalf { w, .. } => Frozen::Dense(w),
            other => other,
        }
    }

    /// Adds an f16 copy for decoding steps to an f32 CPU weight; other weights stay as they are.
    /// An error for a released (bf16) weight.
    pub fn with_half_copy(self, what: &str) -> Result<Self> {
        match self {
            Frozen::Dense(w) if w.dtype() == DType::F32 && w.device().is_cpu() => {
                let half = w.to_dtype(DType::F16)?;
                Ok(Frozen::DenseHalf { w, half })
            }
            Frozen::Bf16(_) => Err(Error::msg(format!("{what}: the f32 weight was released for bf16 training"))),
            other => Ok(other),
        }
    }

    /// Packs an f32 CPU weight in bf16 ([`Bf16Weight`]), dropping the f32 weight and any f16 copy.
    /// Fails on a CPU without AVX512-BF16 or for another dtype or device.
    pub fn to_bf16(&self) -> Result<Self> {
        let w = match self {
            Frozen::Bf16(_) => return Ok(self.clone()),
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => w,
        };
        if w.dtype() != DType::F32 || !w.device().is_cpu() {
            return Err(Error::msg(format!(
                "bf16 matmuls need f32 weights on the CPU, not {:?} on {:?}",
                w.dtype(),
                w.device()
            )));
        }
        let (out, inp) = w.dims2()?;
        // Packed straight from the weight's storage: a copy would add its size to the peak.
        let packed = with_data::<f32, _>(&w.contiguous()?, |w| {
            Bf16Weight::new(w, out, inp).map_err(|e| candle_core::Error::Msg(e.to_string()))
        })?;
        Ok(Frozen::Bf16(Arc::new(packed)))
    }

    /// The weight with a contiguous layout, as the fused ops read it.
    pub(crate) fn contiguous(&self) -> CResult<Self> {
        Ok(match self {
            Frozen::Dense(w) => Frozen::Dense(w.contiguous()?),
            Frozen::DenseHalf { w, half } => Frozen::DenseHalf { w: w.contiguous()?, half: half.clone() },
            packed => packed.clone(),
        })
    }

    /// `y (m, out) ← [y +] x (m, in) · Wᵀ`.
    pub(crate) fn forward_into<T: Elem>(&self, y: &mut [T], m: usize, x: &[T], accumulate: bool) -> CResult<()> {
        let (n, k) = self.dims()?;
        match self {
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => with_data::<T, _>(w, |w| {
                gemm_into(y, m, n, k, rows(x, k), transposed(w, k), accumulate, T::one());
                Ok(())
            }),
            Frozen::Bf16(p) => {
                p.forward(T::f32_mut(y)?, m, T::f32(x)?, accumulate);
                Ok(())
            }
        }
    }

    /// `dx (m, in) ← [dx +] dy (m, out) · W`.
    pub(crate) fn backward_into<T: Elem>(&self, dx: &mut [T], m: usize, dy: &[T], accumulate: bool) -> CResult<()> {
        let (n, k) = self.dims()?;
        match self {
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => with_data::<T, _>(w, |w| {
                gemm_into(dx, m, k, n, rows(dy, n), rows(w, k), accumulate, T::one());
                Ok(())
            }),
            Frozen::Bf16(p) => {
                p.backward(T::f32_mut(dx)?, m, T::f32(dy)?, accumulate);
                Ok(())
            }
        }
    }
}
