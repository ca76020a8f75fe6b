//! Runs sections, each in a child process of this binary by default so its peak memory (VmHWM) is
//! its own, and gathers their figures.

use std::ffi::OsString;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use lora_trainer::metrics::peak_memory_bytes;

use crate::results::Results;
use crate::section::Section;
use crate::sections;
use crate::settings::Settings;

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
    Results::read(&out)
}
