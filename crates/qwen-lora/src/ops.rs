//! Fused CPU ops with explicit backward passes.
//!
//! candle's fused `rms_norm`, `softmax_last_dim` and `rope` have no backward pass, and composing
//! them from primitives is slow on a CPU: each primitive is single-threaded and allocates (see
//! `shared/PERFORMANCE.md`). Each op here is one multithreaded pass forward and one backward.
//! They are also what inference runs, so training and generation share one forward.
//!
//! - [`linear`]: a frozen projection `x·Wᵀ + b` whose backward returns only dX = dY·W — candle's own
//!   matmul backward would also compute the (unused) gradient of the frozen weight.
//! - [`rms_norm`], [`swiglu`], [`rope`], [`masked_softmax`], [`cross_entropy`].
//!
//! Kernels run on contiguous f32 or f64 CPU storage (f64 for gradient checks); other devices and
//! dtypes fall back to compositions of candle primitives.

// Kernels are generic over `num_traits::Float`, which has no `+=`; masks index several arrays.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop)]

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Storage, Tensor, WithDType};
use num_traits::Float;
use rayon::prelude::*;

use crate::Result;

type CResult<T> = candle_core::Result<T>;

/// The element types our kernels run on.
pub(crate) trait Elem: WithDType + Float + Send + Sync {
    /// `e^x` for the hot loops (softmax, SiLU, cross-entropy): exact `exp` for f64 (gradient
    /// checks), [`exp_f32`] for f32.
    fn exp_fast(self) -> Self;
    /// The slice as f32, for the bf16 products (an error for f64).
    fn f32(v: &[Self]) -> CResult<&[f32]>;
    fn f32_mut(v: &mut [Self]) -> CResult<&mut [f32]>;
}
impl Elem for f32 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
    fn f32(v: &[Self]) -> CResult<&[f32]> {
        Ok(v)
    }
    fn f32_mut(v: &mut [Self]) -> CResult<&mut [f32]> {
        Ok(v)
    }
}
impl Elem for f64 {
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    fn f32(_: &[Self]) -> CResult<&[f32]> {
        candle_core::bail!("bf16 weights take f32 inputs, got f64")
    }
    fn f32_mut(_: &mut [Self]) -> CResult<&mut [f32]> {
        candle_core::bail!("bf16 weights take f32 inputs, got f64")
    }
}

/// `e^x` in f32 without a libm call, so loops over it vectorize: `e^x = 2^n · e^r` with
/// `n = round(x / ln 2)`, `|r| ≤ ln 2 / 2`, and Cephes' `expf` polynomial for `e^r` (≈ 1 ulp).
/// Inputs are clamped to [-87, 88] (results 1.6e-38 … 1.7e38, never 0 or ∞); NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Runs `f` compiled for AVX-512 where the CPU has it. The build targets baseline x86-64, whose
/// loops vectorize with SSE2 only; the elementwise kernels call their per-row or per-chunk loops
/// through this. The same operations in the same order run either way, so results are identical
/// (Rust never fuses a multiply and an add on its own).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has every feature `avx512` is compiled for.
            return unsafe { avx512(f) };
        }
    }
    f()
}

pub(crate) fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> CResult<&'a [T]> {
    let (a, b) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fused op: input must be contiguous".into()))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($dtype:expr, $name:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            dt => Err(candle_core::Error::Msg(format!("{}: unsupported dtype {dt:?}", $name))),
        }
    };
}

pub(crate) fn use_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

// ---------------------------------------------------------------------------------------------
// Frozen linear layer
// ---------------------------------------------------------------------------------------------

/// A frozen weight `W (out, in)` as the kernels read it: dense (f32/f64, any device), or packed
/// bf16 for the training step's products ([`crate::bf16`]).
#[derive(Clone, Debug)]
pub enum Frozen {
    Dense(Tensor),
    Bf16(Arc<crate::bf16::Bf16Weight>),
}

