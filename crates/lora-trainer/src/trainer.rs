//! The training loop, written out: micro-batches, gradient accumulation, clipping, AdamW, the
//! schedule, per-epoch evaluation, checkpoints, and the best epoch copied to `final_model/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device};
use kb_dataset::Sample;
use qwen_lora::BaseModelId;
use qwen_lora::adapter::save_adapter;
use qwen_lora::model::{Mode, Qwen2};
use tokenizers::Tokenizer;

use crate::batch::{collate, dropout_seed, epoch_order, epoch_seed, length_grouped_batches};
use crate::checkpoint::{self, OPTIMIZER_FILE, TrainerState};
use crate::config::{RESOLVED_CONFIG_FILE, TrainConfig};
use crate::data::{self, Example, Prepared, tokenize_samples};
use crate::error::{Error, Result};
use crate::fsutil::write_dir_atomic;
use crate::loss::batch_loss;
use crate::metrics::{
    self, LOSS_PLOT_FILE, METRICS_FILE, MetricRecord, RunStatus, SUMMARY_FILE, TrainSummary, peak_memory_bytes,
};
use crate::optim::{AdamW, AdamWConfig, GradAccumulator, clip_grad_norm};
use crate::progress::{Window, progress_bar};
use crate::schedule::learning_rate;

/// The best adapter by eval loss, in PEFT format.
pub const FINAL_MODEL_DIR: &str = "final_model";

/// Where a resumed run picks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The latest `checkpoint-<step>/` in the output directory.
    Latest,
    /// This checkpoint directory.
    From(PathBuf),
}

/// How to run (as opposed to what to learn, which is [`TrainConfig`]).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub output_dir: PathBuf,
    pub resume: Option<Resume>,
    /// Recorded in `adapter_config.json` as `base_model_name_or_path` and `revision`.
    pub base_model: BaseModelId,
    /// Show the progress bar (it stays hidden anyway when stderr is not a terminal).
    pub show_progress: bool,
    /// Set (e.g. by a Ctrl-C handler) to stop at the next micro-step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Stop with a checkpoint after this optimizer step, leaving the schedule untouched (as if
    /// interrupted there); for tests of resuming.
    pub halt_after_step: Option<usize>,
    /// Start a new run in an output directory that holds an earlier one, deleting that run's
    /// adapter, checkpoints and metrics first. Without it (and without `resume`) such a
    /// directory is refused, so an earlier adapter is never lost by accident.
    pub overwrite: bool,
}

impl TrainOptions {
    pub fn new(output_dir: impl Into<PathBuf>, base_model: impl Into<BaseModelId>) -> Self {
        Self {
            output_dir: output_dir.into(),
            resume: None,
            base_model: base_model.into(),
            show_progress: true,
            stop: Arc::new(AtomicBool::new(false)),
            halt_after_step: None,
            overwrite: false,
        }
    }
}

/// What a run writes into its output directory, by name (checkpoints aside).
const RUN_FILES: [&str; 5] = [FINAL_MODEL_DIR, RESOLVED_CONFIG_FILE, METRICS_FILE, LOSS_PLOT_FILE, SUMMARY_FILE];

/// The files and directories of a run that exist in `output_dir` now (`final_model/`,
/// `checkpoint-<step>/`, `train_config.toml`, `metrics.jsonl`, `loss.svg`, `summary.json`):
/// what a new run there would replace.
pub fn run_outputs(output_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> =
        RUN_FILES.iter().map(|name| output_dir.join(name)).filter(|p| p.symlink_metadata().is_ok()).collect();
    found.extend(checkpoint::all(output_dir)?);
    Ok(found)
}

/// Refuses to start a new run (no `resume`) in a directory holding an earlier run unless
/// `overwrite` is set, naming what is there and the ways out. Cheap: binaries call it before
/// loading the model; [`train`] calls it again.
pub fn check_output_dir(output_dir: &Path, resume: bool, overwrite: bool) -> Result<()> {
    if resume || overwrite {
        return Ok(());
    }
    let found = run_outputs(output_dir)?;
    if found.is_empty() {
        return Ok(());
    }
    let names: Vec<String> =
        found.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    Err(Error::RunExists { path: output_dir.to_path_buf(), found: names.join(", ") })
}

