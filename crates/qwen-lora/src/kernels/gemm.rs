//! `dst ← [dst +] beta · lhs · rhs` through the `gemm` crate, written straight into its
//! destination: the fused ops accumulate where the math adds (bias, the low-rank update, the two
//! parts of dX) instead of allocating and adding.

use super::elem::Elem;

/// A read-only matrix view: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// Row-major `(rows, cols)`.
pub fn rows<T>(data: &[T], cols: usize) -> View<'_, T> {
    View { data, rs: cols, cs: 1 }
}

/// The transpose of a row-major `(rows, cols)` matrix, without a copy.
pub fn transposed<T>(data: &[T], cols: usize) -> View<'_, T> {
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
pub fn gemm_into<T: Elem>(
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
