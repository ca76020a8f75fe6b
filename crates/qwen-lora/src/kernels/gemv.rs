//! Matrix-vector products for a few rows at once: `x (m, k) · Wᵀ` with `m` ≤ [`MAX_ROWS`], as a
//! decoding step computes them. Every weight row is read once and dotted with all of `x`'s rows,
//! which stay in cache.
//!
//! A general GEMM packs the whole weight into panels on every call; that is cheap next to the
//! arithmetic for hundreds of rows (training, prefill) but dominates for the few rows of a
//! decoding step, which is bound by reading the weights from memory. On x86-64 with AVX2 and FMA
//! ([`super::cpu`]) the dot products use them, four `x` rows per weight row so each weight load
//! feeds four FMAs.

use rayon::prelude::*;

use super::cpu::{has_avx2_fma, has_f16c};

/// Up to this many rows, [`matmul_xw`] beats the general GEMM.
pub const MAX_ROWS: usize = 32;

/// Weight rows per parallel task: big enough to amortize scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 32;

/// A weight matrix as the few-row kernels read it.
#[derive(Clone, Copy)]
pub enum Weights<'a> {
    F32(&'a [f32]),
    /// IEEE half precision: half the bytes to stream per decoding step.
    F16(&'a [half::f16]),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
        }
    }
}

/// `x (m, k)` row-major, `w (n, k)` row-major (f32 or f16) → `x·Wᵀ (m, n)` row-major, accumulated
/// in f32.
pub fn matmul_xw(x: &[f32], w: Weights, m: usize, n: usize, k: usize) -> Vec<f32> {
    assert!(x.len() == m * k && w.len() == n * k, "matmul_xw: x {} / w {} for m {m} n {n} k {k}", x.len(), w.len());
    // Output transposed (n, m): each task owns whole weight rows and so a disjoint chunk.
    let mut yt = vec![0f32; n * m];
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let fast = has_avx2_fma();
    match w {
        Weights::F32(w) => {
            yt.par_chunks_mut(m * ROWS_PER_TASK).zip(w.par_chunks(k * ROWS_PER_TASK)).for_each(|(yt, w)| {
                rows_times_x(x, w, yt, m, k, fast);
            })
        }
        Weights::F16(w) => {
            let fast16 = fast && has_f16c();
            yt.par_chunks_mut(m * ROWS_PER_TASK).zip(w.par_chunks(k * ROWS_PER_TASK)).for_each(|(yt, w)| {
                // One register block of weight rows at a time, widened into a buffer that stays in cache.
                let mut rows = vec![0f32; W_BLOCK * k];
                for (yt, w) in yt.chunks_mut(m * W_BLOCK).zip(w.chunks(k * W_BLOCK)) {
                    let rows = &mut rows[..w.len()];
                    widen(w, rows, fast16);
                    rows_times_x(x, rows, yt, m, k, fast);
                }
            })
        }
    }
    let mut y = vec![0f32; m * n];
    for (j, col) in yt.chunks(m).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            y[i * n + j] = v;
        }
    }
    y
}

/// Weight rows per register block of the AVX2 kernel: each load of `x` feeds this many FMAs.
const W_BLOCK: usize = 4;

