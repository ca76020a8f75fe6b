//! Live reporting: the progress bar over optimizer steps (the workspace's one bar,
//! [`kb_dataset::progress_bar`]) and the window of micro-steps that one metrics line averages over.

use indicatif::ProgressBar;

use crate::metrics::{MetricRecord, format_mib, peak_memory_bytes};

/// A bar over optimizer steps, starting at `position`, for step, loss, lr, tokens/s and ETA;
/// hidden unless `show` and stderr is a terminal.
pub fn progress_bar(total_steps: usize, position: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = kb_dataset::progress_bar(total_steps as u64, "step");
    pb.set_position(position as u64);
    pb
}

/// Sums over the optimizer steps since the last metrics line.
#[derive(Debug, Default)]
pub struct Window {
    loss_sum: f64,
    micro_steps: usize,
    tokens: usize,
    seconds: f64,
}

impl Window {
    /// Adds one optimizer step made of `micro_steps` micro-batches with summed loss `loss_sum`.
    pub fn add(&mut self, loss_sum: f64, micro_steps: usize, tokens: usize, seconds: f64) {
        self.loss_sum += loss_sum;
        self.micro_steps += micro_steps;
        self.tokens += tokens;
        self.seconds += seconds;
    }

    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.micro_steps.max(1) as f64
    }

    pub fn tokens_per_sec(&self) -> f64 {
        if self.seconds > 0.0 { self.tokens as f64 / self.seconds } else { 0.0 }
    }

    /// Closes the window into a metrics record, logs the fixed greppable line and starts anew.
    pub fn emit(&mut self, step: usize, epoch: f64, lr: f64, grad_norm: f64) -> MetricRecord {
        let record = MetricRecord::Train {
            step,
            epoch,
            loss: self.mean_loss(),
            lr,
            grad_norm,
            tokens_per_sec: self.tokens_per_sec(),
        };
        tracing::info!(
            "step={step} epoch={epoch:.2} loss={:.4} grad_norm={grad_norm:.3} lr={lr:.3e} tok/s={:.1} peak_mem={}",
            self.mean_loss(),
            self.tokens_per_sec(),
            format_mib(peak_memory_bytes())
        );
        *self = Window::default();
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_averages_over_micro_steps_and_resets() {
        let mut w = Window::default();
        w.add(3.0, 2, 100, 1.0);
        w.add(1.0, 2, 300, 1.0);
        assert_eq!(w.mean_loss(), 1.0);
        assert_eq!(w.tokens_per_sec(), 200.0);
        match w.emit(4, 0.5, 1e-4, 0.7) {
            MetricRecord::Train { step, loss, tokens_per_sec, .. } => {
                assert_eq!((step, loss, tokens_per_sec), (4, 1.0, 200.0))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(w.tokens_per_sec(), 0.0);
    }

    #[test]
    fn bar_is_hidden_when_not_wanted() {
        assert!(progress_bar(10, 0, false).is_hidden());
    }
}
