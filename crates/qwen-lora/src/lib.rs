//! Qwen2.5 decoder in candle, built for LoRA fine-tuning on a CPU.
//!
//! - [`config::Config`]: hyper-parameters from HF `config.json` or GGUF metadata.
//! - [`spec::ModelSpec`]: what to load (source, device, dtype), as plain data; binaries build it
//!   from their flags (`cli_support::ModelArgs`).
//! - [`load`]: one loader for every binary — hub id, local HF directory or GGUF file — giving a
//!   [`load::BaseModel`] (config, weights, tokenizer).
//! - [`inference::ChatModel`]: base + adapter merged, ready to answer prompts.
//! - [`model::Qwen2`]: the decoder; every projection is a [`lora::Linear`] that may carry an adapter.
//! - [`ops`]: fused CPU ops with explicit backward passes (frozen linear, RMSNorm, RoPE, softmax,
//!   SwiGLU, cross-entropy), so training runs near the matmul ceiling.
//! - [`fused`]: the training step's LoRA projections and MLP down-projection as single ops that
//!   keep only what their backward reads.
//! - [`bf16`]: bf16 products with frozen weights and f32 sums (AVX512-BF16), about twice the f32
//!   matmul rate; training uses them where the CPU has them.
//! - [`lora`]: LoRA layers, PEFT-compatible adapter files, merge.
//! - [`generate`]: KV-cached, batched generation.
//! - `fixture` (feature `fixture`, turned on from dev-dependencies): a tiny random Qwen2 with a
//!   small tokenizer, for tests across the workspace.

pub mod adapter;
mod base_id;
pub mod bf16;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod fused;
pub mod generate;
pub mod inference;
pub mod load;
pub mod lora;
mod lora_config;
pub mod model;
pub mod ops;
mod skinny;
pub mod spec;

pub use base_id::BaseModelId;
pub use config::Config;
pub use error::{Error, Result};
pub use inference::{ChatModel, Decode};
pub use spec::{DEFAULT_MODEL, DeviceKind, ModelSpec};
