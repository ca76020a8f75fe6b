//! The targets the project set itself for speed and memory (the performance issue's "Targets",
//! and the decode and training-time goals before it), each under a name: the report's `target`
//! column shows the bound and the name, `met` whether this run reaches it.

/// A bound on one figure of the report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A speed-up of at least this many times.
    AtLeastTimes(f64),
    /// A share (0..1) of a ceiling of at least this much.
    AtLeastShare(f64),
    /// A duration of at most this many minutes.
    AtMostMinutes(f64),
    /// A size of at most this many GiB.
    AtMostGib(f64),
}

/// A named target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub name: &'static str,
    pub bound: Bound,
}

impl Target {
    /// What the report's `target` column shows, e.g. `≥ 5× (training epoch)`.
    pub fn label(&self) -> String {
        let bound = match self.bound {
            Bound::AtLeastTimes(x) => format!("≥ {x}×"),
            Bound::AtLeastShare(x) => format!("≥ {:.0}%", 100.0 * x),
            Bound::AtMostMinutes(x) => format!("≤ {x} min"),
            Bound::AtMostGib(x) => format!("≤ {x} GiB"),
        };
        format!("{bound} ({})", self.name)
    }

    /// Whether `value` (times, a share, seconds or GiB, as the bound says) meets the target.
    pub fn met(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtLeastTimes(x) | Bound::AtLeastShare(x) => value >= x,
            Bound::AtMostMinutes(x) => value <= x * 60.0,
            Bound::AtMostGib(x) => value <= x,
        }
    }

    /// The target with whether `value` meets it, as a row takes it.
    pub fn check(&self, value: f64) -> Option<(&Self, bool)> {
        Some((self, self.met(value)))
    }
}

/// Greedy decode of one prompt against transformers' `generate`.
pub static DECODE_ONE: Target = Target { name: "decode, one prompt", bound: Bound::AtLeastTimes(2.0) };
/// Batched greedy decode against transformers' one prompt at a time.
pub static DECODE_BATCHED: Target = Target { name: "decode, batched", bound: Bound::AtLeastTimes(8.0) };
/// Batched decode's aggregate rate against llama.cpp's single stream.
pub static DECODE_VS_LLAMA_CPP: Target =
    Target { name: "batched decode vs llama.cpp", bound: Bound::AtLeastTimes(1.5) };
/// Training compute as a share of the measured matmul ceiling.
pub static TRAIN_COMPUTE: Target = Target { name: "training compute", bound: Bound::AtLeastShare(0.6) };
/// A training epoch against the reference recipe's.
pub static TRAIN_EPOCH: Target = Target { name: "training epoch", bound: Bound::AtLeastTimes(5.0) };
/// The whole training run (3 epochs and their eval-loss passes), 0.5B and 1.5B.
pub static RUN_SMALL: Target = Target { name: "whole run, 0.5B", bound: Bound::AtMostMinutes(15.0) };
pub static RUN_LARGE: Target = Target { name: "whole run, 1.5B", bound: Bound::AtMostMinutes(45.0) };
/// Training's peak memory, 0.5B and 1.5B.
pub static MEMORY_SMALL: Target = Target { name: "training memory, 0.5B", bound: Bound::AtMostGib(4.0) };
pub static MEMORY_LARGE: Target = Target { name: "training memory, 1.5B", bound: Bound::AtMostGib(10.0) };
/// The whole eval set's generation against the reference's one prompt at a time.
pub static EVAL_GEN: Target = Target { name: "eval generation", bound: Bound::AtLeastTimes(8.0) };
/// Eval generation's aggregate rate against llama.cpp's single stream.
pub static EVAL_GEN_VS_LLAMA_CPP: Target =
    Target { name: "eval generation vs llama.cpp", bound: Bound::AtLeastTimes(1.5) };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_the_bound_and_the_name() {
        assert_eq!(TRAIN_EPOCH.label(), "≥ 5× (training epoch)");
        assert_eq!(DECODE_VS_LLAMA_CPP.label(), "≥ 1.5× (batched decode vs llama.cpp)");
        assert_eq!(TRAIN_COMPUTE.label(), "≥ 60% (training compute)");
        assert_eq!(RUN_SMALL.label(), "≤ 15 min (whole run, 0.5B)");
        assert_eq!(MEMORY_LARGE.label(), "≤ 10 GiB (training memory, 1.5B)");
    }

    #[test]
    fn bounds_are_checked_in_their_units() {
        assert!(TRAIN_EPOCH.met(5.0) && !TRAIN_EPOCH.met(4.99));
        assert!(TRAIN_COMPUTE.met(0.6) && !TRAIN_COMPUTE.met(0.59));
        assert!(RUN_SMALL.met(900.0) && !RUN_SMALL.met(900.1));
        assert!(MEMORY_SMALL.met(4.0) && !MEMORY_SMALL.met(4.01));
    }
}
