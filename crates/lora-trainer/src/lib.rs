//! LoRA fine-tuning loop: batching, masked loss, AdamW, schedule, checkpoints.
//!
//! - [`config::TrainConfig`]: every hyper-parameter with its default (the reference recipe on every linear layer),
//!   loaded from TOML and saved as `train_config.toml` next to the adapter.
//! - [`data`]: [`kb_dataset::Sample`]s to token ids with per-token loss flags (answer-only or whole
//!   sequence).
//! - [`batch`]: length-grouped, dynamically padded micro-batches with the positions that carry loss.
//! - [`loss`]: mean cross-entropy over those positions only.
//! - [`optim`]: AdamW over the LoRA variables, gradient accumulation, global-norm clipping.
//! - [`schedule`]: linear warmup then cosine (or linear) decay, per optimizer step.
//! - [`checkpoint`]: `checkpoint-<step>/` (adapter, optimizer, trainer state) for exact resume.
//! - [`metrics`]: `metrics.jsonl`, `loss.svg` and the run summary; [`progress`]: the step bar and
//!   the window one metrics line averages over.
//! - [`fsutil`]: atomic directory writes (checkpoints, the final adapter) through kb-dataset's writer.
//! - [`model::training_model`]: the model a run trains (base weights, fresh LoRA, frozen-matmul
//!   precision).
//! - [`trainer::train`]: the explicit training loop tying them together.

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod progress;
pub mod schedule;
pub mod trainer;

pub use config::{FrozenMatmul, LossMode, SchedulerKind, TrainConfig};
pub use error::{Error, Result};
pub use metrics::{RunStatus, TrainSummary};
pub use model::training_model;
pub use trainer::{Resume, TrainOptions, check_output_dir, run_outputs, train};