impl Frozen {
    /// `(out, in)`.
    pub fn dims(&self) -> CResult<(usize, usize)> {
        match self {
            Frozen::Dense(w) => w.dims2(),
            Frozen::Bf16(p) => Ok(p.dims()),
        }
    }

    /// Whether the kernels can take `x` with this weight: CPU, and the weight's dtype (f32 for bf16).
    pub fn applies(&self, x: &Tensor) -> bool {
        use_kernels(x)
            && match self {
                Frozen::Dense(w) => w.dtype() == x.dtype(),
                Frozen::Bf16(_) => x.dtype() == DType::F32,
            }
    }

    /// `y (m, out) ← [y +] x (m, in) · Wᵀ`.
    pub(crate) fn forward_into<T: Elem>(&self, y: &mut [T], m: usize, x: &[T], accumulate: bool) -> CResult<()> {
        let (n, k) = self.dims()?;
        match self {
            Frozen::Dense(w) => crate::fused::with_data::<T, _>(w, |w| {
                crate::fused::gemm_into(
                    y,
                    m,
                    n,
                    k,
                    crate::fused::rows(x, k),
                    crate::fused::transposed(w, k),
                    accumulate,
                    T::one(),
                );
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
            Frozen::Dense(w) => crate::fused::with_data::<T, _>(w, |w| {
                crate::fused::gemm_into(
                    dx,
                    m,
                    k,
                    n,
                    crate::fused::rows(dy, n),
                    crate::fused::rows(w, k),
                    accumulate,
                    T::one(),
                );
                Ok(())
            }),
            Frozen::Bf16(p) => {
                p.backward(T::f32_mut(dx)?, m, T::f32(dy)?, accumulate);
                Ok(())
            }
        }
    }
}

struct FrozenLinear {
    w: Frozen,              // (out, in)
    w_half: Option<Tensor>, // (out, in) f16 copy read by decoding steps
    b: Option<Tensor>,      // (out,)
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
        let mut y = match (&self.w, s) {
            (Frozen::Bf16(p), CpuStorage::F32(xs)) => {
                let mut y = vec![0f32; m * n];
                p.forward(&mut y, m, &xs[start..start + m * k], false);
                CpuStorage::F32(y)
            }
            (Frozen::Bf16(_), _) => candle_core::bail!("frozen-linear: bf16 weights take f32 inputs"),
            (Frozen::Dense(w), s) => {
                let (ws, wl) = w.storage_and_layout();
                let Storage::Cpu(ws) = &*ws else { candle_core::bail!("frozen-linear: weight is not on the CPU") };
                let half = self.w_half.as_ref().map(|h| h.storage_and_layout());
                match (s, ws) {
                    // A decoding step: stream the weight once (in f16 when there is a copy)
                    // instead of packing it for a GEMM.
                    (CpuStorage::F32(xs), CpuStorage::F32(_)) if m <= crate::skinny::MAX_ROWS && wl.is_contiguous() => {
                        let w = match &half {
                            Some((hs, hl)) => match &**hs {
                                Storage::Cpu(CpuStorage::F16(h)) if hl.is_contiguous() && hl.dims() == [n, k] => {
                                    crate::skinny::Weights::F16(&h[hl.start_offset()..hl.start_offset() + n * k])
                                }
                                _ => candle_core::bail!(
                                    "frozen-linear: the half copy must be a contiguous ({n}, {k}) f16 CPU tensor"
                                ),
                            },
                            None => crate::skinny::Weights::F32(slice::<f32>(ws, wl)?),
                        };
                        CpuStorage::F32(crate::skinny::matmul_xw(&xs[start..start + m * k], w, m, n, k))
                    }
                    _ => {
                        // (m, k) · (k, n): Wᵀ is a transposed view of the (n, k) weight, no copy.
                        let x_l = Layout::contiguous_with_offset((m, k), start);
                        let wt_l =
                            Layout::new((n, k).into(), wl.stride().to_vec(), wl.start_offset()).transpose(0, 1)?;
                        s.matmul(ws, (1, m, n, k), &x_l, &wt_l)?
                    }
                }
            }
        };
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

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // dX = dY · W : (m, n) · (n, k)
        let (n, k) = self.w.dims()?;
        let m = grad.elem_count() / n;
        let dx = match &self.w {
            Frozen::Dense(w) => grad.reshape((m, n))?.matmul(w)?,
            Frozen::Bf16(p) => {
                let grad = grad.to_dtype(DType::F32)?.contiguous()?;
                let mut dx = vec![0f32; m * k];
                crate::fused::with_data::<f32, _>(&grad, |dy| {
                    p.backward(&mut dx, m, dy, false);
                    Ok(())
                })?;
                Tensor::from_vec(dx, (m, k), grad.device())?
            }
        };
        Ok(Some(dx.reshape(arg.shape())?))
    }
}

/// A frozen projection: `x (…, in) · Wᵀ (in, out) + b → (…, out)`; gradients flow to `x` only.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    linear_with_half(x, w, None, b)
}