/// `yt[j·m + i] = x_i · w_j` for every row `w_j` of `w` (`yt.len() / m` rows of `k`) and row `x_i`
/// of `x` (`m` rows of `k`). With AVX2, blocks of 4 weight rows × 2 `x` rows: eight accumulators,
/// so `x` is read once per four weight rows instead of once per row.
fn rows_times_x(x: &[f32], w: &[f32], yt: &mut [f32], m: usize, k: usize, fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        let mut wq = w.chunks_exact(W_BLOCK * k);
        let mut yq = yt.chunks_exact_mut(W_BLOCK * m);
        for (w4, y4) in (&mut wq).zip(&mut yq) {
            let mut i = 0;
            while i + 2 <= m {
                // SAFETY: `fast` means AVX2 and FMA were detected; slices hold 2 and 4 rows of k.
                let s = unsafe { avx::block::<2>(&x[i * k..(i + 2) * k], w4, k) };
                for (j, s) in s.iter().enumerate() {
                    y4[j * m + i..j * m + i + 2].copy_from_slice(s);
                }
                i += 2;
            }
            if i < m {
                // SAFETY: as above, with 1 row of x.
                let s = unsafe { avx::block::<1>(&x[i * k..(i + 1) * k], w4, k) };
                for (j, s) in s.iter().enumerate() {
                    y4[j * m + i] = s[0];
                }
            }
        }
        for (w, y) in wq.remainder().chunks(k).zip(yq.into_remainder().chunks_mut(m)) {
            row_dots(x, w, y, k, fast);
        }
        return;
    }
    for (w, y) in w.chunks(k).zip(yt.chunks_mut(m)) {
        row_dots(x, w, y, k, fast);
    }
}

/// `out[i] = x[i]·w` for every row `i` of `x`.
fn row_dots(x: &[f32], w: &[f32], out: &mut [f32], k: usize, fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        let mut i = 0;
        while i + 4 <= out.len() {
            // SAFETY: `fast` means AVX2 and FMA were detected on this CPU; slices are k long.
            let d = unsafe { avx::dot4(&x[i * k..(i + 4) * k], w, k) };
            out[i..i + 4].copy_from_slice(&d);
            i += 4;
        }
        for (i, o) in out.iter_mut().enumerate().skip(i) {
            // SAFETY: as above.
            *o = unsafe { avx::dot(&x[i * k..(i + 1) * k], w) };
        }
        return;
    }
    let _ = fast;
    for (o, x) in out.iter_mut().zip(x.chunks(k)) {
        *o = dot_portable(x, w);
    }
}