/// Trains the LoRA adapter of `model` on `train_samples`, evaluating on `eval_samples` after
/// each epoch. All outputs go to `opts.output_dir`.
pub fn train(
    model: &Qwen2,
    tokenizer: &Tokenizer,
    train_samples: &[Sample],
    eval_samples: &[Sample],
    config: &TrainConfig,
    opts: &TrainOptions,
) -> Result<TrainSummary> {
    let started = Instant::now();
    let out = opts.output_dir.as_path();
    config.validate()?;
    check_output_dir(out, opts.resume.is_some(), opts.overwrite)?;
    let params = model.lora_vars();
    let device = match params.first() {
        Some((_, v)) => v.device().clone(),
        None => {
            return Err(Error::NoData("the model has no LoRA variables to train; build it with a LoRA config".into()));
        }
    };

    // Everything that can fail on bad input happens before the first step.
    let train = tokenize_samples(tokenizer, train_samples, config.max_length, config.loss)?;
    if train.examples.is_empty() {
        return Err(Error::NoData("no training sample has a token to learn after truncation".into()));
    }
    let eval = tokenize_samples(tokenizer, eval_samples, config.max_length, config.loss)?;
    let pad = data::pad_id(tokenizer);
    let batches = length_grouped_batches(&train.examples, config.micro_batch);
    let eval_batches = length_grouped_batches(&eval.examples, config.micro_batch);
    let n_batches = batches.len();
    let steps_per_epoch = n_batches.div_ceil(config.grad_accum);
    let total_steps = config.max_steps.unwrap_or(config.epochs * steps_per_epoch);
    let n_epochs = total_steps.div_ceil(steps_per_epoch);
    let fingerprint = data::fingerprint(&train.examples);
    if config.warmup_steps > total_steps {
        tracing::warn!(
            "warmup_steps = {} is more than the {total_steps} optimizer steps of this run: the learning rate never \
             reaches learning_rate = {}; lower --warmup-steps (or warmup_steps in the config)",
            config.warmup_steps,
            config.learning_rate
        );
    }
    tracing::info!(
        "{} training samples in {n_batches} micro-batches, {steps_per_epoch} optimizer steps per epoch, {total_steps} steps in all; {} eval samples",
        train.examples.len(),
        eval.examples.len()
    );

    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            beta1: config.adam_beta1,
            beta2: config.adam_beta2,
            eps: config.adam_epsilon,
            weight_decay: config.weight_decay,
        },
    )?;
    let mut state = match &opts.resume {
        None => {
            // Only reached with `overwrite` when an earlier run is there (checked above); its
            // outputs go now, so its checkpoints cannot be mistaken for this run's.
            for old in run_outputs(out)? {
                tracing::warn!("--overwrite: removing {} of the earlier run", old.display());
                let removed = if old.is_dir() { std::fs::remove_dir_all(&old) } else { std::fs::remove_file(&old) };
                removed.map_err(|e| Error::io(&old, e))?;
            }
            fresh_state(config, fingerprint)
        }
        Some(resume) => resume_state(out, resume, config, &fingerprint, &params, &mut opt)?,
    };
    config.write_resolved(out)?;

    let pb = progress_bar(total_steps, state.global_step, opts.show_progress);
    let save = |state: &TrainerState, opt: &AdamW| {
        checkpoint::save(out, state, opt, |dir| Ok(save_adapter(model, dir, &opts.base_model)?))
    };
    let mut last_checkpoint = checkpoint::latest(out)?;
    let mut window = Window::default();
    let mut status = RunStatus::Completed;

    'epochs: while state.epoch < n_epochs {
        let epoch = state.epoch;
        state.epoch_shuffle_seed = epoch_seed(config.seed, epoch);
        let order = epoch_order(n_batches, state.epoch_shuffle_seed);
        while state.micro_step_in_epoch < n_batches && state.global_step < total_steps {
            let group = state.micro_step_in_epoch..(state.micro_step_in_epoch + config.grad_accum).min(n_batches);
            let group_len = group.len();
            let t0 = Instant::now();
            let mut acc = GradAccumulator::new(params.len());
            let (mut loss_sum, mut tokens) = (0.0, 0);
            for micro in group.clone() {
                if opts.stop.load(Ordering::SeqCst) {
                    // Partial gradients are dropped: the checkpoint is the state after the last
                    // full optimizer step, which is what `state` still describes.
                    status = RunStatus::Interrupted;
                    break 'epochs;
                }
                let examples: Vec<&Example> = batches[order[micro]].iter().map(|&i| &train.examples[i]).collect();
                let batch = collate(&examples, pad);
                let mode = Mode::Train { dropout_seed: dropout_seed(config.seed, epoch, micro) };
                let loss = batch_loss(model, &batch.to_tensors(&device)?, mode)?;
                let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
                if !value.is_finite() {
                    return Err(Error::NonFinite {
                        what: "loss",
                        value,
                        step: state.global_step + 1,
                        epoch: epoch + 1,
                        checkpoint: last_checkpoint,
                    });
                }
                // Each micro-batch's mean loss weighs 1/group_len in the step's gradient.
                let grads = (loss / group_len as f64)?.backward()?;
                acc.add(&params, &grads)?;
                loss_sum += value;
                tokens += batch.real_tokens;
            }
            let mut grads = acc.finish(&params)?;
            let grad_norm = clip_grad_norm(&mut grads, config.max_grad_norm)?;
            if !grad_norm.is_finite() {
                return Err(Error::NonFinite {
                    what: "gradient norm",
                    value: grad_norm,
                    step: state.global_step + 1,
                    epoch: epoch + 1,
                    checkpoint: last_checkpoint,
                });
            }
            let lr = learning_rate(
                config.scheduler,
                config.learning_rate,
                state.global_step,
                config.warmup_steps,
                total_steps,
            );
            opt.step(&grads, lr)?;
            state.global_step += 1;
            state.micro_step_in_epoch = group.end;
            let seconds = t0.elapsed().as_secs_f64();
            state.train_seconds += seconds;
            state.train_tokens += tokens as u64;
            window.add(loss_sum, group_len, tokens, seconds);
            pb.set_position(state.global_step as u64);
            pb.set_message(format!(
                "loss {:.4} lr {lr:.2e} {:.0} tok/s",
                loss_sum / group_len as f64,
                window.tokens_per_sec()
            ));
            if state.global_step % config.logging_steps == 0 || state.global_step == total_steps {
                let epoch_f = epoch as f64 + state.micro_step_in_epoch as f64 / n_batches as f64;
                let record = pb.suspend(|| window.emit(state.global_step, epoch_f, lr, grad_norm));
                state.metrics.push(record);
                metrics::write_metrics(out, &state.metrics)?;
            }
            let halt = opts.halt_after_step == Some(state.global_step);
            if halt || (config.save_steps > 0 && state.global_step % config.save_steps == 0) {
                last_checkpoint = Some(save(&state, &opt)?);
            }
            if halt {
                status = RunStatus::Halted;
                break 'epochs;
            }
        }
        if opts.stop.load(Ordering::SeqCst) {
            status = RunStatus::Interrupted;
            break;
        }

        // End of the epoch (or of max_steps inside it): evaluate, keep the best adapter.
        let eval_loss = pb.suspend(|| evaluate(model, &eval, &eval_batches, pad, &device))?;
        let epoch_f = epoch as f64 + state.micro_step_in_epoch as f64 / n_batches as f64;
        let improved = match (eval_loss, state.best_eval_loss) {
            (Some(l), Some(best)) => l.is_finite() && l < best,
            (Some(l), None) => l.is_finite(),
            // Without an eval set the latest epoch is the final model.
            (None, _) => true,
        };
        if let Some(l) = eval_loss {
            state.metrics.push(MetricRecord::Eval { step: state.global_step, epoch: epoch_f, eval_loss: l });
            pb.suspend(|| {
                tracing::info!(
                    "eval epoch={} step={} eval_loss={l:.4} improved={improved}",
                    epoch + 1,
                    state.global_step
                )
            });
        }
        if improved {
            state.best_eval_loss = eval_loss;
            state.best_epoch = Some(epoch + 1);
            write_dir_atomic(&out.join(FINAL_MODEL_DIR), |dir| Ok(save_adapter(model, dir, &opts.base_model)?))?;
        }
        state.epoch += 1;
        state.micro_step_in_epoch = 0;
        metrics::write_metrics(out, &state.metrics)?;
        last_checkpoint = Some(save(&state, &opt)?);
        if state.global_step >= total_steps {
            break;
        }
    }
    if status == RunStatus::Interrupted {
        last_checkpoint = Some(save(&state, &opt)?);
    }
    pb.finish_and_clear();

    metrics::write_metrics(out, &state.metrics)?;
    metrics::write_loss_svg(out, &state.metrics)?;
    let final_model = out.join(FINAL_MODEL_DIR);
    let summary = TrainSummary {
        status,
        global_steps: state.global_step,
        total_steps,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_seconds: state.train_seconds,
        train_tokens: state.train_tokens,
        tokens_per_sec: if state.train_seconds > 0.0 { state.train_tokens as f64 / state.train_seconds } else { 0.0 },
        best_epoch: state.best_epoch,
        best_eval_loss: state.best_eval_loss,
        peak_memory_bytes: peak_memory_bytes(),
        final_model: final_model.is_dir().then_some(final_model),
        checkpoint: last_checkpoint,
        bf16_products: model.uses_bf16_matmuls(),
    };
    metrics::write_summary(out, &summary)?;
    Ok(summary)
}

