//! Qwen2.5 decoder in candle, built for LoRA fine-tuning on a CPU.
//!
//! - [`config::Config`]: hyper-parameters from HF `config.json` or GGUF metadata.
//! - [`spec::ModelSpec`]: what to load (source, device, dtype), as plain data; binaries build it
//!   from their flags (`cli_support::ModelArgs`).
//! - [`load`]: one loader for every binary — hub id, local HF directory or GGUF file — giving a
//!   [`load::BaseModel`] (config, weights, tokenizer).
//! - [`inference::ChatModel`]: base + adapter merged, ready to answer prompts.
//! - [`model::Qwen2`]: the decoder; every projection is a [`lora::Linear`] that may carry an
//!   adapter, over a [`frozen::Frozen`] weight (dense, dense with an f16 decoding copy, or packed
//!   bf16). [`kv_cache::KvCache`] holds the keys and values of cached decoding.
//! - [`ops`]: CPU ops with autograd, one `CustomOp` per file with its backward (frozen linear,
//!   LoRA linear, RMSNorm, RoPE, attention softmax, SwiGLU, SwiGLU + down projection,
//!   cross-entropy), so training runs near the matmul ceiling.
//! - `kernels` (private, no autograd): the loops the ops run — CPU feature detection in one
//!   place, element helpers, GEMM, the few-row matmul of decoding steps, dropout hashing — and
//!   [`bf16`], bf16 products with frozen weights and f32 sums (AVX512-BF16) that training uses
//!   where the CPU has them. Kernels never import ops or the model.
//! - [`lora`]: LoRA layers and [`lora::merge_weight`], set up by [`lora::LoraConfig`], the one
//!   LoRA settings type (the trainer's `[lora]` section, the model's, a saved adapter's);
//!   [`merge::merge_adapter`] folds a saved adapter into a model (inference and `merge-lora`;
//!   `export-gguf` merges GGUF tensors with the same [`lora::merge_weight`]); [`adapter`]:
//!   PEFT-compatible adapter files.
//! - [`BaseModelId`]: which base an adapter belongs to (hub id and revision, or GGUF file and
//!   sha256), from loading to `adapter_config.json` and the package manifest.
//! - [`generate`]: KV-cached, batched generation; [`live`]: the same batching for requests that
//!   arrive while others decode (a server's), with a bounded queue.
//! - [`splitmix::SplitMix64`]: the workspace's PRNG for batch orders and dropout masks.
//! - `fixture` (feature `fixture`, turned on from dev-dependencies only): a tiny random Qwen2
//!   with a small tokenizer, and `fixture::process` for running and interrupting a binary, for
//!   tests across the workspace.

pub mod adapter;
mod base_id;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod frozen;
pub mod generate;
pub mod inference;
mod kernels;
pub mod kv_cache;
pub mod live;
pub mod load;
pub mod lora;
mod lora_config;
pub mod merge;
pub mod model;
pub mod ops;
pub mod spec;
pub mod splitmix;

pub use base_id::BaseModelId;
pub use config::Config;
pub use error::{Error, Result};
pub use inference::{ChatModel, Decode};
pub use kernels::bf16;
pub use spec::{DEFAULT_MODEL, DeviceKind, ModelSpec};
pub use splitmix::SplitMix64;