/// f16 → f32 of one weight row (into a buffer that stays in L1 for the dot products).
fn widen(w: &[half::f16], out: &mut [f32], fast: bool) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` means F16C (and AVX) were detected; both slices have the same length.
        unsafe { avx::widen(w, out) };
        return;
    }
    let _ = fast;
    for (o, v) in out.iter_mut().zip(w) {
        *o = v.to_f32();
    }
}

/// Eight independent partial sums, which compilers vectorize on any target.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// f16 → f32, eight at a time.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen(w: &[half::f16], out: &mut [f32]) {
        let n = w.len().min(out.len());
        let (pw, po) = (w.as_ptr() as *const u16, out.as_mut_ptr());
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                _mm256_storeu_ps(po.add(i), _mm256_cvtph_ps(_mm_loadu_si128(pw.add(i) as *const __m128i)));
                i += 8;
            }
        }
        for j in i..n {
            out[j] = w[j].to_f32();
        }
    }

    /// Dot product of two equally long slices.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        unsafe {
            while i + 16 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), s1);
                i += 16;
            }
            while i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                i += 8;
            }
            let mut s = hsum(_mm256_add_ps(s0, s1));
            while i < n {
                s += *pa.add(i) * *pb.add(i);
                i += 1;
            }
            s
        }
    }

    /// The `4 × R` dot products of four consecutive `k`-long rows of `w` with `R` of `x`, as
    /// `[w row][x row]`: per 8 columns, 4 + R loads feed 4·R FMAs into register accumulators.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block<const R: usize>(x: &[f32], w: &[f32], k: usize) -> [[f32; R]; 4] {
        assert!(x.len() >= R * k && w.len() >= 4 * k);
        let (px, pw) = (x.as_ptr(), w.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); R]; 4];
        let mut i = 0;
        unsafe {
            while i + 8 <= k {
                let wv = [
                    _mm256_loadu_ps(pw.add(i)),
                    _mm256_loadu_ps(pw.add(k + i)),
                    _mm256_loadu_ps(pw.add(2 * k + i)),
                    _mm256_loadu_ps(pw.add(3 * k + i)),
                ];
                for r in 0..R {
                    let xv = _mm256_loadu_ps(px.add(r * k + i));
                    for (acc, wv) in acc.iter_mut().zip(&wv) {
                        acc[r] = _mm256_fmadd_ps(*wv, xv, acc[r]);
                    }
                }
                i += 8;
            }
            let mut out = [[0f32; R]; 4];
            for (j, (out, acc)) in out.iter_mut().zip(&acc).enumerate() {
                for (r, (o, acc)) in out.iter_mut().zip(acc).enumerate() {
                    let mut s = hsum(*acc);
                    for t in i..k {
                        s += *px.add(r * k + t) * *pw.add(j * k + t);
                    }
                    *o = s;
                }
            }
            out
        }
    }

    /// Dot products of four consecutive `k`-long rows of `x` with `w`: each load of `w` feeds four FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4(x: &[f32], w: &[f32], k: usize) -> [f32; 4] {
        assert!(x.len() >= 4 * k && w.len() >= k);
        let (px, pw) = (x.as_ptr(), w.as_ptr());
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        unsafe {
            while i + 8 <= k {
                let wv = _mm256_loadu_ps(pw.add(i));
                for (r, s) in s.iter_mut().enumerate() {
                    *s = _mm256_fmadd_ps(_mm256_loadu_ps(px.add(r * k + i)), wv, *s);
                }
                i += 8;
            }
            let mut out = [hsum(s[0]), hsum(s[1]), hsum(s[2]), hsum(s[3])];
            while i < k {
                let wv = *pw.add(i);
                for (r, o) in out.iter_mut().enumerate() {
                    *o += *px.add(r * k + i) * wv;
                }
                i += 1;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum::<f64>() as f32;
            }
        }
        y
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_a_naive_matmul_for_odd_and_even_shapes() {
        for (m, n, k) in [(1, 1, 1), (1, 7, 13), (3, 33, 8), (4, 64, 64), (5, 100, 37), (16, 70, 896), (32, 9, 129)] {
            let (x, w) = (data(m * k, 1), data(n * k, 2));
            let got = matmul_xw(&x, Weights::F32(&w), m, n, k);
            let want = naive(&x, &w, m, n, k);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "m {m} n {n} k {k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn half_weights_match_a_naive_matmul_of_the_rounded_weights() {
        for (m, n, k) in [(1, 5, 13), (4, 40, 64), (7, 33, 129)] {
            let x = data(m * k, 5);
            let w16: Vec<half::f16> = data(n * k, 6).iter().map(|&v| half::f16::from_f32(v)).collect();
            let w32: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let got = matmul_xw(&x, Weights::F16(&w16), m, n, k);
            let want = naive(&x, &w32, m, n, k);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "m {m} n {n} k {k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn the_portable_paths_match_the_simd_ones() {
        let k = 37;
        for m in [1, 3, 5] {
            let (x, w) = (data(m * k, 7), data(k, 8));
            let (mut simd, mut portable) = (vec![0f32; m], vec![0f32; m]);
            row_dots(&x, &w, &mut simd, k, has_avx2_fma());
            row_dots(&x, &w, &mut portable, k, false);
            for (a, b) in simd.iter().zip(&portable) {
                assert!((a - b).abs() < 1e-4, "m {m}: {a} vs {b}");
            }
        }
        let w16: Vec<half::f16> = data(45, 9).iter().map(|&v| half::f16::from_f32(v)).collect();
        let (mut a, mut b) = (vec![0f32; 45], vec![0f32; 45]);
        widen(&w16, &mut a, has_avx2_fma() && has_f16c());
        widen(&w16, &mut b, false);
        assert_eq!(a, b);
    }

    #[test]
    fn the_portable_dot_agrees_with_the_simd_one() {
        let (a, b) = (data(203, 3), data(203, 4));
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_portable(&a, &b) - want).abs() < 1e-3);
        let mut out = [0f32; 1];
        row_dots(&a, &b, &mut out, 203, has_avx2_fma());
        assert!((out[0] - want).abs() < 1e-3);
    }
}
