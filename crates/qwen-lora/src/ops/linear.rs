//! A frozen projection `x·Wᵀ + b` whose backward returns only dX = dY·W: candle's own matmul
//! backward would also compute the (unused) gradient of the frozen weight.

// Kernels are generic over `num_traits::Float`, which has no `+=`.
#![allow(clippy::assign_op_pattern)]

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::frozen::Frozen;
use crate::kernels::elem::{CResult, Elem, slice, with_data};
use crate::kernels::gemv;

struct FrozenLinear {
    w: Frozen,         // (out, in)
    b: Option<Tensor>, // (out,)
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let dims = l.dims();
        let k = *dims.last().unwrap_or(&0);
        let m = l.shape().elem_count() / k.max(1);
        let (n, k_w) = self.w.dims()?;
        if k != k_w {
            candle_core::bail!("frozen-linear: input has {k} features, weight expects {k_w}")
        }
        let (start, _) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("frozen-linear: input must be contiguous".into()))?;
        let (w, half) = match (&self.w, s) {
            (Frozen::Bf16(p), CpuStorage::F32(xs)) => {
                let mut y = vec![0f32; m * n];
                p.forward(&mut y, m, &xs[start..start + m * k], false);
                return self.finish(CpuStorage::F32(y), dims, n);
            }
            (Frozen::Bf16(_), _) => candle_core::bail!("frozen-linear: bf16 weights take f32 inputs"),
            (Frozen::Dense(w), _) => (w, None),
            (Frozen::DenseHalf { w, half }, _) => (w, Some(half)),
        };
        let (ws, wl) = w.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else { candle_core::bail!("frozen-linear: weight is not on the CPU") };
        let half = half.map(|h| h.storage_and_layout());
        let y = match (s, ws) {
            // A decoding step: stream the weight once (in f16 when there is a copy) instead of
            // packing it for a GEMM.
            (CpuStorage::F32(xs), CpuStorage::F32(_)) if m <= gemv::MAX_ROWS && wl.is_contiguous() => {
                let w = match &half {
                    Some((hs, hl)) => match &**hs {
                        Storage::Cpu(CpuStorage::F16(h)) if hl.is_contiguous() && hl.dims() == [n, k] => {
                            gemv::Weights::F16(&h[hl.start_offset()..hl.start_offset() + n * k])
                        }
                        _ => candle_core::bail!(
                            "frozen-linear: the half copy must be a contiguous ({n}, {k}) f16 CPU tensor"
                        ),
                    },
                    None => gemv::Weights::F32(slice::<f32>(ws, wl)?),
                };
                CpuStorage::F32(gemv::matmul_xw(&xs[start..start + m * k], w, m, n, k))
            }
            _ => {
                // (m, k) · (k, n): Wᵀ is a transposed view of the (n, k) weight, no copy.
                let x_l = Layout::contiguous_with_offset((m, k), start);
                let wt_l = Layout::new((n, k).into(), wl.stride().to_vec(), wl.start_offset()).transpose(0, 1)?;
                s.matmul(ws, (1, m, n, k), &x_l, &wt_l)?
            }
        };
        self.finish(y, dims, n)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // dX = dY · W : (m, n) · (n, k)
        let (n, k) = self.w.dims()?;
        let m = grad.elem_count() / n;
        let dx = match &self.w {
            Frozen::Dense(w) | Frozen::DenseHalf { w, .. } => grad.reshape((m, n))?.matmul(w)?,
            Frozen::Bf16(p) => {
                let grad = grad.to_dtype(DType::F32)?.contiguous()?;
                let mut dx = vec![0f32; m * k];
                with_data::<f32, _>(&grad, |dy| {
                    p.backward(&mut dx, m, dy, false);
                    Ok(())
                })?;
                Tensor::from_vec(dx, (m, k), grad.device())?
            }
        };
        Ok(Some(dx.reshape(arg.shape())?))
    }
}

impl FrozenLinear {
    /// Adds the bias to `y (m, n)` and gives it the input's shape with `n` last.
    fn finish(&self, mut y: CpuStorage, dims: &[usize], n: usize) -> CResult<(CpuStorage, Shape)> {
        if let Some(b) = &self.b {
            let (bs, bl) = b.storage_and_layout();
            let Storage::Cpu(bs) = &*bs else { candle_core::bail!("frozen-linear: bias is not on the CPU") };
            fn add_bias<T: Elem>(y: &mut [T], b: &[T]) {
                y.par_chunks_mut(b.len()).for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v = *v + *b));
            }
            match &mut y {
                CpuStorage::F32(v) => add_bias(v, slice::<f32>(bs, bl)?),
                CpuStorage::F64(v) => add_bias(v, slice::<f64>(bs, bl)?),
                _ => candle_core::bail!("frozen-linear: unsupported dtype {:?}", y.dtype()),
            }
        }
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = n;
        Ok((y, Shape::from(out_dims)))
    }
}

/// A frozen projection: `x (…, in) · Wᵀ (in, out) + b → (…, out)`; gradients flow to `x` only.
/// A weight with an f16 copy serves inputs of at most [`gemv::MAX_ROWS`] rows from the copy; a
/// bf16 one takes every input size.
pub fn linear(x: &Tensor, w: &Frozen, b: Option<&Tensor>) -> Result<Tensor> {
    if w.applies(x) {
        let x = x.contiguous()?;
        return Ok(x.apply_op1(FrozenLinear { w: w.clone(), b: b.cloned() })?);
    }
    let Some(w) = w.dense() else {
        return Err(crate::Error::msg(format!(
            "bf16 weights take f32 CPU inputs, got {:?} on {:?}",
            x.dtype(),
            x.device()
        )));
    };
    let y = x.broadcast_matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}
