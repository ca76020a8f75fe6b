//! A LoRA projection in one op, `y = x·Wᵀ + b + s·(x∘M)·Aᵀ·Bᵀ` (Hu et al., 2021), with
//! gradients for x, A and B.
//!
//! candle keeps every op's inputs alive until `backward()`. Written with primitives, a LoRA
//! projection keeps its dropout mask and the masked input — two `(m, in)` tensors per adapted
//! module — though no gradient reads them. This op keeps only what its backward reads: the
//! inverted-dropout mask `M` comes from a counter hash ([`Dropout`]), so the backward regenerates
//! exactly the forward's mask, and every product is written straight into its destination
//! through [`gemm_into`], accumulating where the math adds (bias, the low-rank update, the two
//! parts of dX). Runs on contiguous f32/f64 CPU tensors; callers fall back to primitives elsewhere.

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::frozen::Frozen;
use crate::kernels::dropout::Dropout;
use crate::kernels::elem::{CResult, Elem, data, slice, with_data};
use crate::kernels::gemm::{gemm_into, rows, transposed};

/// `x (…, in) → (…, out)`: frozen `w (out, in)` and bias, adapter `a (r, in)`, `b (out, r)`.
struct LoraLinear {
    w: Frozen,
    bias: Option<Tensor>,
    scale: f64,
    dropout: Option<Dropout>,
}

/// `x (m, k)`, `w (n, k)`, `a (r, k)`, `b (n, r)`.
#[derive(Clone, Copy)]
struct Dims {
    m: usize,
    n: usize,
    k: usize,
    r: usize,
}

impl LoraLinear {
    fn dims(&self, x_len: usize, a_l: &Layout) -> CResult<Dims> {
        let (n, k) = self.w.dims()?;
        let r = a_l.dims()[0];
        if k == 0 || !x_len.is_multiple_of(k) || a_l.dims() != [r, k] {
            candle_core::bail!("lora-linear: input, weight ({n}, {k}) and A {:?} do not fit", a_l.dims())
        }
        Ok(Dims { m: x_len / k, n, k, r })
    }