/// [`linear`] where inputs of at most 32 rows (decoding steps, and very short prefills) read
/// `w_half`, an f16 copy of `w`, moving half the bytes; larger inputs (prefill, training) use `w`.
pub fn linear_with_half(x: &Tensor, w: &Tensor, w_half: Option<&Tensor>, b: Option<&Tensor>) -> Result<Tensor> {
    linear_frozen(x, &Frozen::Dense(w.clone()), w_half, b)
}

/// [`linear_with_half`] for any [`Frozen`] weight; a bf16 one takes every input size.
pub fn linear_frozen(x: &Tensor, w: &Frozen, w_half: Option<&Tensor>, b: Option<&Tensor>) -> Result<Tensor> {
    if w.applies(x) {
        let x = x.contiguous()?;
        return Ok(x.apply_op1(FrozenLinear { w: w.clone(), w_half: w_half.cloned(), b: b.cloned() })?);
    }
    let Frozen::Dense(w) = w else {
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

// ---------------------------------------------------------------------------------------------
// RMSNorm with a frozen weight
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(gate) · up
// ---------------------------------------------------------------------------------------------

struct SwiGlu;

#[inline(always)]
pub(crate) fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

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

// ---------------------------------------------------------------------------------------------
// Rotary position embedding, fused with the (b, t, h, d) → (b, h, t, d) transpose
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Masked, scaled softmax for attention scores
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Cross-entropy over the rows that carry loss
// ---------------------------------------------------------------------------------------------

struct CrossEntropy {
    targets: Arc<Vec<u32>>,
}

#[inline(always)]
fn row_max<T: Elem>(row: &[T]) -> T {
    row.iter().fold(T::neg_infinity(), |a, &b| Float::max(a, b))
}

/// Σ f(x) over the row, in eight running sums so the loop vectorizes.
#[inline(always)]
fn lane_sum<T: Elem>(row: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(T::zero(), |a, &v| a + f(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = *a + f(v);
        }
    }
    acc.iter().fold(tail, |a, &b| a + b)
}

#[inline(always)]
fn log_sum_exp<T: Elem>(row: &[T]) -> T {
    let max = row_max(row);
    max + lane_sum(row, |v| (v - max).exp_fast()).ln()
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, v) = l.shape().dims2()?;
        fn go<T: Elem>(s: &CpuStorage, l: &Layout, t: &[u32], v: usize) -> CResult<CpuStorage> {
            let x = slice::<T>(s, l)?;
            let losses: Vec<T> = x
                .par_chunks(v)
                .zip(t.par_iter())
                .map(|(row, &t)| {
                    wide(
                        #[inline(always)]
                        || log_sum_exp(row),
                    ) - row[t as usize]
                })
                .collect();
            let n = T::from(losses.len()).unwrap_or_else(T::one);
            Ok(T::to_cpu_storage_owned(vec![losses.into_iter().fold(T::zero(), |a, b| a + b) / n]))
        }
        if self.targets.len() != n || self.targets.iter().any(|&t| t as usize >= v) {
            candle_core::bail!(
                "cross-entropy: {n} rows of {v} logits but {} targets (or a target out of range)",
                self.targets.len()
            )
        }
        let y = dispatch!(s.dtype(), "cross-entropy", go(s, l, &self.targets, v))?;
        Ok((y, Shape::from(())))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let g = grad.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let arg = arg.contiguous()?;
        Ok(Some(arg.apply_op1_no_bwd(&CrossEntropyBwd { targets: self.targets.clone(), g })?))
    }
}

