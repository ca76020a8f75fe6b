//! CPU kernels without autograd: loops over slices, called by the ops in `crate::ops`.
//!
//! - [`cpu`]: what the CPU can run (AVX-512, AVX512-BF16, AVX2/FMA, F16C), detected in one place.
//! - [`elem`]: the element types (f32, f64), a fast `exp`, storage access and dtype dispatch.
//! - [`gemm`]: products written straight into their destination, accumulating where asked.
//! - [`bf16`]: frozen weights packed in bf16, multiplied with f32 sums (AVX512-BF16).
//! - [`gemv`]: `x·Wᵀ` for the few rows of a decoding step, f32 or f16 weights.
//! - [`dropout`]: inverted dropout from a counter hash, regenerated rather than stored.
//!
//! Nothing here imports the ops or the model; the files import only each other's
//! [`cpu`] and [`elem`].

pub mod bf16;
pub mod cpu;
pub mod dropout;
pub mod elem;
pub mod gemm;
pub mod gemv;
