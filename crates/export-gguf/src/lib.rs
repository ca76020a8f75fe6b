//! Export a LoRA-tuned Qwen2.5 in the format llama.cpp and Ollama serve.
//!
//! - [`export_merged`]: a GGUF base + an adapter → a complete model GGUF with the adapter merged;
//!   untouched tensors are copied byte for byte, adapted ones are dequantized, merged and
//!   quantized again ([`OutType`]); all metadata is kept and `general.name` notes the adapter.
//! - [`export_lora_only`]: the adapter alone as a llama.cpp LoRA GGUF (`llama-cli --lora`).
//! - [`export_from_hf`]: an HF base (optionally with an adapter merged) → an F16/Q8_0/F32 GGUF.
//!
//! Every output is written to a temporary file beside the target and renamed into place, so a
//! failed export never leaves a half-written file.

mod error;
mod hf;
mod lora;
mod merge;
mod types;
mod write;

pub use error::{Error, Result};
pub use hf::{HfReport, export_from_hf, tokenizer_metadata};
pub use lora::{LoraReport, base_config, export_lora_only};
pub use merge::{MergeReport, MergedTensor, export_merged};
pub use types::{OutType, fit, type_name};
pub use write::AtomicOut;
