//! Runs sections, each in a child process of this binary by default so its peak memory (VmHWM) is
//! its own, and gathers their figures.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::report::Header;
use crate::sections::decode::DecodeResult;
use crate::sections::eval_gen::EvalGenResult;
use crate::sections::load::LoadResult;
use crate::sections::matmul::MatmulResult;
use crate::sections::train::{TrainEpochResult, TrainStepResult};
use crate::sections::{self, Section, Settings};
use crate::sys::peak_memory_bytes;

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
}

/// Runs `section` in this process. The peak memory recorded is this process's peak so far.
pub fn run_here(section: Section, s: &Settings) -> Results {
    let mut r = Results::default();
    let start = Instant::now();
    tracing::info!("section {}", section.name());
    let outcome = match section {
        Section::Matmul => sections::matmul::run(s).map(|v| r.matmul = Some(v)),
        Section::Load => sections::load::run(s).map(|v| r.load = Some(v)),
        Section::Decode => sections::decode::run(s).map(|v| r.decode = Some(v)),
        Section::TrainStep => sections::train::run_step(s).map(|v| r.train_step = Some(v)),
        Section::TrainEpoch => sections::train::run_epoch(s).map(|v| r.train_epoch = Some(v)),
        Section::EvalGen => sections::eval_gen::run(s).map(|v| r.eval_gen = Some(v)),
    };
    let name = section.name().to_string();
    if let Err(e) = outcome {
        tracing::error!("section {name} failed: {e:#}");
        r.failed.insert(name.clone(), format!("{e:#}"));
    }
    r.seconds.insert(name.clone(), start.elapsed().as_secs_f64());
    if let Some(p) = peak_memory_bytes() {
        r.peak_memory.insert(name, p);
    }
    r
}

/// Runs `section` in a child process: this binary with the same arguments plus
/// `--child SECTION --child-out FILE`, where the child writes its [`Results`] as JSON.
pub fn run_child(section: Section) -> anyhow::Result<Results> {
    let exe = std::env::current_exe().context("finding this binary to start a section's child process")?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("results.json");
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    args.extend(["--child".into(), section.name().into(), "--child-out".into(), out.clone().into_os_string()]);
    let start = Instant::now();
    let status = Command::new(&exe).args(&args).status().with_context(|| format!("starting {}", exe.display()))?;
    let name = section.name().to_string();
    if !status.success() || !out.exists() {
        let mut r = Results::default();
        r.failed.insert(name.clone(), format!("child process exited with {status} (see its messages above)"));
        r.seconds.insert(name, start.elapsed().as_secs_f64());
        return Ok(r);
    }
    read_results(&out)
}

pub fn read_results(path: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a bench results file", path.display()))
}

pub fn write_results(path: &Path, r: &Results) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(r)?;
    kb_dataset::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
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
