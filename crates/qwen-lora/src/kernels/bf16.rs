//! bf16 products with frozen weights, accumulated in f32, on CPUs with AVX512-BF16.
//!
//! Training spends most of its time multiplying activations by frozen weights: `x·Wᵀ` forward
//! and `dY·W` backward. `vdpbf16ps` (AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake /
//! Sapphire Rapids and later) does two bf16 multiply-adds per f32 lane, twice the work of an f32
//! FMA per cycle. [`Bf16Weight`] packs a frozen `W (out, in)` once, in both orientations and in
//! the order the kernel streams it; activations are rounded to bf16 per call and every product is
//! summed in f32 — the mixed precision of bf16 autocast. The adapter, its gradients, the optimizer
//! and everything outside these products stay f32.
//!
//! Layout of a packed `B (k, n)` (`Wᵀ` forward, `W` backward): panels of [`NR`] columns; in a
//! panel, for each pair of rows `(2p, 2p+1)`, the 32 columns' `(B[2p, c], B[2p+1, c])` bf16
//! pairs, zero past `k` and `n`. The kernel computes a tile of [`MR`] activation rows × 32
//! columns in 24 zmm accumulators: per row pair it loads the panel's two vectors and broadcasts
//! each activation row's bf16 pair.

use rayon::prelude::*;

use crate::{Error, Result};

/// Columns of `B` per panel: two zmm registers of 16 f32 lanes.
pub const NR: usize = 32;
/// Activation rows per kernel call.
pub const MR: usize = 12;
/// Row pairs of a panel per cache block: a 64 KiB slice, reused by every activation row.
const KC_PAIRS: usize = 512;

/// Whether this CPU runs the kernel (AVX512F with AVX512-BF16).
pub fn available() -> bool {
    super::cpu::has_avx512_bf16()
}

/// f32 → bf16 bits, rounding to nearest even; NaN stays NaN.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `B (k, n)` packed for the kernel (see the module doc).
struct PackedB {
    k: usize,
    n: usize,
    pairs: usize,
    data: Vec<u16>,
}

impl PackedB {
    /// `B[kk, c] = src[kk·rs + c·cs]`.
    fn pack(src: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Self {
        let pairs = k.div_ceil(2);
        let mut data = vec![0u16; n.div_ceil(NR) * pairs * 2 * NR];
        if pairs > 0 {
            data.par_chunks_mut(pairs * 2 * NR).enumerate().for_each(|(j, panel)| {
                let cols = (n - j * NR).min(NR);
                for kk in 0..k {
                    let (p, h) = (kk / 2, kk % 2);
                    for l in 0..cols {
                        panel[p * 2 * NR + 2 * l + h] = bf16_bits(src[kk * rs + (j * NR + l) * cs]);
                    }
                }
            });
        }
        Self { k, n, pairs, data }
    }

    fn panel(&self, j: usize) -> &[u16] {
        let len = self.pairs * 2 * NR;
        &self.data[j * len..(j + 1) * len]
    }
}

/// A frozen weight `W (out, in)` in bf16, packed for `x·Wᵀ` and for `dY·W`.
pub struct Bf16Weight {
    /// `Wᵀ (in, out)`.
    fwd: PackedB,
    /// `W (out, in)`.
    bwd: PackedB,
}

impl std::fmt::Debug for Bf16Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bf16Weight({}, {})", self.fwd.n, self.fwd.k)
    }
}

impl Bf16Weight {
    /// Packs a row-major `(out, in)` f32 weight. Fails on a CPU without AVX512-BF16.
    pub fn new(w: &[f32], out: usize, inp: usize) -> Result<Self> {
        if !available() {
            return Err(Error::msg(
                "bf16 matmuls need a CPU with AVX512-BF16 (AMD Zen 4+, Intel Sapphire Rapids+); this one has none: use f32",
            ));
        }
        Self::pack(w, out, inp)
    }

