//! Packages a trained LoRA adapter for a model registry, and verifies such packages.
//!
//! A package is a `.tar.gz` holding the adapter directory's top-level files
//! (`adapter_config.json`, `adapter_model.safetensors`, ...) and a [`Manifest`] (`manifest.json`)
//! recording the base model (hub id + revision, or a GGUF file's sha256), the LoRA config, the
//! sha256 and size of every packaged file, the training/eval data hashes, the eval summary, the
//! tool version and the creation time.
//!
//! - [`package`] builds one from [`PackageOptions`] (atomic write: nothing on error);
//! - [`verify`] recomputes every hash and fails with [`Error::Verify`], naming each missing,
//!   extra or altered file.
//!
//! ```text
//! package-lora --adapter qwen_lora_output/final_model --report test_outputs/report.json \
//!     --train data/train_qwen_v1.jsonl --eval data/eval_qwen_v1.jsonl --out qwen-lora-v1.tar.gz
//! package-lora --verify qwen-lora-v1.tar.gz
//! ```

mod error;
mod manifest;
mod pack;
mod verify;

pub use error::{Error, Result};
pub use manifest::{
    BaseModel, DataHashes, FORMAT_VERSION, FileHash, MANIFEST_NAME, Manifest, NamedHash, Tool, rfc3339_utc, sha256_file,
};
pub use pack::{ADAPTER_CONFIG, ADAPTER_WEIGHTS, PackageOptions, package};
pub use verify::verify;
