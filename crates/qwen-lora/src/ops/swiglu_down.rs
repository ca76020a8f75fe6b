//! The SwiGLU MLP's last two steps in one op, `y = (silu(g)·u)·W_downᵀ`, with gradients for g
//! and u. Composed, `down_proj` would keep `silu(g)·u` `(m, intermediate)` alive for the backward
//! pass only because it took it as input; no gradient reads it, so this op recomputes it.

// Kernels are generic over `num_traits::Float`, which has no `*=`.
#![allow(clippy::assign_op_pattern)]

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::frozen::Frozen;
use crate::kernels::cpu::wide;
use crate::kernels::elem::{CHUNK, CResult, Elem, sigmoid, slice, with_data};

/// `(g, u) (…, i) → silu(g)·u · W_downᵀ (…, h)`.
struct SwiGluDown {
    w: Frozen, // (h, i)
}

impl SwiGluDown {
    fn forward<T: Elem>(&self, g: &[T], u: &[T], m: usize, h: usize) -> CResult<Vec<T>> {
        let mut act = vec![T::zero(); g.len()]; // (m, i)
        act.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK))).for_each(|(o, (g, u))| {
            wide(
                #[inline(always)]
                || {
                    for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                        *o = g * sigmoid(g) * u;
                    }
                },
            )
        });
        let mut y = vec![T::zero(); m * h];
        self.w.forward_into(&mut y, m, &act, false)?;
        Ok(y)
    }

    /// dS = dY·W_down, then dg = dS·u·σ(g)·(1 + g·(1 − σ(g))), du = dS·silu(g); returned as one
    /// buffer [dg; du].
    fn backward<T: Elem>(&self, g: &[T], u: &[T], dy: &[T], m: usize, i: usize) -> CResult<Vec<T>> {
        let mut out = vec![T::zero(); 2 * m * i];
        let (dg, du) = out.split_at_mut(m * i);
        self.w.backward_into(du, m, dy, false)?; // dS, kept in du
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|((dg, du), (g, u))| {
                wide(
                    #[inline(always)]
                    || {
                        for j in 0..dg.len() {
                            let (ds, s) = (du[j], sigmoid(g[j]));
                            du[j] = ds * g[j] * s;
                            dg[j] = ds * u[j] * s * (T::one() + g[j] * (T::one() - s));
                        }
                    },
                )
            });
        Ok(out)
    }

    fn dims(&self, l: &Layout) -> CResult<(usize, usize, usize)> {
        let (h, i) = self.w.dims()?;
        let n = l.shape().elem_count();
        if l.dims().last() != Some(&i) {
            candle_core::bail!("swiglu-down: input {:?} does not end in the weight's {i}", l.dims())
        }
        Ok((n / i.max(1), h, i))
    }
}

impl CustomOp2 for SwiGluDown {
    fn name(&self) -> &'static str {
        "swiglu-down"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, us: &CpuStorage, ul: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (m, h, _) = self.dims(gl)?;
        if gl.dims() != ul.dims() {
            candle_core::bail!("swiglu-down: gate {:?} and up {:?} differ", gl.dims(), ul.dims())
        }
        let y = match gs.dtype() {
            DType::F32 => CpuStorage::F32(self.forward(slice(gs, gl)?, slice(us, ul)?, m, h)?),
            DType::F64 => CpuStorage::F64(self.forward(slice(gs, gl)?, slice(us, ul)?, m, h)?),
            dt => candle_core::bail!("swiglu-down: unsupported dtype {dt:?}"),
        };
        let mut dims = gl.dims().to_vec();
        *dims.last_mut().expect("rank >= 1") = h;
        Ok((y, Shape::from(dims)))
    }

    fn bwd(&self, g: &Tensor, u: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (m, h, i) = self.dims(g.layout())?;
        fn go<T: Elem>(
            op: &SwiGluDown,
            g: &Tensor,
            u: &Tensor,
            dy: &Tensor,
            d: (usize, usize, usize),
        ) -> CResult<Vec<T>> {
            with_data::<T, _>(g, |g| {
                with_data::<T, _>(u, |u| with_data::<T, _>(dy, |dy| op.backward(g, u, dy, d.0, d.2)))
            })
        }
        let both = match g.dtype() {
            DType::F32 => Tensor::from_vec(go::<f32>(self, g, u, &grad, (m, h, i))?, 2 * m * i, g.device())?,
            DType::F64 => Tensor::from_vec(go::<f64>(self, g, u, &grad, (m, h, i))?, 2 * m * i, g.device())?,
            dt => candle_core::bail!("swiglu-down: unsupported dtype {dt:?}"),
        };
        let dg = both.narrow(0, 0, m * i)?.reshape(g.shape())?;
        let du = both.narrow(0, m * i, m * i)?.reshape(u.shape())?;
        Ok((Some(dg), Some(du)))
    }
}

/// Whether [`swiglu_down`] runs for these tensors: CPU, one float dtype.
pub fn swiglu_down_applies(gate: &Tensor, w_down: &Frozen) -> bool {
    w_down.applies(gate)
}

/// The SwiGLU MLP's last two steps in one op: `silu(gate)·up · W_downᵀ`, `gate`/`up` (…, i),
/// `w_down (h, i)` → (…, h). Gradients flow to `gate` and `up`. See [`swiglu_down_applies`].
pub fn swiglu_down(gate: &Tensor, up: &Tensor, w_down: &Frozen) -> Result<Tensor> {
    let op = SwiGluDown { w: w_down.contiguous()? };
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, op)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::elem::test_tensor as t;

    #[test]
    fn swiglu_down_equals_the_composed_formula() {
        let (g, u, w) = (t(&[3, 7], 6), t(&[3, 7], 7), t(&[4, 7], 8));
        let y = swiglu_down(&g, &u, &Frozen::Dense(w.clone())).unwrap();
        let want = crate::ops::swiglu::swiglu(&g, &u).unwrap().matmul(&w.t().unwrap()).unwrap();
        let diff = (y - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-12, "max difference {diff}");
    }

    #[test]
    fn mismatched_shapes_are_errors_not_panics() {
        assert!(swiglu_down(&t(&[2, 7], 1), &t(&[2, 7], 2), &Frozen::Dense(t(&[4, 6], 3))).is_err());
    }
}
