//! SwiGLU, `silu(gate) · up` elementwise, with gradients for both inputs in one pass.

// Kernels are generic over `num_traits::Float`, which has no `+=`; the backward indexes several arrays.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop)]

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::kernels::cpu::wide;
use crate::kernels::elem::{CResult, Elem, dispatch, sigmoid, slice, use_kernels};

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<(CpuStorage, Shape)> {
        fn go<T: Elem>(s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<CpuStorage> {
            let (g, u) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
            let mut y = vec![T::zero(); g.len()];
            y.par_chunks_mut(4096).zip(g.par_chunks(4096).zip(u.par_chunks(4096))).for_each(|(y, (g, u))| {
                wide(
                    #[inline(always)]
                    || {
                        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                            *y = g * sigmoid(g) * u;
                        }
                    },
                )
            });
            Ok(T::to_cpu_storage_owned(y))
        }
        let y = dispatch!(s1.dtype(), "swiglu", go(s1, l1, s2, l2))?;
        Ok((y, l1.shape().clone()))
    }
    fn bwd(&self, g: &Tensor, u: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let both = Tensor::cat(&[g, u], 0)?; // (2·…): one pass computes both gradients
        let d = both.apply_op2_no_bwd(&grad, &SwiGluBwd)?;
        let n = g.dim(0)?;
        Ok((Some(d.narrow(0, 0, n)?), Some(d.narrow(0, n, n)?)))
    }
}

/// Input: cat([gate, up], 0) and dy; output: cat([dgate, dup], 0).
struct SwiGluBwd;

impl CustomOp2 for SwiGluBwd {
    fn name(&self) -> &'static str {
        "swiglu-bwd"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<(CpuStorage, Shape)> {
        fn go<T: Elem>(s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<CpuStorage> {
            let (gu, dy) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
            let half = gu.len() / 2;
            let (g, u) = gu.split_at(half);
            let mut out = vec![T::zero(); gu.len()];
            let (dg, du) = out.split_at_mut(half);
            dg.par_chunks_mut(4096)
                .zip(du.par_chunks_mut(4096))
                .zip(g.par_chunks(4096).zip(u.par_chunks(4096)).zip(dy.par_chunks(4096)))
                .for_each(|((dg, du), ((g, u), dy))| {
                    wide(
                        #[inline(always)]
                        || {
                            for i in 0..dg.len() {
                                let s = sigmoid(g[i]);
                                let silu = g[i] * s;
                                du[i] = dy[i] * silu;
                                dg[i] = dy[i] * u[i] * s * (T::one() + g[i] * (T::one() - s));
                            }
                        },
                    )
                });
            Ok(T::to_cpu_storage_owned(out))
        }
        let y = dispatch!(s1.dtype(), "swiglu-bwd", go(s1, l1, s2, l2))?;
        Ok((y, l1.shape().clone()))
    }
}

/// `silu(gate) · up`, elementwise; both inputs get gradients.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if use_kernels(gate) && gate.dtype() == up.dtype() {
        let (g, u) = (gate.contiguous()?, up.contiguous()?);
        return Ok(g.apply_op2(&u, SwiGlu)?);
    }
    Ok((candle_nn::ops::silu(gate)? * up)?)
}
