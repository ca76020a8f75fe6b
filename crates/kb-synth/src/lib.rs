//! Questions synthesized from a knowledge base alone, on this machine, by a local
//! Qwen2.5-Instruct: the step that lets a user bring nothing but `kb.jsonl`.
//!
//! - [`synthesize`]: per entry a topic name, the contact it names, training questions in four
//!   styles, eval and augment pools worded from other angles, near-miss questions it does not
//!   answer; off-topic questions for the whole KB. The result renders as a `questions.toml` in
//!   the curated file's format ([`kb_dataset::render_templates`]), so a person can read, edit
//!   and commit it, and the rest of the pipeline runs on it unchanged.
//! - [`filter`]: length, language and script, copies of the entry, near-duplicates, retrieval
//!   placement, and a judgement that an "unanswerable" question is not answered after all; the
//!   [`Summary`] counts every drop.
//! - [`Generator`]: the model behind it ([`QwenGenerator`] on a real Qwen2.5), and [`Cache`]:
//!   every answer kept on disk, so a rerun generates only what changed.
//! - [`prompts`]: what is asked, per language (Chinese or English, following the KB).

mod cache;
mod error;
pub mod filter;
mod generator;
mod parse;
pub mod prompts;
mod qwen;
mod report;
mod run;
mod synth;

pub use cache::Cache;
pub use error::{Error, Result};
pub use generator::{Generator, Request};
pub use qwen::QwenGenerator;
pub use report::render_summary;
pub use run::{RunPaths, run};
pub use synth::{EntrySummary, Pools, Summary, SynthConfig, Synthesis, Thresholds, synthesize};
