//! Resuming replays the run exactly: 4 steps straight and 2 steps + resume + 2 steps end with the
//! same adapter (same batches, dropout masks and optimizer state), including across an epoch end.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use common::*;
use lora_trainer::{Resume, RunStatus, TrainConfig, TrainOptions};
use std::sync::atomic::Ordering;

fn adapter(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu).unwrap()
}

fn max_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .map(|(k, t)| {
            let d = (t - &b[k]).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            d.to_scalar::<f32>().unwrap()
        })
        .fold(0.0, f32::max)
}

/// 10 samples, micro-batch 2, accumulation 2: 5 micro-batches = 3 optimizer steps per epoch,
/// so 4 steps span an epoch boundary and step 2 stops mid-epoch.
fn config() -> TrainConfig {
    TrainConfig { max_steps: Some(4), ..small_config() }
}

fn run(
    out: &Path,
    resume: Option<Resume>,
    halt: Option<usize>,
    cfg: &TrainConfig,
) -> lora_trainer::Result<lora_trainer::TrainSummary> {
    let data = samples(&qa_pairs(10));
    let eval = samples(&qa_pairs(12)[10..]);
    let model = tiny_model(&cfg.lora, 5);
    let mut opts = TrainOptions::new(out, "tiny");
    opts.show_progress = false;
    opts.resume = resume;
    opts.halt_after_step = halt;
    lora_trainer::train(&model, &tokenizer(), &data, &eval, cfg, &opts)
}

#[test]
fn two_plus_two_steps_equal_four() {
    let cfg = config();
    let straight = tempfile::tempdir().unwrap();
    let s = run(straight.path(), None, None, &cfg).unwrap();
    assert_eq!((s.status, s.global_steps), (RunStatus::Completed, 4));

    let split = tempfile::tempdir().unwrap();
    let h = run(split.path(), None, Some(2), &cfg).unwrap();
    assert_eq!((h.status, h.global_steps), (RunStatus::Halted, 2));
    assert!(split.path().join("checkpoint-2/optimizer.safetensors").is_file());
    let r = run(split.path(), Some(Resume::Latest), None, &cfg).unwrap();
    assert_eq!((r.status, r.global_steps), (RunStatus::Completed, 4));
    assert!(!split.path().join("checkpoint-2").exists(), "only the latest checkpoint is kept");

    let (a, b) = (adapter(&straight.path().join("checkpoint-4")), adapter(&split.path().join("checkpoint-4")));
    let d = max_diff(&a, &b);
    assert!(d <= 1e-6, "adapters differ by {d}");
    // Training did move the adapter (B starts at zero), so the comparison means something.
    let fresh: HashMap<String, Tensor> =
        tiny_model(&cfg.lora, 5).lora_vars().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    assert!(max_diff(&a, &fresh) > 1e-4);
    assert_eq!(s.best_eval_loss, r.best_eval_loss);
    assert_eq!(s.train_tokens, r.train_tokens);
}

#[test]
fn interrupt_writes_a_checkpoint_that_resumes_exactly() {
    let cfg = config();
    let straight = tempfile::tempdir().unwrap();
    run(straight.path(), None, None, &cfg).unwrap();

    let out = tempfile::tempdir().unwrap();
    let data = samples(&qa_pairs(10));
    let eval = samples(&qa_pairs(12)[10..]);
    let model = tiny_model(&cfg.lora, 5);
    let mut opts = TrainOptions::new(out.path(), "tiny");
    opts.show_progress = false;
    opts.stop.store(true, Ordering::SeqCst);
    let s = lora_trainer::train(&model, &tokenizer(), &data, &eval, &cfg, &opts).unwrap();
    assert_eq!((s.status, s.global_steps), (RunStatus::Interrupted, 0));
    let ckpt = out.path().join("checkpoint-0");
    assert!(ckpt.join("trainer_state.json").is_file());

    let r = run(out.path(), Some(Resume::From(ckpt)), None, &cfg).unwrap();
    assert_eq!(r.global_steps, 4);
    let d = max_diff(&adapter(&straight.path().join("checkpoint-4")), &adapter(&out.path().join("checkpoint-4")));
    assert!(d <= 1e-6, "adapters differ by {d}");
}

#[test]
fn resume_refuses_other_settings_and_missing_checkpoints() {
    let cfg = config();
    let out = tempfile::tempdir().unwrap();
    let e = run(out.path(), Some(Resume::Latest), None, &cfg).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");
    run(out.path(), None, Some(1), &cfg).unwrap();
    let other = TrainConfig { learning_rate: 1e-3, ..cfg.clone() };
    let e = run(out.path(), Some(Resume::Latest), None, &other).unwrap_err().to_string();
    assert!(e.contains("learning_rate"), "{e}");
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    // A learning rate that diverges: warmup makes the first update 0, the second throws the
    // adapter out of f32's range (checkpointed after it), the third step's loss is not finite.
    let cfg = TrainConfig { learning_rate: 1e30, save_steps: 1, ..config() };
    let out = tempfile::tempdir().unwrap();
    let e = run(out.path(), None, None, &cfg).unwrap_err().to_string();
    assert!(e.contains("loss became") && e.contains("at optimizer step 3") && e.contains("checkpoint-2"), "{e}");
    assert!(out.path().join("checkpoint-2/trainer_state.json").is_file());
}

#[test]
fn a_new_run_into_an_earlier_one_is_refused_unless_overwriting() {
    let cfg = config();
    let out = tempfile::tempdir().unwrap();
    run(out.path(), None, Some(2), &cfg).unwrap();
    let e = run(out.path(), None, None, &cfg).unwrap_err();
    assert!(matches!(e, lora_trainer::Error::RunExists { .. }), "{e:?}");
    assert!(e.to_string().contains("checkpoint-2") && e.to_string().contains("--overwrite"), "{e}");
    assert!(out.path().join("checkpoint-2/trainer_state.json").is_file());
}
