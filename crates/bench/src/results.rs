//! Every figure of a run ([`Results`], what `--json` writes and `--results` reads back) and what
//! the report says about the run itself ([`Header`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::sections::decode::DecodeResult;
use crate::sections::eval_gen::EvalGenResult;
use crate::sections::load::LoadResult;
use crate::sections::matmul::MatmulResult;
use crate::sections::train::{TrainEpochResult, TrainStepResult};
use crate::sys::Machine;

/// What the report says about the run itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub date: String,
    pub machine: Machine,
    pub model: String,
    pub command: String,
    pub repeats: usize,
    /// Whether each section ran in its own process.
    pub isolated: bool,
}

/// Every section's figures; a section not run stays `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub matmul: Option<MatmulResult>,
    pub load: Option<LoadResult>,
    pub decode: Option<DecodeResult>,
    pub train_step: Option<TrainStepResult>,
    pub train_epoch: Option<TrainEpochResult>,
    pub eval_gen: Option<EvalGenResult>,
    /// Peak resident memory by section name, in bytes.
    pub peak_memory: BTreeMap<String, u64>,
    /// Wall-clock seconds by section name (model loading included).
    pub seconds: BTreeMap<String, f64>,
    /// Error message by section name.
    pub failed: BTreeMap<String, String>,
    /// When, where and how the figures were measured.
    #[serde(default)]
    pub run: Option<Header>,
}

impl Results {
    /// Takes every figure `other` has.
    pub fn merge(&mut self, other: Results) {
        macro_rules! take {
            ($($f:ident),*) => { $(if other.$f.is_some() { self.$f = other.$f; })* };
        }
        take!(matmul, load, decode, train_step, train_epoch, eval_gen);
        self.peak_memory.extend(other.peak_memory);
        self.seconds.extend(other.seconds);
        self.failed.extend(other.failed);
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a bench results file", path.display()))
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        kb_dataset::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_both_sides() {
        let mut a = Results::default();
        a.peak_memory.insert("load".into(), 1);
        let mut b = Results::default();
        b.peak_memory.insert("decode".into(), 2);
        b.failed.insert("decode".into(), "boom".into());
        a.merge(b);
        assert_eq!(a.peak_memory.len(), 2);
        assert_eq!(a.failed["decode"], "boom");
    }
}
