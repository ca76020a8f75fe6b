//! The training step's LoRA projections and MLP down-projection as single ops.
//!
//! candle keeps every op's inputs alive until `backward()`. Written with primitives, a LoRA
//! projection keeps its dropout mask and the masked input — two `(m, in)` tensors per adapted
//! module — and the MLP keeps `silu(gate)·up` `(m, intermediate)` only because `down_proj` took
//! it as input; no gradient reads any of them. Together they are about a third of a step's
//! activations. The ops here keep only what their backward reads and recompute the rest:
//!
//! - [`lora_linear`]: `y = x·Wᵀ + b + s·(x∘M)·Aᵀ·Bᵀ` (Hu et al., 2021) with gradients for x, A and B.
//!   The inverted-dropout mask `M` comes from a counter hash of (seed, element), so the backward
//!   regenerates exactly the forward's mask instead of storing it.
//! - [`swiglu_down`]: `y = (silu(g)·u)·W_downᵀ` with gradients for g and u.
//!
//! Both run on contiguous f32/f64 CPU tensors (the callers fall back to primitives elsewhere) and
//! write every product straight into its destination through `gemm`, accumulating where the
//! math adds (bias, the low-rank update, the two parts of dX).

// Kernels are generic over `num_traits::Float`, which has no `*=`.
#![allow(clippy::assign_op_pattern)]

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::Result;
use crate::ops::{Elem, Frozen, sigmoid, slice, wide};

type CResult<T> = candle_core::Result<T>;

// ---------------------------------------------------------------------------------------------
// GEMM into a destination
// ---------------------------------------------------------------------------------------------

/// A read-only matrix view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// Row-major `(rows, cols)`.
pub(crate) fn rows<T>(data: &[T], cols: usize) -> View<'_, T> {
    View { data, rs: cols, cs: 1 }
}

/// The transpose of a row-major `(rows, cols)` matrix, without a copy.
pub(crate) fn transposed<T>(data: &[T], cols: usize) -> View<'_, T> {
    View { data, rs: 1, cs: cols }
}

impl<T> View<'_, T> {
    /// True when every element of a `(r, c)` view lies inside `data`.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.data.len()
    }
}

/// `dst (m, n) ← [dst +] beta · lhs (m, k) · rhs (k, n)`; `dst` row-major, `accumulate` keeps
/// its content.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: Elem>(
    dst: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    lhs: View<T>,
    rhs: View<T>,
    accumulate: bool,
    beta: T,
) {
    assert!(
        dst.len() >= m * n && lhs.fits(m, k) && rhs.fits(k, n),
        "gemm_into: operand too small for ({m}, {k})·({k}, {n})"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    // Tiny products (the rank-r factors) cost less than waking the thread pool.
    let threads = rayon::current_num_threads();
    let par =
        if threads > 1 && m * n * k >= 1 << 18 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assertion above keeps every element gemm reads or writes inside its slice, the
    // destination is borrowed mutably and cannot alias the shared operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::one(),
            beta,
            false,
            false,
            false,
            par,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout mask from a counter hash
// ---------------------------------------------------------------------------------------------

/// SplitMix64's finalizer: a well-mixed 64-bit hash of a counter.
#[inline(always)]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Inverted dropout with drop probability `p`: element `i` of the tensor is kept (and scaled by
/// `1 / (1 - p)`) when the hash of (seed, i) clears the threshold. Stateless, so any pass can
/// regenerate any part of the mask.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    seed: u64,
    threshold: u64,
    keep_scale: f64,
}

impl Dropout {
    /// `None` when `p` is zero: nothing to mask.
    pub fn new(p: f64, seed: u64) -> Option<Self> {
        (p > 0.0).then(|| Self {
            seed: splitmix64(seed),
            threshold: (p * u64::MAX as f64) as u64,
            keep_scale: 1.0 / (1.0 - p),
        })
    }

    #[inline(always)]
    fn keeps(&self, i: usize) -> bool {
        splitmix64(self.seed ^ i as u64) >= self.threshold
    }

    /// The mask's first `n` values: 0 or `1 / (1 - p)`.
    pub(crate) fn scales<T: Elem>(&self, n: usize) -> Vec<T> {
        let mut out = vec![T::zero(); n];
        self.apply(&mut out, |_, o| *o = T::one());
        out
    }

    /// `f(i, &mut v[i])` for kept elements, then scales them; dropped ones become zero.
    fn apply<T: Elem>(&self, v: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
        let keep = T::from(self.keep_scale).unwrap_or_else(T::one);
        v.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
            let mut kept = [false; CHUNK];
            let kept = &mut kept[..chunk.len()];
            self.keep_flags(c * CHUNK, kept);
            for (j, (o, &k)) in chunk.iter_mut().zip(kept.iter()).enumerate() {
                if k {
                    f(c * CHUNK + j, o);
                    *o = *o * keep;
                } else {
                    *o = T::zero();
                }
            }
        });
    }

    /// `out[j] = keeps(start + j)`, vectorized with AVX-512's 64-bit multiplies where the CPU has
    /// them ([`wide`]; the baseline x86-64 build has no vector 64-bit multiply).
    fn keep_flags(&self, start: usize, out: &mut [bool]) {
        wide(
            #[inline(always)]
            || self.keep_flags_portable(start, out),
        )
    }

    #[inline(always)]
    fn keep_flags_portable(&self, start: usize, out: &mut [bool]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.keeps(start + j);
        }
    }

    /// `x ∘ M` as a new buffer.
    fn masked<T: Elem>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        self.apply(&mut out, |i, o| *o = x[i]);
        out
    }

    /// `v ← v ∘ M` in place.
    fn mask_in_place<T: Elem>(&self, v: &mut [T]) {
        self.apply(v, |_, _| {});
    }
}

