//! Inverted dropout whose mask is a counter hash of (seed, element): stateless, so the backward
//! pass regenerates exactly the forward's mask instead of storing it.

// Kernels are generic over `num_traits::Float`, which has no `*=`.
#![allow(clippy::assign_op_pattern)]

use rayon::prelude::*;

use super::cpu::wide;
use super::elem::{CHUNK, Elem};
use crate::splitmix::hash;

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
            seed: hash(seed),
            threshold: (p * u64::MAX as f64) as u64,
            keep_scale: 1.0 / (1.0 - p),
        })
    }

    #[inline(always)]
    fn keeps(&self, i: usize) -> bool {
        hash(self.seed ^ i as u64) >= self.threshold
    }

    /// The mask's first `n` values: 0 or `1 / (1 - p)`.
    pub fn scales<T: Elem>(&self, n: usize) -> Vec<T> {
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
    pub fn masked<T: Elem>(&self, x: &[T]) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        self.apply(&mut out, |i, o| *o = x[i]);
        out
    }

    /// `v ← v ∘ M` in place.
    pub fn mask_in_place<T: Elem>(&self, v: &mut [T]) {
        self.apply(v, |_, _| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
