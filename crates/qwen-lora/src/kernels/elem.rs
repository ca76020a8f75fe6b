//! Element types and storage access shared by every kernel: the [`Elem`] trait (f32, f64), a
//! fast `exp`, the sigmoid, contiguous slices of CPU storage, and the dtype dispatch.

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor, WithDType};
use num_traits::Float;

pub type CResult<T> = candle_core::Result<T>;

/// Elements per parallel task in elementwise passes.
pub const CHUNK: usize = 1 << 14;

/// The element types our kernels run on.
pub trait Elem: WithDType + Float + Send + Sync {
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

#[inline(always)]
pub fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_fast())
}

/// The contiguous elements of `s` that `l` covers; an error for a strided layout.
pub fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> CResult<&'a [T]> {
    let (a, b) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("fused op: input must be contiguous".into()))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($dtype:expr, $name:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            candle_core::DType::F32 => $f::<f32>($($arg),*),
            candle_core::DType::F64 => $f::<f64>($($arg),*),
            dt => Err(candle_core::Error::Msg(format!("{}: unsupported dtype {dt:?}", $name))),
        }
    };
}
pub(crate) use dispatch;

/// Whether the kernels take `t`: contiguous-able f32 or f64 on the CPU. Elsewhere the ops fall
/// back to compositions of candle primitives.
pub fn use_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Runs `f` on the contiguous CPU data of `t` without copying it.
pub fn with_data<T: Elem, R>(t: &Tensor, f: impl FnOnce(&[T]) -> CResult<R>) -> CResult<R> {
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(s) = &*s else { candle_core::bail!("fused op: tensor not on the CPU") };
    f(slice::<T>(s, l)?)
}

/// A copy of a tensor's contiguous CPU data (for the small adapter factors).
pub fn data<T: Elem>(t: &Tensor) -> CResult<Vec<T>> {
    with_data::<T, _>(t, |d| Ok(d.to_vec()))
}

/// An f64 CPU tensor of values in [-0.5, 0.5) drawn from `seed`, for the kernels' tests.
#[cfg(test)]
pub fn test_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> =
        (0..n).map(|i| ((crate::splitmix::hash(seed ^ i as u64) >> 11) as f64 / (1u64 << 53) as f64) - 0.5).collect();
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
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
}