/// Elements per parallel task in elementwise passes.
const CHUNK: usize = 1 << 14;

// ---------------------------------------------------------------------------------------------
// LoRA projection
// ---------------------------------------------------------------------------------------------

/// `x (…, in) → (…, out)`: frozen `w (out, in)` and bias, adapter `a (r, in)`, `b (out, r)`.
struct LoraLinear {
    w: Frozen,
    bias: Option<Tensor>,
    scale: f64,
    dropout: Option<Dropout>,
}

/// A copy of a tensor's contiguous CPU data (for the small adapter factors).
fn data<T: Elem>(t: &Tensor) -> CResult<Vec<T>> {
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(s) = &*s else { candle_core::bail!("fused op: tensor not on the CPU") };
    Ok(slice::<T>(s, l)?.to_vec())
}

/// Runs `f` on the contiguous CPU data of `t` without copying it.
pub(crate) fn with_data<T: Elem, R>(t: &Tensor, f: impl FnOnce(&[T]) -> CResult<R>) -> CResult<R> {
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(s) = &*s else { candle_core::bail!("fused op: tensor not on the CPU") };
    f(slice::<T>(s, l)?)
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
        w: match w {
            Frozen::Dense(w) => Frozen::Dense(w.contiguous()?),
            packed => packed.clone(),
        },
        bias: bias.map(Tensor::contiguous).transpose()?,
        scale,
        dropout: Dropout::new(p, seed),
    };
    Ok(x.contiguous()?.apply_op3(&a.contiguous()?, &b.contiguous()?, op)?)
}

// ---------------------------------------------------------------------------------------------
// SwiGLU fused with the down projection
// ---------------------------------------------------------------------------------------------

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
    let w = match w_down {
        Frozen::Dense(w) => Frozen::Dense(w.contiguous()?),
        packed => packed.clone(),
    };
    let op = SwiGluDown { w };
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, op)?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn t(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> =
            (0..n).map(|i| ((splitmix64(seed ^ i as u64) >> 11) as f64 / (1u64 << 53) as f64) - 0.5).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn dropout_drops_about_p_and_rescales_the_rest() {
        let n = 200_000;
        for p in [0.05, 0.5] {
            let s = Dropout::new(p, 3).unwrap().scales::<f64>(n);
            let dropped = s.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
            assert!(s.iter().all(|&v| v == 0.0 || (v - 1.0 / (1.0 - p)).abs() < 1e-12));
        }
        assert!(Dropout::new(0.0, 3).is_none());
        let (a, b) = (Dropout::new(0.3, 1).unwrap().scales::<f32>(64), Dropout::new(0.3, 2).unwrap().scales::<f32>(64));
        assert_ne!(a, b, "seeds 1 and 2 drew the same mask");
    }

    #[test]
    fn vectorized_mask_flags_equal_the_scalar_hash() {
        let d = Dropout::new(0.3, 5).unwrap();
        let mut flags = vec![false; 1000];
        d.keep_flags(12_345, &mut flags);
        let want: Vec<bool> = (0..1000).map(|j| d.keeps(12_345 + j)).collect();
        assert_eq!(flags, want);
        assert!(flags.iter().any(|&k| !k) && flags.iter().any(|&k| k));
    }

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
    fn swiglu_down_equals_the_composed_formula() {
        let (g, u, w) = (t(&[3, 7], 6), t(&[3, 7], 7), t(&[4, 7], 8));
        let y = swiglu_down(&g, &u, &Frozen::Dense(w.clone())).unwrap();
        let want = crate::ops::swiglu(&g, &u).unwrap().matmul(&w.t().unwrap()).unwrap();
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
        assert!(swiglu_down(&t(&[2, 7], 1), &t(&[2, 7], 2), &Frozen::Dense(t(&[4, 6], 3))).is_err());
    }
}
