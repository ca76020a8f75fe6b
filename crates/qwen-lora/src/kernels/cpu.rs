//! What this CPU can run, checked at run time: the one place the kernels ask.
//!
//! The build targets baseline x86-64; every wider instruction set is detected here and the
//! kernels pick their path from these answers. Other architectures answer `false` and take the
//! portable loops.

/// AVX-512 F, DQ, BW and VL: [`wide`] compiles its closure for them.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX512F with AVX512-BF16 (`vdpbf16ps`): the bf16 products (the `bf16` kernel).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX2 with FMA: the few-row matmul's dot products (the `gemv` kernel).
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// F16C: widening f16 weights eight at a time (the `gemv` kernel).
pub fn has_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` compiled for AVX-512 where the CPU has it ([`has_avx512`]). The build targets
/// baseline x86-64, whose loops vectorize with SSE2 only; the elementwise kernels call their
/// per-row or per-chunk loops through this. The same operations in the same order run either way,
/// so results are identical (Rust never fuses a multiply and an add on its own).
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_avx512() {
            // SAFETY: the CPU has every feature `avx512` is compiled for.
            return unsafe { avx512(f) };
        }
    }
    f()
}