fn fresh_state(config: &TrainConfig, data_fingerprint: String) -> TrainerState {
    TrainerState {
        global_step: 0,
        epoch: 0,
        micro_step_in_epoch: 0,
        epoch_shuffle_seed: epoch_seed(config.seed, 0),
        best_eval_loss: None,
        best_epoch: None,
        train_tokens: 0,
        train_seconds: 0.0,
        data_fingerprint,
        config: config.clone(),
        metrics: Vec::new(),
    }
}

/// Loads a checkpoint's state, adapter and optimizer, refusing one made with another config or data.
fn resume_state(
    out: &Path,
    resume: &Resume,
    config: &TrainConfig,
    fingerprint: &str,
    params: &[(String, candle_core::Var)],
    opt: &mut AdamW,
) -> Result<TrainerState> {
    let dir = match resume {
        Resume::From(dir) => dir.clone(),
        Resume::Latest => checkpoint::latest(out)?.ok_or_else(|| Error::Resume {
            path: out.to_path_buf(),
            message: "no checkpoint-<step>/ directory here; start without --resume or pass the checkpoint's path"
                .into(),
        })?,
    };
    let state = checkpoint::load_state(&dir)?;
    let refuse = |message: String| Error::Resume { path: dir.clone(), message };
    let changed = changed_fields(&state.config, config);
    if !changed.is_empty() {
        let (was, now) = (flatten(&state.config), flatten(config));
        let show = |f: &[(String, serde_json::Value)], k: &str| {
            f.iter().find(|(n, _)| n == k).map_or("unset".to_string(), |(_, v)| v.to_string())
        };
        let diffs: Vec<String> =
            changed.iter().map(|k| format!("{k} (checkpoint {}, now {})", show(&was, k), show(&now, k))).collect();
        return Err(refuse(format!(
            "the settings differ from the checkpoint's in {}; resume with the checkpoint's settings (recorded under \
             `config` in {}) or start a new run (--overwrite, or another --output)",
            diffs.join(", "),
            dir.join(checkpoint::STATE_FILE).display()
        )));
    }
    if state.data_fingerprint != fingerprint {
        return Err(refuse("the training data (or its tokenization) differs from the checkpoint's; resume with the same --train file and model".into()));
    }
    checkpoint::restore_params(&dir, params)?;
    opt.load(&dir.join(OPTIMIZER_FILE))?;
    if opt.steps() != state.global_step as u64 {
        return Err(refuse(format!(
            "optimizer state is at step {} but trainer state at {}",
            opt.steps(),
            state.global_step
        )));
    }
    tracing::info!(
        "resuming from {} at step {} (epoch {}, micro-batch {})",
        dir.display(),
        state.global_step,
        state.epoch + 1,
        state.micro_step_in_epoch
    );
    Ok(state)
}

