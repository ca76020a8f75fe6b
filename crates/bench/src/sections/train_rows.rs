//! How the training sections read: their rows of the side-by-side table (compute against the
//! matmul ceiling, an epoch against the reference, the bound at the ceiling, peak memory) and
//! their details.

use std::fmt::Write as _;

use super::train::{TrainEpochResult, TrainStepResult};
use crate::reference::{ModelSize, References};
use crate::table::{Row, bytes, gib, row, secs};
use crate::targets::{MEMORY_LARGE, MEMORY_SMALL, RUN_LARGE, RUN_SMALL, TRAIN_COMPUTE, TRAIN_EPOCH};

/// The matmul ceiling a training result is priced at, with its name (see
/// `MatmulResult::train_ceiling`); `None` when the matmul section did not run.
pub type Ceiling = Option<(f64, &'static str)>;

impl TrainStepResult {
    /// Tokens/s, and compute as a share of the `ceiling`.
    pub fn rows(&self, ceiling: Ceiling) -> Vec<Row> {
        let t = self;
        let mut rows = vec![row(
            &format!("LoRA forward+backward, {}×{} tokens", t.rows, t.seq_len),
            format!("{:.1} tok/s ({:.2}× a forward)", t.train_tokens_per_s, t.backward_overhead),
            None,
            None,
            None,
        )];
        if let Some((c, label)) = ceiling {
            rows.push(row(
                &format!("training compute (train-step), share of the {label}"),
                format!("{:.1} GFLOP/s = {:.0}%", t.train_gflops, 100.0 * t.train_gflops / c),
                None,
                None,
                TRAIN_COMPUTE.check(t.train_gflops / c),
            ));
        }
        rows
    }

    pub fn details(&self, w: &mut String, ceiling: Ceiling) {
        let t = self;
        let _ = writeln!(
            w,
            "### train-step (LoRA r16 q/k/v/o, {} rows × {} packed tokens, {} loss positions)\n",
            t.rows, t.seq_len, t.loss_positions
        );
        let share =
            |g: f64| ceiling.map_or(String::new(), |(c, label)| format!(" ({:.0}% of the {label})", 100.0 * g / c));
        let _ = writeln!(w, "- products with frozen weights: {}", if t.bf16 { "bf16, f32 sums" } else { "f32" });
        let _ = writeln!(
            w,
            "- forward (eval mode, no backward): {:.2} s = {:.1} tok/s, {:.1} GFLOP/s{}",
            t.forward_s,
            t.forward_tokens_per_s,
            t.forward_gflops,
            share(t.forward_gflops)
        );
        let _ = writeln!(
            w,
            "- forward + backward (train mode): {:.2} s = {:.1} tok/s, {:.1} GFLOP/s{}",
            t.forward_backward_s,
            t.train_tokens_per_s,
            t.train_gflops,
            share(t.train_gflops)
        );
        let _ = writeln!(
            w,
            "- backward overhead: forward+backward = {:.2}× a forward (2× would be the FLOP ratio)",
            t.backward_overhead
        );
        let _ = writeln!(
            w,
            "- FLOPs = 4 · (N_layers · tokens + vocab·hidden · loss_positions), N_layers = {:.3} G (projection weights of all layers), vocab·hidden = {:.3} G; attention scores, norms and elementwise ops not counted.\n",
            t.flops.layer_params as f64 / 1e9,
            t.flops.lm_head_params as f64 / 1e9
        );
    }
}

impl TrainEpochResult {
    /// One and three epochs against the reference, the bound at the `ceiling`, compute as a share
    /// of it, and the section's peak memory (`peak`, bytes).
    pub fn rows(&self, refs: &References, ceiling: Ceiling, peak: Option<u64>) -> Vec<Row> {
        let e = self;
        let re = &refs.epoch_seconds;
        let mut rows = vec![row(
            &format!("training, one epoch ({} samples, {} optimizer steps)", e.samples, e.steps_per_epoch),
            secs(e.epoch_seconds),
            Some((secs(re.value), re.source)),
            Some(re.value / e.epoch_seconds),
            TRAIN_EPOCH.check(re.value / e.epoch_seconds),
        )];
        rows.push(row(
            "training, 3 epochs",
            secs(3.0 * e.epoch_seconds),
            Some((secs(3.0 * re.value), re.source)),
            Some(re.value / e.epoch_seconds),
            None,
        ));
        if let Some((c, label)) = ceiling {
            let b = Bound::new(e, c);
            rows.push(row(
                &format!("training, one epoch at 100% of the {label} (a bound, not a run)"),
                secs(b.epoch_seconds),
                Some((secs(re.value), re.source)),
                Some(re.value / b.epoch_seconds),
                None,
            ));
            let target = match ModelSize::from_layer_params(e.flops.layer_params) {
                ModelSize::Small => RUN_SMALL,
                ModelSize::Large => RUN_LARGE,
            };
            rows.push(row(
                &format!("whole run at 100% of the {label}: 3 epochs + 3 eval-loss passes (a bound)"),
                secs(b.run_seconds),
                None,
                None,
                target.check(b.run_seconds),
            ));
            rows.push(row(
                &format!("training compute (train-epoch), share of the {label}"),
                format!("{:.1} GFLOP/s = {:.0}%", e.train_gflops, 100.0 * e.train_gflops / c),
                None,
                None,
                TRAIN_COMPUTE.check(e.train_gflops / c),
            ));
        }
        if let Some(p) = peak {
            let target = match ModelSize::from_layer_params(e.flops.layer_params) {
                ModelSize::Small => MEMORY_SMALL,
                ModelSize::Large => MEMORY_LARGE,
            };
            let other = refs.train_peak_bytes.as_ref().map(|rp| (bytes(rp.value), rp.source));
            rows.push(row("training peak memory", bytes(p as f64), other, None, target.check(gib(p))));
        }
        rows
    }

    pub fn details(&self, w: &mut String, refs: &References, ceiling: Ceiling) {
        let e = self;
        let _ = writeln!(
            w,
            "### train-epoch (the real recipe through lora-trainer: batch {}×{}, answer-only loss)\n",
            e.micro_batch, e.grad_accum
        );
        let _ = writeln!(
            w,
            "- {} optimizer steps: {} real tokens in {} of steps ({:.1} tok/s); whole call {}",
            e.steps,
            e.trained_tokens,
            secs(e.train_seconds),
            e.tokens_per_s,
            secs(e.wall_seconds)
        );
        let _ = writeln!(
            w,
            "- one epoch = {} samples, {} real tokens ({} fed: a sample's tokens after its last loss position predict nothing), {} loss positions, {} optimizer steps; micro-batches of {:.0} padded rows on average",
            e.samples,
            e.epoch_tokens,
            e.fed_tokens(),
            e.epoch_loss_positions,
            e.steps_per_epoch,
            e.mean_batch_rows
        );
        let _ = writeln!(
            w,
            "- epoch estimate by tokens: {} (by steps: {}); 3 epochs: {}",
            secs(e.epoch_seconds),
            secs(e.epoch_seconds_by_steps),
            secs(3.0 * e.epoch_seconds)
        );
        let _ = writeln!(
            w,
            "- excluded: the per-epoch eval-loss pass and checkpoint writes; included: the first (cold) step"
        );
        let share =
            ceiling.map_or(String::new(), |(c, label)| format!(" = {:.0}% of the {label}", 100.0 * e.train_gflops / c));
        let _ = writeln!(
            w,
            "- training compute at the epoch's token mix ({} products with frozen weights): {:.1} GFLOP/s{share}",
            if e.bf16 { "bf16" } else { "f32" },
            e.train_gflops
        );
        if let Some((c, label)) = ceiling {
            let b = Bound::new(e, c);
            let need = b.epoch_flops / (refs.epoch_seconds.value / 5.0) / 1e9;
            let _ = writeln!(
                w,
                "- bound: the recipe's FLOPs at 100% of the {c:.1} GFLOP/s {label} take {} per epoch and {} for a whole run (3 epochs, plus 3 eval-loss passes over {} eval tokens with {} loss positions, forward only; loading and checkpoints not counted)",
                secs(b.epoch_seconds),
                secs(b.run_seconds),
                e.eval_tokens,
                e.eval_loss_positions
            );
            let _ = writeln!(
                w,
                "- an epoch 5× faster than the reference's {} needs {need:.1} GFLOP/s = {:.0}% of the {label}",
                secs(refs.epoch_seconds.value),
                100.0 * need / c
            );
        }
        let _ = writeln!(w);
    }
}

/// What the recipe's FLOPs cost at exactly the measured matmul ceiling: no run whose matmuls
/// reach at most that ceiling can be faster, since the FLOP count is the recipe's minimum
/// (answer-only vocabulary rows, no padding, no frozen-weight gradients).
pub struct Bound {
    pub epoch_flops: f64,
    pub epoch_seconds: f64,
    pub run_seconds: f64,
}

impl Bound {
    pub fn new(e: &TrainEpochResult, ceiling_gflops: f64) -> Self {
        let per_s = ceiling_gflops * 1e9;
        let epoch_flops = e.epoch_flops();
        let epoch = epoch_flops / per_s;
        let eval = e.flops.forward_flops(e.eval_tokens, e.eval_loss_positions) / per_s;
        Self { epoch_flops, epoch_seconds: epoch, run_seconds: 3.0 * (epoch + eval) }
    }
}