    /// The adapter's input `x∘M` (m, k) and its rank-r projection `z = (x∘M)·Aᵀ` (m, r).
    fn adapter_input<'x, T: Elem>(&self, x: &'x [T], a: &[T], d: Dims) -> (Cow<'x, [T]>, Vec<T>) {
        let xm = match &self.dropout {
            Some(dr) => Cow::Owned(dr.masked(x)),
            None => Cow::Borrowed(x),
        };
        let mut z = vec![T::zero(); d.m * d.r];
        gemm_into(&mut z, d.m, d.r, d.k, rows(&xm, d.k), transposed(a, d.k), false, T::one());
        (xm, z)
    }

    /// y = x·Wᵀ + b + s·(x∘M)·Aᵀ·Bᵀ
    fn forward<T: Elem>(&self, x: &[T], a: &[T], b: &[T], d: Dims) -> CResult<Vec<T>> {
        let Dims { m, n, r, .. } = d;
        let mut y = vec![T::zero(); m * n];
        if let Some(bias) = &self.bias {
            with_data::<T, _>(bias, |bias| {
                y.par_chunks_mut(n).for_each(|row| row.copy_from_slice(bias));
                Ok(())
            })?;
        }
        self.w.forward_into(&mut y, m, x, self.bias.is_some())?;
        let (_, z) = self.adapter_input(x, a, d);
        let s = T::from(self.scale).unwrap_or_else(T::one);
        gemm_into(&mut y, m, n, r, rows(&z, r), transposed(b, r), true, s);
        Ok(y)
    }

    /// With g_z = s·dY·B: dX = dY·W + (g_z·A)∘M, dA = g_zᵀ·(x∘M), dB = s·dYᵀ·((x∘M)·Aᵀ).
    #[allow(clippy::type_complexity)]
    fn backward<T: Elem>(&self, x: &[T], a: &[T], b: &[T], dy: &[T], d: Dims) -> CResult<(Vec<T>, Vec<T>, Vec<T>)> {
        let Dims { m, n, k, r } = d;
        let s = T::from(self.scale).unwrap_or_else(T::one);
        let mut gz = vec![T::zero(); m * r]; // (m, r)
        gemm_into(&mut gz, m, r, n, rows(dy, n), rows(b, r), false, s);
        let mut dx = vec![T::zero(); m * k]; // (m, k)
        gemm_into(&mut dx, m, k, r, rows(&gz, r), rows(a, k), false, T::one());
        if let Some(d) = &self.dropout {
            d.mask_in_place(&mut dx);
        }
        self.w.backward_into(&mut dx, m, dy, true)?;
        let (xm, z) = self.adapter_input(x, a, d);
        let mut da = vec![T::zero(); r * k]; // (r, k)
        gemm_into(&mut da, r, k, m, transposed(&gz, r), rows(&xm, k), false, T::one());
        let mut db = vec![T::zero(); n * r]; // (n, r)
        gemm_into(&mut db, n, r, m, transposed(dy, n), rows(&z, r), false, s);
        Ok((dx, da, db))
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        as_: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let d = self.dims(xl.shape().elem_count(), al)?;
        if bl.dims() != [d.n, d.r] {
            candle_core::bail!("lora-linear: B is {:?}, expected [{}, {}]", bl.dims(), d.n, d.r)
        }
        let y = match xs.dtype() {
            DType::F32 => CpuStorage::F32(self.forward(slice(xs, xl)?, slice(as_, al)?, slice(bs, bl)?, d)?),
            DType::F64 => CpuStorage::F64(self.forward(slice(xs, xl)?, slice(as_, al)?, slice(bs, bl)?, d)?),
            dt => candle_core::bail!("lora-linear: unsupported dtype {dt:?}"),
        };
        let mut dims = xl.dims().to_vec();
        *dims.last_mut().expect("rank >= 1") = d.n;
        Ok((y, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d = self.dims(x.elem_count(), a.layout())?;
        let (n, k, r) = (d.n, d.k, d.r);
        fn go<T: Elem>(op: &LoraLinear, t: [&Tensor; 4], d: Dims) -> CResult<(Vec<T>, Vec<T>, Vec<T>)> {
            let [x, a, b, dy] = t;
            with_data::<T, _>(x, |x| with_data::<T, _>(dy, |dy| op.backward(x, &data::<T>(a)?, &data::<T>(b)?, dy, d)))
        }
        let dev = x.device();
        let ts = [x, a, b, &grad];
        let (dx, da, db) = match x.dtype() {
            DType::F32 => {
                let (dx, da, db) = go::<f32>(self, ts, d)?;
                (
                    Tensor::from_vec(dx, x.shape(), dev)?,
                    Tensor::from_vec(da, (r, k), dev)?,
                    Tensor::from_vec(db, (n, r), dev)?,
                )
            }
            DType::F64 => {
                let (dx, da, db) = go::<f64>(self, ts, d)?;
                (
                    Tensor::from_vec(dx, x.shape(), dev)?,
                    Tensor::from_vec(da, (r, k), dev)?,
                    Tensor::from_vec(db, (n, r), dev)?,
                )
            }
            dt => candle_core::bail!("lora-linear: unsupported dtype {dt:?}"),
        };
        Ok((Some(dx), Some(da), Some(db)))
    }
}

/// Whether [`lora_linear`] runs for these tensors (contiguous or not): CPU, one float dtype.
pub fn lora_linear_applies(x: &Tensor, w: &Frozen, a: &Tensor) -> bool {
    w.applies(x) && a.dtype() == x.dtype()
}

/// A LoRA projection in one op: `x (…, in) · Wᵀ + bias + scale · dropout(x) · Aᵀ · Bᵀ → (…, out)`,
/// with `a (r, in)`, `b (out, r)` and dropout probability `p` drawn from `seed`. Gradients flow
/// to `x`, `a` and `b`; the frozen `w` and bias get none. See [`lora_linear_applies`].
#[allow(clippy::too_many_arguments)]
pub fn lora_linear(
    x: &Tensor,
    w: &Frozen,
    bias: Option<&Tensor>,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    p: f64,
    seed: u64,
) -> Result<Tensor> {
    let op = LoraLinear {
        w: w.contiguous()?,
        bias: bias.map(Tensor::contiguous).transpose()?,
        scale,
        dropout: Dropout::new(p, seed),
    };
    Ok(x.contiguous()?.apply_op3(&a.contiguous()?, &b.contiguous()?, op)?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::kernels::elem::test_tensor as t;

    #[test]
    fn lora_linear_equals_the_composed_formula_with_the_same_mask() {
        let (x, w, bias, a, b) = (t(&[2, 5, 8], 1), t(&[6, 8], 2), t(&[6], 3), t(&[3, 8], 4), t(&[6, 3], 5));
        let (scale, p, seed) = (2.0, 0.2, 11);
        let y = lora_linear(&x, &Frozen::Dense(w.clone()), Some(&bias), &a, &b, scale, p, seed).unwrap();
        let mask = Tensor::from_vec(Dropout::new(p, seed).unwrap().scales::<f64>(80), (2, 5, 8), &Device::Cpu).unwrap();
        let dense = x.broadcast_matmul(&w.t().unwrap()).unwrap().broadcast_add(&bias).unwrap();
        let low_rank =
            (x * mask).unwrap().broadcast_matmul(&a.t().unwrap()).unwrap().broadcast_matmul(&b.t().unwrap()).unwrap();
        let want = (dense + (low_rank * scale).unwrap()).unwrap();
        let diff = (y - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-12, "max difference {diff}");
    }

    #[test]
    fn mismatched_shapes_are_errors_not_panics() {
        let x = t(&[2, 8], 1);
        assert!(
            lora_linear(&x, &Frozen::Dense(t(&[6, 7], 2)), None, &t(&[3, 8], 3), &t(&[6, 3], 4), 1.0, 0.0, 0).is_err()
        );
        assert!(
            lora_linear(&x, &Frozen::Dense(t(&[6, 8], 2)), None, &t(&[3, 8], 3), &t(&[5, 3], 4), 1.0, 0.0, 0).is_err()
        );
    }
}
