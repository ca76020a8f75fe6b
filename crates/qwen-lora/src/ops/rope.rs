//! Rotary position embedding (HF's rotate-half convention), fused with the
//! (b, t, h, d) → (b, h, t, d) transpose attention needs; the backward rotates back by −θ.

// Kernels are generic over `num_traits::Float`, which has no `+=`.
#![allow(clippy::assign_op_pattern)]

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::kernels::elem::{CResult, Elem, dispatch, slice, use_kernels};

/// cos/sin of every (batch row, position) pair: (b, t, d/2) each, in f64.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Arc<Vec<f64>>,
    sin: Arc<Vec<f64>>,
    half: usize,
}

impl RopeTable {
    /// `positions` is (b, t) row-major; `theta` the rope base, `d` the head dim.
    pub fn new(positions: &[u32], head_dim: usize, theta: f64) -> Self {
        let half = head_dim / 2;
        let inv: Vec<f64> = (0..half).map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)).collect();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for f in &inv {
                let a = p as f64 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Self { cos: Arc::new(cos), sin: Arc::new(sin), half }
    }

    /// cos and sin as (b, t, d/2) tensors, for the fallback path.
    fn tensors(&self, b: usize, t: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let c = Tensor::from_slice(&self.cos[..], (b, t, self.half), dev)?.to_dtype(dtype)?;
        let s = Tensor::from_slice(&self.sin[..], (b, t, self.half), dev)?.to_dtype(dtype)?;
        Ok((c, s))
    }
}

struct Rope {
    table: RopeTable,
    /// Backward direction: input (b, h, t, d), rotate by −θ, output (b, t, h, d).
    inverse: bool,
}

fn rope_kernel<T: Elem>(x: &[T], dims: [usize; 4], table: &RopeTable, inverse: bool) -> Vec<T> {
    // Forward: dims = (b, t, h, d), x in (b, t, h, d), out in (b, h, t, d).
    // Inverse: dims = (b, h, t, d), x in (b, h, t, d), out in (b, t, h, d).
    let [b, n1, n2, d] = dims;
    let (t, h) = if inverse { (n2, n1) } else { (n1, n2) };
    let half = d / 2;
    let mut out = vec![T::zero(); x.len()];
    let sign = if inverse { -T::one() } else { T::one() };
    // One output (batch, head) plane (t·d contiguous) per task in the forward, one (batch, time)
    // plane (h·d) in the inverse.
    let plane = if inverse { h * d } else { t * d };
    out.par_chunks_mut(plane).enumerate().for_each(|(pi, o)| {
        let (bi, outer) = (pi / (if inverse { t } else { h }), pi % (if inverse { t } else { h }));
        let inner_n = if inverse { h } else { t };
        for inner in 0..inner_n {
            let (ti, hi) = if inverse { (outer, inner) } else { (inner, outer) };
            let src = if inverse { ((bi * h + hi) * t + ti) * d } else { ((bi * t + ti) * h + hi) * d };
            let cs = (bi * t + ti) * half;
            let o = &mut o[inner * d..(inner + 1) * d];
            let xs = &x[src..src + d];
            for i in 0..half {
                let c = T::from(table.cos[cs + i]).unwrap_or_else(T::zero);
                let s = T::from(table.sin[cs + i]).unwrap_or_else(T::zero) * sign;
                let (x1, x2) = (xs[i], xs[i + half]);
                o[i] = x1 * c - x2 * s;
                o[i + half] = x2 * c + x1 * s;
            }
        }
    });
    let _ = b;
    out
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n0, n1, n2, n3) = l.shape().dims4()?;
        fn go<T: Elem>(
            s: &CpuStorage,
            l: &Layout,
            dims: [usize; 4],
            table: &RopeTable,
            inv: bool,
        ) -> CResult<CpuStorage> {
            Ok(T::to_cpu_storage_owned(rope_kernel(slice::<T>(s, l)?, dims, table, inv)))
        }
        let y = dispatch!(s.dtype(), "rope", go(s, l, [n0, n1, n2, n3], &self.table, self.inverse))?;
        Ok((y, Shape::from((n0, n2, n1, n3))))
    }
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(grad.apply_op1_no_bwd(&Rope { table: self.table.clone(), inverse: !self.inverse })?))
    }
}

/// Applies rotary embeddings (HF's rotate-half convention) to `x (b, t, h, d)` and returns
/// `(b, h, t, d)`, ready for attention.
pub fn rope(x: &Tensor, table: &RopeTable) -> Result<Tensor> {
    if use_kernels(x) {
        let x = x.contiguous()?;
        return Ok(x.apply_op1(Rope { table: table.clone(), inverse: false })?);
    }
    let (b, t, _h, _d) = x.dims4()?;
    let (cos, sin) = table.tensors(b, t, x.dtype(), x.device())?;
    let x = x.transpose(1, 2)?.contiguous()?; // (b, h, t, d)
    let half = table.half;
    let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
    let (cos, sin) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?); // (b, 1, t, d/2)
    let o1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let o2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Ok(Tensor::cat(&[o1, o2], 3)?)
}
