//! Learning-rate schedule, stepped once per optimizer step: linear warmup from 0 to the peak, then
//! decay to 0 at the last step, exactly as transformers' `get_cosine_schedule_with_warmup` and
//! `get_linear_schedule_with_warmup` (the update number `step`, 0-based, uses the factor at `step`).

use std::f64::consts::PI;

use crate::config::SchedulerKind;

/// The learning rate for optimizer step `step` (0-based) of `total` steps.
pub fn learning_rate(kind: SchedulerKind, peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    peak * factor(kind, step, warmup, total)
}

fn factor(kind: SchedulerKind, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    match kind {
        SchedulerKind::Constant => 1.0,
        SchedulerKind::Linear => (1.0 - progress).max(0.0),
        SchedulerKind::Cosine => (0.5 * (1.0 + (PI * progress).cos())).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SchedulerKind::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_then_cosine_matches_the_formula() {
        let (peak, warmup, total) = (3e-4, 10, 114);
        assert_eq!(learning_rate(Cosine, peak, 0, warmup, total), 0.0);
        assert!(close(learning_rate(Cosine, peak, 5, warmup, total), peak * 0.5));
        assert!(close(learning_rate(Cosine, peak, 10, warmup, total), peak));
        // Halfway through the decay the cosine is at half the peak.
        assert!(close(learning_rate(Cosine, peak, 62, warmup, total), peak * 0.5));
        let s = 40;
        let expected = peak * 0.5 * (1.0 + (PI * (s - 10) as f64 / 104.0).cos());
        assert!(close(learning_rate(Cosine, peak, s, warmup, total), expected));
        assert!(close(learning_rate(Cosine, peak, total, warmup, total), 0.0));
        // Monotone decay after warmup.
        let lrs: Vec<f64> = (10..=total).map(|s| learning_rate(Cosine, peak, s, warmup, total)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn linear_and_constant() {
        assert!(close(learning_rate(Linear, 1.0, 2, 2, 12), 1.0));
        assert!(close(learning_rate(Linear, 1.0, 7, 2, 12), 0.5));
        assert!(close(learning_rate(Constant, 1.0, 1, 2, 12), 0.5));
        assert!(close(learning_rate(Constant, 1.0, 11, 2, 12), 1.0));
    }

    #[test]
    fn degenerate_lengths_do_not_divide_by_zero() {
        assert!(close(learning_rate(Cosine, 1.0, 0, 0, 1), 1.0));
        assert!(close(learning_rate(Cosine, 1.0, 0, 0, 0), 1.0));
        assert!(learning_rate(Cosine, 1.0, 5, 10, 3).is_finite());
    }
}
