//! Mean cross-entropy over the rows that carry loss; the backward recomputes the softmax in one
//! exp pass instead of keeping it.

// Kernels are generic over `num_traits::Float`, which has no `+=`.
#![allow(clippy::assign_op_pattern)]

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

use crate::Result;
use crate::kernels::cpu::wide;
use crate::kernels::elem::{CResult, Elem, dispatch, slice, use_kernels};

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
    use candle_core::Device;

    use super::*;

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