/// Names of the settings that differ between two configs, ignoring those that only change reporting.
fn changed_fields(a: &TrainConfig, b: &TrainConfig) -> Vec<String> {
    let (fa, fb) = (flatten(a), flatten(b));
    let get = |f: &[(String, serde_json::Value)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut keys: Vec<String> = fa.iter().chain(&fb).map(|(k, _)| k.clone()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        // Reporting, and the precision of the frozen products (a machine without AVX512-BF16 may
        // resume an `auto` or `bf16` run in f32), may change on resume.
        .filter(|k| !["logging_steps", "save_steps", "frozen_matmul"].contains(&k.as_str()))
        .filter(|k| get(&fa, k) != get(&fb, k))
        .collect()
}

/// Every setting as (`field` or `section.field`, value).
fn flatten(c: &TrainConfig) -> Vec<(String, serde_json::Value)> {
    let mut v = serde_json::to_value(c).expect("config serializes");
    let mut out = Vec::new();
    if let Some(map) = v.as_object_mut() {
        for (k, val) in map.iter() {
            match val.as_object() {
                Some(inner) => out.extend(inner.iter().map(|(ik, iv)| (format!("{k}.{ik}"), iv.clone()))),
                None => out.push((k.clone(), val.clone())),
            }
        }
    }
    out
}

/// Token-weighted mean loss over the eval set (no dropout); `None` without eval samples.
fn evaluate(model: &Qwen2, eval: &Prepared, batches: &[Vec<usize>], pad: u32, device: &Device) -> Result<Option<f64>> {
    let (mut sum, mut count) = (0.0, 0usize);
    for idx in batches {
        let examples: Vec<&Example> = idx.iter().map(|&i| &eval.examples[i]).collect();
        let batch = collate(&examples, pad);
        let loss = batch_loss(model, &batch.to_tensors(device)?, Mode::Eval)?;
        let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
        sum += value * batch.targets.len() as f64;
        count += batch.targets.len();
    }
    Ok((count > 0).then(|| sum / count as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_names_nested_and_ignores_reporting() {
        let a = TrainConfig::default();
        let mut b = TrainConfig {
            logging_steps: 1,
            learning_rate: 1e-3,
            max_steps: Some(4),
            frozen_matmul: crate::FrozenMatmul::F32,
            ..a.clone()
        };
        b.lora.r = 8;
        assert_eq!(changed_fields(&a, &b), ["learning_rate", "lora.r", "max_steps"]);
        assert!(changed_fields(&a, &a.clone()).is_empty());
    }
}
