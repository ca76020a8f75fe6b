//! Qwen2.5 decoder in candle, built for LoRA fine-tuning on a CPU.
//!
//! - [`config::Config`]: hyper-parameters from HF `config.json` or GGUF metadata.
//! - [`load`]: one loader for every binary — hub id, local HF directory or GGUF file — giving a
//!   [`load::BaseModel`] (config, weights, tokenizer).
//! - [`model::Qwen2`]: the decoder; every projection is a [`lora::Linear`] that may carry an adapter.
//! - [`ops`]: fused CPU ops with explicit backward passes (frozen linear, RMSNorm, RoPE, softmax,
//!   SwiGLU, cross-entropy), so training runs near the matmul ceiling.
//! - [`fused`]: the training step's LoRA projections and MLP down-projection as single ops that
//!   keep only what their backward reads.
//! - [`bf16`]: bf16 products with frozen weights and f32 sums (AVX512-BF16), about twice the f32
//!   matmul rate; training uses them where the CPU has them.
//! - [`lora`]: LoRA layers, PEFT-compatible adapter files, merge.
//! - [`generate`]: KV-cached, batched generation.
//! - [`fixture`]: a tiny random Qwen2 with a small tokenizer, for tests across the workspace.

pub mod adapter;
mod base_id;
pub mod bf16;
pub mod cli;
pub mod config;
pub mod error;
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

pub use base_id::BaseModelId;
pub use config::Config;
pub use error::{Error, Result};
