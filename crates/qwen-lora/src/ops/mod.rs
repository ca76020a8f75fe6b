//! Ops with autograd: each a candle `CustomOp` whose forward and backward sit side by side in
//! one file, run by the CPU kernels ([`crate::kernels`]).
//!
//! candle's fused `rms_norm`, `softmax_last_dim` and `rope` have no backward pass, and composing
//! them from primitives is slow on a CPU: each primitive is single-threaded and allocates. Each
//! op here is one multithreaded pass forward and one backward. They are also what inference
//! runs, so training and generation share one forward.
//!
//! - [`linear`]: a frozen projection `x·Wᵀ + b`, gradients for `x` only.
//! - [`lora_linear`]: a frozen projection plus its LoRA update under dropout, gradients for `x`,
//!   `A` and `B`, keeping no mask.
//! - [`rms_norm`], [`swiglu`], [`rope`], [`masked_softmax`], [`cross_entropy`].
//! - [`swiglu_down`]: SwiGLU and the MLP's frozen down projection in one op.
//!
//! Kernels run on contiguous f32 or f64 CPU storage (f64 for gradient checks); other devices and
//! dtypes fall back to compositions of candle primitives.

pub mod cross_entropy;
pub mod linear;
pub mod lora_linear;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod swiglu;
pub mod swiglu_down;

pub use cross_entropy::cross_entropy;
pub use linear::linear;
pub use lora_linear::{lora_linear, lora_linear_applies};
pub use rms_norm::rms_norm;
pub use rope::{RopeTable, rope};
pub use softmax::{AttnMask, masked_softmax};
pub use swiglu::swiglu;
pub use swiglu_down::{swiglu_down, swiglu_down_applies};