    /// The packing alone, which runs on any CPU (the products do not).
    fn pack(w: &[f32], out: usize, inp: usize) -> Result<Self> {
        if w.len() != out * inp {
            return Err(Error::msg(format!("bf16 weight: {} values for a ({out}, {inp}) matrix", w.len())));
        }
        Ok(Self { fwd: PackedB::pack(w, inp, out, 1, inp), bwd: PackedB::pack(w, out, inp, inp, 1) })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.fwd.n, self.fwd.k)
    }

    /// Bytes held by both packed copies.
    pub fn bytes(&self) -> usize {
        2 * (self.fwd.data.len() + self.bwd.data.len())
    }

    /// Row `r` of `W` (`in` values), read back from the packing: an embedding lookup when `W`
    /// is a tied embedding.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let b = &self.fwd;
        let panel = b.panel(r / NR);
        let l = r % NR;
        for (d, o) in out.iter_mut().enumerate().take(b.k) {
            *o = bf16_to_f32(panel[(d / 2) * 2 * NR + 2 * l + d % 2]);
        }
    }

    /// `y (m, out) ← [y +] x (m, in) · Wᵀ`.
    pub fn forward(&self, y: &mut [f32], m: usize, x: &[f32], accumulate: bool) {
        product(y, m, x, &self.fwd, accumulate);
    }

    /// `dx (m, in) ← [dx +] dy (m, out) · W`.
    pub fn backward(&self, dx: &mut [f32], m: usize, dy: &[f32], accumulate: bool) {
        product(dx, m, dy, &self.bwd, accumulate);
    }
}

/// Row-major `(m, k)` f32 → bf16 rows of `k.div_ceil(2)` pairs (little-endian u32: element `2p`
/// in the low half), zero past `k`.
fn pack_rows(a: &[f32], m: usize, k: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let mut out = vec![0u32; m * pairs];
    if pairs == 0 {
        return out;
    }
    out.par_chunks_mut(pairs).zip(a.par_chunks(k)).for_each(|(o, row)| {
        // SAFETY: products only run where `available()` (checked by `Bf16Weight::new`).
        let done = unsafe { kernel::convert(row, o) };
        for (p, o) in o.iter_mut().enumerate().skip(done / 2) {
            let lo = bf16_bits(row[2 * p]) as u32;
            let hi = row.get(2 * p + 1).map_or(0, |&v| bf16_bits(v) as u32);
            *o = lo | (hi << 16);
        }
    });
    out
}

/// One kernel call: activation rows from `a` (stride `lda` words) × `cols ≤ 32` columns of the
/// panel slice `b`, over `pairs` row pairs, into `c` (row stride `ldc`), added to what `c` holds
/// when `accumulate`.
#[derive(Clone, Copy)]
struct Tile {
    a: *const u32,
    lda: usize,
    b: *const u16,
    pairs: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
}

/// The destination, shared by the panels' tasks: each writes only its own columns.
struct Dst(*mut f32);
// SAFETY: tasks write disjoint column ranges of the destination (one panel each).
unsafe impl Send for Dst {}
unsafe impl Sync for Dst {}

