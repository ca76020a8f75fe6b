//! The attention softmax: `softmax(scale · scores)` over keys a query may see (causal order and a
//! key-padding mask, [`AttnMask`]), forward and backward in one pass each.

// Kernels are generic over `num_traits::Float`, which has no `+=`; masks index several arrays.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop)]

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

use crate::Result;
use crate::kernels::cpu::wide;
use crate::kernels::elem::{CResult, Elem, dispatch, slice, use_kernels};

/// Which keys each query may see: causal order plus a key-padding mask.
#[derive(Debug, Clone)]
pub struct AttnMask {
    /// (b, t_k): 1 for a real token, 0 for padding.
    key_valid: Arc<Vec<u8>>,
    t_k: usize,
}

impl AttnMask {
    pub fn new(key_valid: Vec<u8>, t_k: usize) -> Self {
        Self { key_valid: Arc::new(key_valid), t_k }
    }

    /// Query `i` of `t_q` (the last `t_q` positions of the key sequence) sees key `j` when `j` is
    /// not in its future and is a real token. Its own position is always visible, so no row is
    /// empty (padding queries produce values nobody reads).
    #[inline]
    fn allowed(&self, b: usize, i: usize, t_q: usize, j: usize) -> bool {
        let q_pos = self.t_k - t_q + i;
        j == q_pos || (j < q_pos && self.key_valid[b * self.t_k + j] != 0)
    }

    /// The additive mask (b, 1, t_q, t_k) for the fallback path.
    fn additive(&self, b: usize, t_q: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut m = vec![0f32; b * t_q * self.t_k];
        for bi in 0..b {
            for i in 0..t_q {
                for j in 0..self.t_k {
                    if !self.allowed(bi, i, t_q, j) {
                        m[(bi * t_q + i) * self.t_k + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (b, 1, t_q, self.t_k), dev)?.to_dtype(dtype)?)
    }
}

struct MaskedSoftmax {
    mask: AttnMask,
    scale: f64,
    t_q: usize,
}

impl MaskedSoftmax {
    /// Rows are (b, kv_head, group, t_q); row `r` of batch `bi` is query `r % t_q`.
    fn rows_per_batch(&self, n_rows: usize, b: usize) -> usize {
        n_rows / b
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let b = l.dims()[0];
        let t_k = *l.dims().last().unwrap_or(&1);
        fn go<T: Elem>(op: &MaskedSoftmax, s: &CpuStorage, l: &Layout, b: usize, t_k: usize) -> CResult<CpuStorage> {
            let x = slice::<T>(s, l)?;
            let rows_pb = op.rows_per_batch(x.len() / t_k, b);
            let scale = T::from(op.scale).unwrap_or_else(T::one);
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(t_k).zip(x.par_chunks(t_k)).enumerate().for_each(|(r, (y, x))| {
                wide(
                    #[inline(always)]
                    || softmax_row(op, bi_i(r, rows_pb, op.t_q), scale, x, y),
                )
            });
            Ok(T::to_cpu_storage_owned(y))
        }
        #[inline(always)]
        fn bi_i(r: usize, rows_pb: usize, t_q: usize) -> (usize, usize) {
            (r / rows_pb, r % t_q)
        }
        #[inline(always)]
        fn softmax_row<T: Elem>(op: &MaskedSoftmax, (bi, i): (usize, usize), scale: T, x: &[T], y: &mut [T]) {
            let t_k = x.len();
            let mut max = T::neg_infinity();
            for j in 0..t_k {
                if op.mask.allowed(bi, i, op.t_q, j) {
                    max = Float::max(max, x[j] * scale);
                }
            }
            let mut sum = T::zero();
            for j in 0..t_k {
                if op.mask.allowed(bi, i, op.t_q, j) {
                    let e = (x[j] * scale - max).exp_fast();
                    y[j] = e;
                    sum = sum + e;
                }
            }
            let inv = sum.recip();
            y.iter_mut().for_each(|v| *v = *v * inv);
        }
        let y = dispatch!(s.dtype(), "masked-softmax", go(self, s, l, b, t_k))?;
        Ok((y, l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // dx = scale · y · (dy − Σ dy·y); masked entries have y = 0 and get no gradient.
        let grad = grad.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&grad, &SoftmaxBwd { scale: self.scale })?))
    }
}

struct SoftmaxBwd {
    scale: f64,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "softmax-bwd"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> CResult<(CpuStorage, Shape)> {
        let t_k = *l1.dims().last().unwrap_or(&1);
        fn go<T: Elem>(
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            t_k: usize,
            scale: f64,
        ) -> CResult<CpuStorage> {
            let (y, dy) = (slice::<T>(s1, l1)?, slice::<T>(s2, l2)?);
            let scale = T::from(scale).unwrap_or_else(T::one);
            let mut dx = vec![T::zero(); y.len()];
            dx.par_chunks_mut(t_k).zip(y.par_chunks(t_k).zip(dy.par_chunks(t_k))).for_each(|(dx, (y, dy))| {
                wide(
                    #[inline(always)]
                    || {
                        let dot = y.iter().zip(dy).fold(T::zero(), |a, (&y, &g)| a + y * g);
                        for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
                            *dx = scale * y * (g - dot);
                        }
                    },
                )
            });
            Ok(T::to_cpu_storage_owned(dx))
        }
        let dx = dispatch!(s1.dtype(), "softmax-bwd", go(s1, l1, s2, l2, t_k, self.scale))?;
        Ok((dx, l1.shape().clone()))
    }
}

/// `softmax(scale · scores + mask)` over the last dim. `scores` is (b, kv_heads, group · t_q, t_k):
/// the queries of the heads sharing one KV head stacked, `t_q` queries each.
pub fn masked_softmax(scores: &Tensor, mask: &AttnMask, scale: f64, t_q: usize) -> Result<Tensor> {
    if use_kernels(scores) {
        let s = scores.contiguous()?;
        return Ok(s.apply_op1(MaskedSoftmax { mask: mask.clone(), scale, t_q })?);
    }
    let (b, kvh, gt, t_k) = scores.dims4()?;
    let g = gt / t_q;
    let add = mask.additive(b, t_q, scores.dtype(), scores.device())?.unsqueeze(1)?; // (b, 1, 1, t_q, t_k)
    let s = (scores.reshape((b, kvh, g, t_q, t_k))? * scale)?.broadcast_add(&add)?;
    Ok(candle_nn::ops::softmax_last_dim(&s)?.reshape((b, kvh, gt, t_k))?)
}
