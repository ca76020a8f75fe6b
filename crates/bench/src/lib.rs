//! `bench`: kb-lora's speed on the real model, side by side with the Python reference and
//! llama.cpp, in one command that prints a Markdown report and can write it to a file.
//!
//! Sections ([`Section`], `--only` picks some): `matmul` (the f32 matmul ceiling), `load`,
//! `decode` (batch 1 and batch 16), `train-step` (LoRA forward+backward beside a plain forward,
//! achieved FLOP/s), `train-epoch` (the real recipe for `--steps` optimizer steps, scaled to one
//! and three epochs), `eval-gen` (the whole eval set batched against one prompt at a time). Each
//! section (`sections`) measures, then renders its own rows of the side-by-side table and its
//! details; [`report`] puts the page together; [`runner`] runs each section in a child process so
//! its peak memory is its own. Reference figures come from `scripts/bench_reference.py`'s JSON
//! (`--reference`) or, labelled so, from the earlier measurements of `data/reference.toml`
//! ([`reference`]); the goals a row is checked against are named in [`targets`].
//! `scripts/bench.sh` builds, runs both and writes `docs/BENCHMARKS.md`.
//!
//! ```text
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --out docs/BENCHMARKS.md
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --only decode train-step --repeats 1
//! ```

pub mod reference;
pub mod report;
pub mod results;
pub mod runner;
pub mod section;
pub mod sections;
pub mod settings;
pub mod sys;
pub mod table;
pub mod targets;

use std::path::{Path, PathBuf};

use anyhow::Context;
use qwen_lora::load::ModelSource;

pub use crate::reference::{ModelSize, ReferenceFile, References};
pub use crate::results::{Header, Results};
pub use crate::section::Section;
pub use crate::settings::Settings;

/// One `bench` run: what to measure and where the report goes.
#[derive(Debug, Clone)]
pub struct Options {
    pub settings: Settings,
    /// Sections to run, in this order (all when empty).
    pub only: Vec<Section>,
    /// `--reference`: the JSON of scripts/bench_reference.py.
    pub reference: Option<PathBuf>,
    /// `--out`: the Markdown report, replaced or (with `append`) added to.
    pub out: Option<PathBuf>,
    pub append: bool,
    /// `--json`: every figure.
    pub json: Option<PathBuf>,
    /// `--results`: render these figures instead of measuring.
    pub results: Option<PathBuf>,
    /// Run every section in this process instead of a child each.
    pub in_process: bool,
    /// Internal: run this one section and write its results to the file (a child's job).
    pub child: Option<(Section, PathBuf)>,
}

/// Measures (or reads back) the figures, prints the report and writes the files asked for; fails
/// when a section failed, after the report says so.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let settings = &opts.settings;
    if let Some((section, out)) = &opts.child {
        return runner::run_here(*section, settings).write(out);
    }
    let mut inputs = vec![("--train", settings.train_file.as_path()), ("--eval-set", &settings.eval_file)];
    inputs.extend(given([("--reference", &opts.reference), ("--results", &opts.results)]));
    inputs.extend(settings.model.input_paths());
    kb_dataset::check_outputs(&given([("--out", &opts.out), ("--json", &opts.json)]), &inputs)?;
    // Fail on a bad reference file before spending minutes measuring.
    let reference = opts.reference.as_deref().map(ReferenceFile::read).transpose()?;
    let sections = if opts.only.is_empty() { Section::ALL.to_vec() } else { opts.only.clone() };
    let mut results = Results::default();
    if let Some(path) = &opts.results {
        results = Results::read(path).with_context(|| format!("--results {}", path.display()))?;
    } else {
        for &section in &sections {
            let r = if opts.in_process { runner::run_here(section, settings) } else { runner::run_child(section)? };
            results.merge(r);
        }
    }
    let header = results.run.clone().unwrap_or_else(|| Header {
        date: sys::today_utc(),
        machine: sys::Machine::detect(),
        model: format!("{} ({:?})", describe(&settings.model.source()), settings.model.dtype()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        repeats: settings.repeats,
        isolated: !opts.in_process,
    });
    results.run = Some(header.clone());
    let text = report::render(&header, &results, &References::new(reference, model_size(&results, settings)));
    println!("{text}");
    if let Some(path) = &opts.json {
        results.write(path)?;
    }
    if let Some(path) = &opts.out {
        let old = if opts.append { std::fs::read_to_string(path).unwrap_or_default() } else { String::new() };
        let body = if old.is_empty() {
            format!("# Benchmarks\n\nWritten by `scripts/bench.sh` (the `bench` binary).\n\n{text}")
        } else {
            format!("{}\n\n{text}", old.trim_end())
        };
        kb_dataset::write_atomic(path, body.as_bytes()).with_context(|| format!("writing --out {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !results.failed.is_empty() {
        let names: Vec<&str> = results.failed.keys().map(String::as_str).collect();
        anyhow::bail!("sections failed: {} (see the report and the messages above)", names.join(", "));
    }
    Ok(())
}

/// The optional files among `items` that were given, with their flags.
fn given<'a>(items: [(&'static str, &'a Option<PathBuf>); 2]) -> Vec<(&'static str, &'a Path)> {
    items.into_iter().filter_map(|(flag, path)| Some((flag, path.as_deref()?))).collect()
}

/// The model's size, for picking earlier reference figures: from the training sections' FLOP
/// model when they ran, else from the matmul shapes (hidden 1536 and up is the 1.5B).
fn model_size(results: &Results, settings: &Settings) -> ModelSize {
    let flops = results.train_epoch.as_ref().map(|e| e.flops).or(results.train_step.as_ref().map(|t| t.flops));
    match flops {
        Some(f) => ModelSize::from_layer_params(f.layer_params),
        None if settings.matmul_dims[0] >= 1536 => ModelSize::Large,
        None => ModelSize::Small,
    }
}

fn describe(src: &ModelSource) -> String {
    match src {
        ModelSource::Hub { id, revision } => format!("hub {id}@{}", revision.as_deref().unwrap_or("main")),
        ModelSource::Dir(d) => format!("directory {}", d.display()),
        ModelSource::Gguf(p) => format!("GGUF {}", p.display()),
    }
}
