//! Training on four samples drives their answer loss down by at least 90%, and greedy decoding
//! with the saved `final_model/` then reproduces each answer exactly — and stops by itself. Once
//! with f32 products, once with bf16 ones (where the CPU has AVX512-BF16), decoding in f32.

mod common;

use candle_core::Device;
use common::*;
use lora_trainer::batch::collate;
use lora_trainer::data::tokenize_samples;
use lora_trainer::loss::batch_loss;
use lora_trainer::metrics::MetricRecord;
use lora_trainer::{FrozenMatmul, LossMode, RunStatus, SchedulerKind, TrainConfig, TrainOptions};
use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::model::{Mode, Qwen2};

/// See `tiny_model_with_head_scale`: lets the loss of the tiny model approach 0.
const HEAD_SCALE: f64 = 4.0;

fn answer_loss(model: &Qwen2, samples: &[kb_dataset::Sample]) -> f64 {
    let tok = tokenizer();
    let p = tokenize_samples(&tok, samples, 192, LossMode::Answer).unwrap();
    let batch = collate(&p.examples.iter().collect::<Vec<_>>(), 0);
    let t = batch.to_tensors(&Device::Cpu).unwrap();
    batch_loss(model, &t, Mode::Eval).unwrap().to_scalar::<f32>().unwrap() as f64
}

#[test]
fn four_samples_are_learned_exactly() {
    learn_four_samples(FrozenMatmul::F32);
}

#[test]
fn four_samples_are_learned_exactly_with_bf16_products() {
    learn_four_samples(FrozenMatmul::Bf16);
}

fn learn_four_samples(frozen_matmul: FrozenMatmul) {
    let pairs = qa_pairs(4);
    let data = samples(&pairs);
    let mut config = TrainConfig {
        learning_rate: 1e-2,
        epochs: 40,
        micro_batch: 2,
        grad_accum: 1,
        warmup_steps: 5,
        scheduler: SchedulerKind::Cosine,
        weight_decay: 0.0,
        logging_steps: 10,
        save_steps: 0,
        frozen_matmul,
        ..TrainConfig::default()
    };
    config.lora.r = 8;
    config.lora.lora_alpha = 16.0;
    config.lora.lora_dropout = 0.0;
    config.lora.target_modules =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map(String::from).to_vec();
    let mut model = tiny_model_with_head_scale(&config.lora, 1, HEAD_SCALE);
    match config.frozen_matmul.apply(&mut model) {
        Ok(bf16) => assert_eq!(bf16, frozen_matmul == FrozenMatmul::Bf16),
        Err(e) => {
            // Only a bf16 request on a CPU without AVX512-BF16 may fail, and it says why.
            assert!(frozen_matmul == FrozenMatmul::Bf16 && !qwen_lora::bf16::available(), "{e}");
            eprintln!("skipped: this CPU has no AVX512-BF16; checked only that a bf16 request fails and says why");
            return assert!(e.to_string().contains("AVX512-BF16"), "{e}");
        }
    }
    let before = answer_loss(&model, &data);

    let out = tempfile::tempdir().unwrap();
    let mut opts = TrainOptions::new(out.path(), "tiny");
    opts.show_progress = false;
    let summary = lora_trainer::train(&model, &tokenizer(), &data, &data, &config, &opts).unwrap();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.bf16_products, frozen_matmul == FrozenMatmul::Bf16);
    assert_eq!(summary.global_steps, 80);
    let after = answer_loss(&model, &data);
    eprintln!("answer loss {before:.4} -> {after:.4}");
    assert!(after <= 0.1 * before, "answer loss {before:.4} -> {after:.4}");

    // Outputs of a completed run.
    for f in [
        "train_config.toml",
        "metrics.jsonl",
        "loss.svg",
        "summary.json",
        "final_model/adapter_model.safetensors",
        "final_model/adapter_config.json",
    ] {
        assert!(out.path().join(f).is_file(), "missing {f}");
    }
    assert!(out.path().join("checkpoint-80/trainer_state.json").is_file());
    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let evals: Vec<f64> = metrics
        .lines()
        .filter_map(|l| match serde_json::from_str(l).unwrap() {
            MetricRecord::Eval { eval_loss, .. } => Some(eval_loss),
            _ => None,
        })
        .collect();
    assert_eq!(evals.len(), 40);
    let best = evals.iter().cloned().fold(f64::INFINITY, f64::min);
    assert_eq!(summary.best_eval_loss, Some(best));
    assert_eq!(summary.best_epoch, Some(evals.iter().position(|&e| e == best).unwrap() + 1));

    // Greedy decoding with the saved best adapter on a fresh model.
    let mut fresh = tiny_model_with_head_scale(&config.lora, 99, HEAD_SCALE);
    qwen_lora::adapter::load_adapter(&mut fresh, &out.path().join("final_model")).unwrap();
    let tok = tokenizer();
    let prompts: Vec<Vec<u32>> =
        pairs.iter().map(|(q, _)| tok.encode(prompt(q).as_str(), false).unwrap().get_ids().to_vec()).collect();
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let gen_cfg = GenerationConfig { max_new_tokens: 60, ..GenerationConfig::default() };
    let outputs = generate(&fresh, &prompts, &[im_end], &gen_cfg, |_| {}).unwrap();
    for ((_, answer), ids) in pairs.iter().zip(outputs) {
        // A model that did not learn to stop would run on to max_new_tokens.
        assert_eq!(tok.decode(&ids, false).unwrap(), *answer);
    }
}
