//! Post-processing of model answers against the KB, with source attribution; pure text, no model.
//!
//! The Python reference hard-coded answer strings and keyword regexes; here nothing needs to be
//! written by hand:
//!
//! - [`Retriever`]: a BM25 [`Index`] over each KB entry's text and training questions, the
//!   unanswerable training questions as a class of their own, with thresholds calibrated by
//!   leave-one-out over the training questions ([`Calibration`]) and refusals that name who to
//!   ask, written from the training refusals.
//! - [`PostProcessor`]: decides, for a question and the model's answer, the final answer and its
//!   [`Source`] (`KB_MATCH`, `RETRIEVAL_OVERRIDE`, `RULE_OVERRIDE`, `MODEL_GENERATED`), with a
//!   plain-words explanation, as a [`Decision`]. See [`PostProcessor::apply`] for the exact rules.
//! - [`Rules`] (optional): a user's explicit overrides in `rules.toml`, per topic the KB `doc_id`
//!   and case-insensitive keyword regexes plus `exclude` regexes; applied before retrieval.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kb = kb_dataset::Kb::load("data/kb.jsonl")?;
//! let training = kb_dataset::read_jsonl("data/train_qwen_v1.jsonl")?;
//! let retriever = postprocess::Retriever::new(&kb, &training, "data/train_qwen_v1.jsonl".as_ref(), postprocess::CONFIDENT_PRECISION)?;
//! let pp = postprocess::PostProcessor::new(kb, postprocess::DEFAULT_KB_MATCH_THRESHOLD)?.with_retriever(retriever);
//! let d = pp.apply("VPN 怎麼連線?", "抱歉,我不知道。");
//! println!("{} [{}] {}", d.answer, d.source, d.source_detail);
//! # Ok(()) }
//! ```

mod calibration;
mod error;
mod processor;
mod refusal;
mod retrieval;
mod retriever;
mod rules;

pub use calibration::{CONFIDENT_PRECISION, Calibration, Threshold};
pub use error::{Error, Result};
pub use processor::{
    DEFAULT_KB_MATCH_THRESHOLD, Decision, PostProcessor, RawKind, RetrievalSettings, Settings, Source,
};
pub use retrieval::{Class, Index, Ranking, Scope, TOP_DOCS, TrainingQuestion, terms};
pub use retriever::Retriever;
pub use rules::{Rule, Rules};
