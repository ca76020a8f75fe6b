//! RMSNorm over the last dim with a frozen weight, `x / sqrt(mean(x²) + eps) · w`: one
//! multithreaded pass forward and one backward (candle's fused `rms_norm` has none).

// Kernels are generic over `num_traits::Float`, which has no `+=`.
#![allow(clippy::assign_op_pattern)]

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::kernels::cpu::wide;
use crate::kernels::elem::{CResult, Elem, dispatch, slice, use_kernels};

struct RmsNorm {
    w: Tensor,
    eps: f64,
}

fn rms_fwd<T: Elem>(x: &[T], w: &[T], eps: f64, d: usize) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    let eps = T::from(eps).unwrap_or_else(T::zero);
    let inv_d = T::one() / T::from(d).unwrap_or_else(T::one);
    y.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(y, x)| {
        wide(
            #[inline(always)]
            || {
                let ms = x.iter().fold(T::zero(), |a, &v| a + v * v) * inv_d;
                let r = (ms + eps).sqrt().recip();
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            },
        )
    });
    y
}

// dx = r·(g − x̂·mean(g·x̂)) with g = dy·w, x̂ = x·r.
fn rms_bwd<T: Elem>(x: &[T], w: &[T], dy: &[T], eps: f64, d: usize) -> Vec<T> {
    let mut dx = vec![T::zero(); x.len()];
    let eps = T::from(eps).unwrap_or_else(T::zero);
    let inv_d = T::one() / T::from(d).unwrap_or_else(T::one);
    dx.par_chunks_mut(d).zip(x.par_chunks(d).zip(dy.par_chunks(d))).for_each(|(dx, (x, dy))| {
        wide(
            #[inline(always)]
            || {
                let ms = x.iter().fold(T::zero(), |a, &v| a + v * v) * inv_d;
                let r = (ms + eps).sqrt().recip();
                let dot = x.iter().zip(dy).zip(w).fold(T::zero(), |a, ((&x, &dy), &w)| a + dy * w * x * r);
                let c = dot * inv_d;
                for (((dx, &x), &dy), &w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                    *dx = r * (dy * w - x * r * c);
                }
            },
        )
    });
    dx
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let d = l.dims().last().copied().unwrap_or(1);
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else { candle_core::bail!("rms-norm: weight not on CPU") };
        fn go<T: Elem>(
            s: &CpuStorage,
            l: &Layout,
            ws: &CpuStorage,
            wl: &Layout,
            eps: f64,
            d: usize,
        ) -> CResult<CpuStorage> {
            Ok(T::to_cpu_storage_owned(rms_fwd(slice::<T>(s, l)?, slice::<T>(ws, wl)?, eps, d)))
        }
        let y = dispatch!(s.dtype(), "rms-norm", go(s, l, ws, wl, self.eps, d))?;
        Ok((y, l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&grad, &RmsNormBwd { w: self.w.clone(), eps: self.eps })?))
    }
}

struct RmsNormBwd {
    w: Tensor,
    eps: f64,
}

impl CustomOp2 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "rms-norm-bwd"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<(CpuStorage, Shape)> {
        let d = l1.dims().last().copied().unwrap_or(1);
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else { candle_core::bail!("rms-norm: weight not on CPU") };
        #[allow(clippy::too_many_arguments)]
        fn go<T: Elem>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            ws: &CpuStorage,
            wl: &Layout,
            eps: f64,
            d: usize,
        ) -> CResult<CpuStorage> {
            let dx = rms_bwd(slice::<T>(s1, l1)?, slice::<T>(ws, wl)?, slice::<T>(s2, l2)?, eps, d);
            Ok(T::to_cpu_storage_owned(dx))
        }
        let dx = dispatch!(s1.dtype(), "rms-norm-bwd", go(s1, l1, s2, l2, ws, wl, self.eps, d))?;
        Ok((dx, l1.shape().clone()))
    }
}

/// RMSNorm over the last dim with a frozen weight: `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if use_kernels(x) && w.dtype() == x.dtype() {
        let x = x.contiguous()?;
        return Ok(x.apply_op1(RmsNorm { w: w.clone(), eps })?);
    }
    let dim = x.rank() - 1;
    let ms = x.sqr()?.mean_keepdim(dim)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)?)
}
