//! One synthesis run as a user starts it: load the KB, synthesize through the cache, write
//! `questions.toml` (checked by loading it back) and its summary, atomically.

use std::path::{Path, PathBuf};

use kb_dataset::{AtomicFile, Kb, Templates, check_outputs, render_templates, write_atomic};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::generator::Generator;
use crate::synth::{Summary, SynthConfig, synthesize};

/// Where a run reads and writes.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub kb: PathBuf,
    /// The `questions.toml` to write.
    pub out: PathBuf,
    /// The generation cache; `None` keeps nothing between runs.
    pub cache: Option<PathBuf>,
    /// The summary JSON (filter counts, pool sizes, time).
    pub summary: PathBuf,
    /// Replace an existing `out` (which may hold a person's edits).
    pub overwrite: bool,
}

impl RunPaths {
    /// The default cache and summary beside `out`: `OUT.cache.jsonl`, `OUT.summary.json`.
    pub fn beside(kb: PathBuf, out: PathBuf) -> RunPaths {
        let with = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
        RunPaths { cache: Some(with("cache.jsonl")), summary: with("summary.json"), kb, out, overwrite: false }
    }
}

impl RunPaths {
    /// Loads the KB and checks the outputs (none is the KB; `out` is replaced only with
    /// `overwrite`): what a binary does before loading a model.
    pub fn check(&self) -> Result<Kb> {
        let kb = Kb::load(&self.kb)?;
        let mut outputs = vec![("--out", self.out.as_path()), ("summary", self.summary.as_path())];
        if let Some(cache) = &self.cache {
            outputs.push(("--cache", cache.as_path()));
        }
        check_outputs(&outputs, &[("--kb", self.kb.as_path())])?;
        if self.out.exists() && !self.overwrite {
            return Err(Error::Exists { path: self.out.clone() });
        }
        Ok(kb)
    }
}

/// Runs the synthesis for `kb` (from [`RunPaths::check`]); `progress(done, total)` follows the
/// generator's requests.
pub fn run(
    paths: &RunPaths,
    kb: &Kb,
    cfg: &SynthConfig,
    generator: &mut dyn Generator,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary> {
    let mut cache = match &paths.cache {
        Some(path) => Cache::open(path)?,
        None => Cache::none(),
    };
    let s = synthesize(kb, cfg, generator, &mut cache, progress)?;
    let header = header(&paths.kb, kb, &s.summary, &paths.summary);
    let mut file = AtomicFile::create(&paths.out)?;
    std::io::Write::write_all(file.file(), render_templates(&header, &s.docs, &s.unanswerable).as_bytes())
        .map_err(|e| Error::Dataset(file.write_error(e)))?;
    // What the rest of the pipeline will read must load; a failure here is a bug, not bad input.
    Templates::load(file.temp_path(), kb)?;
    file.commit()?;
    let json = serde_json::to_string_pretty(&s.summary).expect("the summary always serializes");
    write_atomic(&paths.summary, format!("{json}\n").as_bytes())?;
    Ok(s.summary)
}

fn header(kb_path: &Path, kb: &Kb, s: &Summary, summary_path: &Path) -> String {
    format!(
        "Question templates synthesized by synth-questions from {} ({} entries, language {}),\n\
         generator {}, seed {}. Filter counts and pool sizes: {}.\n\
         The format is that of the curated data/questions.toml (documented at its top): read it,\n\
         edit it, commit it; gen-train-set and gen-eval-set take it with --questions.\n",
        kb_path.display(),
        kb.entries().len(),
        s.language.code(),
        s.generator,
        s.config.seed,
        summary_path.display()
    )
}