/// `c (m, n) ← [c +] A (m, k) · B (k, n)`, `c` row-major with `n` columns.
fn product(c: &mut [f32], m: usize, a: &[f32], b: &PackedB, accumulate: bool) {
    let (n, k) = (b.n, b.k);
    assert!(c.len() >= m * n && a.len() >= m * k, "bf16 product: operand too small for ({m}, {k})·({k}, {n})");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let a = pack_rows(a, m, k);
    let dst = Dst(c.as_mut_ptr());
    let dst = &dst;
    (0..n.div_ceil(NR)).into_par_iter().for_each(|j| {
        let cols = (n - j * NR).min(NR);
        let panel = b.panel(j);
        let mut p0 = 0;
        while p0 < b.pairs {
            let pc = (b.pairs - p0).min(KC_PAIRS);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                // SAFETY: rows i..i+rows and columns j·NR..j·NR+cols lie inside `c` (asserted
                // above) and belong to this task alone; the activation rows hold `pairs` words
                // each and the panel slice `pc` pairs of 2·NR values from p0 on.
                unsafe {
                    kernel::run(
                        rows,
                        Tile {
                            a: a.as_ptr().add(i * b.pairs + p0),
                            lda: b.pairs,
                            b: panel.as_ptr().add(p0 * 2 * NR),
                            pairs: pc,
                            c: dst.0.add(i * n + j * NR),
                            ldc: n,
                            cols,
                            accumulate: accumulate || p0 > 0,
                        },
                    )
                }
                i += rows;
            }
            p0 += pc;
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::Tile;

    /// `rows ≤ MR` activation rows of a [`Tile`].
    pub(super) unsafe fn run(rows: usize, t: Tile) {
        macro_rules! go {
            ($($r:literal)*) => {
                match rows {
                    $($r => unsafe { tile::<$r>(t) },)*
                    _ => unreachable!("bf16 kernel: {rows} rows"),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// Rounds the leading multiple of 32 values of `row` to bf16 pairs in `out`, 16 pairs per
    /// instruction (`vcvtne2ps2bf16`, round to nearest even); returns how many values it did.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert(row: &[f32], out: &mut [u32]) -> usize {
        let n = (row.len() / 32) * 32;
        debug_assert!(out.len() * 2 >= n);
        // SAFETY: i + 32 ≤ n ≤ row.len() and i/2 + 16 ≤ out.len().
        unsafe {
            for i in (0..n).step_by(32) {
                let lo = _mm512_loadu_ps(row.as_ptr().add(i));
                let hi = _mm512_loadu_ps(row.as_ptr().add(i + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(out.as_mut_ptr().add(i / 2).cast(), v);
            }
        }
        n
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn tile<const R: usize>(t: Tile) {
        let Tile { a, lda, b, pairs, c, ldc, cols, accumulate } = t;
        // SAFETY (whole body): the caller guarantees the pointer ranges (see `product`).
        unsafe {
            let mut lo = [_mm512_setzero_ps(); R]; // columns 0..16 of each row
            let mut hi = [_mm512_setzero_ps(); R]; // columns 16..32
            for p in 0..pairs {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * 64).cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * 64 + 32).cast()));
                for r in 0..R {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * lda + p) as i32));
                    lo[r] = _mm512_dpbf16_ps(lo[r], av, b0);
                    hi[r] = _mm512_dpbf16_ps(hi[r], av, b1);
                }
            }
            let m0: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as u16 };
            let m1: __mmask16 = if cols >= 32 {
                0xffff
            } else if cols <= 16 {
                0
            } else {
                ((1u32 << (cols - 16)) - 1) as u16
            };
            for r in 0..R {
                let cp = c.add(r * ldc);
                let (mut v0, mut v1) = (lo[r], hi[r]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cp));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cp.add(16)));
                }
                _mm512_mask_storeu_ps(cp, m0, v0);
                _mm512_mask_storeu_ps(cp.add(16), m1, v1);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod kernel {
    /// Never called: [`super::Bf16Weight::new`] fails on these targets.
    pub(super) unsafe fn convert(_: &[f32], _: &mut [u32]) -> usize {
        0
    }

    /// Never called: [`super::Bf16Weight::new`] fails on these targets.
    pub(super) unsafe fn run(_: usize, _: super::Tile) {
        unreachable!("bf16 kernel on a CPU without AVX512-BF16")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn round(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| bf16_to_f32(bf16_bits(x)) as f64).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        assert_eq!(bf16_bits(-2.0), 0xc000);
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶ (even): rounds up.
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0 + 1e-6), 0x3f81);
        assert!(bf16_to_f32(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_to_f32(bf16_bits(f32::INFINITY)), f32::INFINITY);
    }

    const SHAPES: [(usize, usize, usize); 6] =
        [(1, 1, 1), (13, 37, 19), (25, 64, 2 * KC_PAIRS + 3), (12, 32, 8), (7, 40, 64), (3, 100, 1)];

    /// `c (m, n) ← [c +] A (m, k) · B (k, n)` read from the packing in plain scalar code, summed
    /// in f64: what the kernel computes, without AVX512-BF16.
    fn reference_product(c: &mut [f32], m: usize, a: &[f32], b: &PackedB, accumulate: bool) {
        let (n, k) = (b.n, b.k);
        for i in 0..m {
            for col in 0..n {
                let panel = b.panel(col / NR);
                let l = col % NR;
                let sum: f64 = (0..k)
                    .map(|kk| {
                        let w = bf16_to_f32(panel[(kk / 2) * 2 * NR + 2 * l + kk % 2]) as f64;
                        bf16_to_f32(bf16_bits(a[i * k + kk])) as f64 * w
                    })
                    .sum();
                let old = if accumulate { c[i * n + col] as f64 } else { 0.0 };
                c[i * n + col] = (old + sum) as f32;
            }
        }
    }

    /// Checks `product` (kernel or reference) against f64 sums of the bf16-rounded operands: only
    /// f32 accumulation error remains, so the tolerance is tight. Shapes cover partial tiles,
    /// partial panels, odd `k` and more than one cache block of pairs.
    fn check_products(product: fn(&mut [f32], usize, &[f32], &PackedB, bool)) {
        for (m, out, inp) in SHAPES {
            let (x, w, dy) = (values(m * inp, 1), values(out * inp, 2), values(m * out, 3));
            let packed = Bf16Weight::pack(&w, out, inp).unwrap();
            assert_eq!(packed.dims(), (out, inp));
            let (xr, wr, dyr) = (round(&x), round(&w), round(&dy));
            let close = |got: &[f32], want: &[f64], what: &str| {
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{what} ({m}, {out}, {inp}) [{i}]: {g} vs {w}"
                    );
                }
            };
            let mut y = vec![f32::NAN; m * out];
            product(&mut y, m, &x, &packed.fwd, false);
            let want: Vec<f64> =
                (0..m * out).map(|e| (0..inp).map(|t| xr[e / out * inp + t] * wr[e % out * inp + t]).sum()).collect();
            close(&y, &want, "x·Wᵀ");
            // Accumulating adds to what is there.
            product(&mut y, m, &x, &packed.fwd, true);
            close(&y, &want.iter().map(|v| 2.0 * v).collect::<Vec<_>>(), "y + x·Wᵀ");
            let mut dx = vec![f32::NAN; m * inp];
            product(&mut dx, m, &dy, &packed.bwd, false);
            let want: Vec<f64> =
                (0..m * inp).map(|e| (0..out).map(|o| dyr[e / inp * out + o] * wr[o * inp + e % inp]).sum()).collect();
            close(&dx, &want, "dY·W");
        }
    }

    /// The packing, read back by a scalar product, gives the products of the rounded operands:
    /// runs on every CPU.
    #[test]
    fn the_packing_holds_both_orientations_of_the_rounded_weight() {
        check_products(reference_product);
    }

    #[test]
    fn products_match_the_rounded_operands_exactly_summed() {
        if !available() {
            let err = Bf16Weight::new(&[0.0; 4], 2, 2).unwrap_err().to_string();
            assert!(err.contains("AVX512-BF16"), "{err}");
            eprintln!(
                "skipped: this CPU has no AVX512-BF16, so the bf16 kernel was not run (only the packing, \
                 by the_packing_holds_both_orientations_of_the_rounded_weight)"
            );
            return;
        }
        check_products(product);
        // Through the public entry points too.
        let (m, out, inp) = SHAPES[1];
        let (x, w) = (values(m * inp, 1), values(out * inp, 2));
        let (via_new, mut direct) = (Bf16Weight::new(&w, out, inp).unwrap(), vec![0f32; m * out]);
        let mut y = vec![0f32; m * out];
        via_new.forward(&mut y, m, &x, false);
        product(&mut direct, m, &x, &via_new.fwd, false);
        assert_eq!(y, direct);
    }

    #[test]
    fn rows_read_back_are_the_rounded_weight() {
        // The packing runs on any CPU (no AVX512-BF16 needed).
        let (out, inp) = (45, 7);
        let w = values(out * inp, 4);
        let packed = Bf16Weight::pack(&w, out, inp).unwrap();
        let mut row = vec![f32::NAN; inp];
        for r in [0, 31, 32, 44] {
            packed.row_into(r, &mut row);
            let want: Vec<f32> = w[r * inp..(r + 1) * inp].iter().map(|&v| bf16_to_f32(bf16_bits(v))).collect();
            assert_eq!(row, want, "row {r}");
        }
        if !available() {
            assert!(Bf16Weight::new(&w, out, inp).is_err());
        }
    }

    #[test]
    fn a_wrong_length_is_an_error() {
        let err = Bf16Weight::new(&[0.0; 5], 2, 2).unwrap_err().to_string();
        assert!(err.contains(if available() { "5 values" } else { "AVX512-BF16" }), "{err}");
    }
}