struct CrossEntropyBwd {
    targets: Arc<Vec<u32>>,
    g: f64,
}

impl CustomOp1 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "cross-entropy-bwd"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let (n, v) = l.shape().dims2()?;
        fn go<T: Elem>(s: &CpuStorage, l: &Layout, t: &[u32], g: f64, n: usize, v: usize) -> CResult<CpuStorage> {
            let x = slice::<T>(s, l)?;
            let c = T::from(g / n as f64).unwrap_or_else(T::zero);
            let mut dx = vec![T::zero(); x.len()];
            // dx = c · (softmax(row) − onehot(t)): one exp pass (the forward's log-sum-exp is not kept).
            dx.par_chunks_mut(v).zip(x.par_chunks(v).zip(t.par_iter())).for_each(|(dx, (row, &t))| {
                wide(
                    #[inline(always)]
                    || {
                        let max = row_max(row);
                        for (d, &x) in dx.iter_mut().zip(row) {
                            *d = (x - max).exp_fast();
                        }
                        let scale = c / lane_sum(dx, |d| d);
                        dx.iter_mut().for_each(|d| *d = *d * scale);
                        dx[t as usize] = dx[t as usize] - c;
                    },
                )
            });
            Ok(T::to_cpu_storage_owned(dx))
        }
        let dx = dispatch!(s.dtype(), "cross-entropy-bwd", go(s, l, &self.targets, self.g, n, v))?;
        Ok((dx, l.shape().clone()))
    }
}

/// Mean cross-entropy: logits (n, v), targets (n,) u32 → scalar.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if use_kernels(logits) {
        let t = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let x = logits.contiguous()?;
        return Ok(x.apply_op1(CrossEntropy { targets: Arc::new(t) })?);
    }
    Ok(candle_nn::loss::cross_entropy(logits, targets)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_matches_exp_within_two_ulp_and_saturates_outside_its_range() {
        let mut worst = 0f64;
        for i in -86_990..=87_990 {
            let x = i as f32 * 1e-3;
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-1e4), exp_f32(-87.0));
        assert!(exp_f32(-1e4) > 0.0 && exp_f32(1e4).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn f32_cross_entropy_and_its_gradient_match_f64() {
        let (n, v) = (3, 1000);
        let x: Vec<f64> = (0..n * v).map(|i| ((i * 7919 % 1013) as f64 / 1013.0 - 0.5) * 30.0).collect();
        let targets = Tensor::new(&[5u32, 999, 0], &Device::Cpu).unwrap();
        let run = |dt: DType| {
            let x = candle_core::Var::from_tensor(
                &Tensor::from_vec(x.clone(), (n, v), &Device::Cpu).unwrap().to_dtype(dt).unwrap(),
            )
            .unwrap();
            let loss = cross_entropy(x.as_tensor(), &targets).unwrap();
            let grad = loss.backward().unwrap().get(&x).unwrap().to_dtype(DType::F64).unwrap();
            (
                loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(),
                grad.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            )
        };
        let ((l32, g32), (l64, g64)) = (run(DType::F32), run(DType::F64));
        assert!((l32 - l64).abs() < 1e-5 * l64.abs(), "loss {l32} vs {l64}");
        let worst = g32.iter().zip(&g64).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        assert!(worst < 1e-6, "gradient differs by {worst:e}");
    }
}
