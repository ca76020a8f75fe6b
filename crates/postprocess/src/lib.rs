//! Rule-based, data-driven post-processing of model answers with source attribution.
//!
//! The Python reference hard-coded answer strings and keyword regexes; here both are data:
//!
//! - [`Rules`]: `data/rules.toml`, per topic the KB `doc_id` and case-insensitive keyword regexes
//!   (`patterns`, any of which must match the question) plus `exclude` regexes for near-miss
//!   questions the KB does not answer. The answer text always comes from the KB.
//! - [`PostProcessor`]: decides, for a question and the model's answer, the final answer and its
//!   [`Source`] (`RULE_OVERRIDE`, `KB_MATCH`, `MODEL_GENERATED`), with a plain-words
//!   explanation, as a [`Decision`]. See [`PostProcessor::apply`] for the exact rules.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kb = kb_dataset::Kb::load("data/kb.jsonl")?;
//! let rules = postprocess::Rules::load("data/rules.toml", &kb)?;
//! let pp = postprocess::PostProcessor::new(kb, rules, postprocess::DEFAULT_KB_MATCH_THRESHOLD)?;
//! let d = pp.apply("VPN 怎麼連線?", "抱歉,我不知道。");
//! println!("{} [{}] {}", d.answer, d.source, d.source_detail);
//! # Ok(()) }
//! ```

mod error;
mod processor;
mod rules;

pub use error::{Error, Result};
pub use processor::{DEFAULT_KB_MATCH_THRESHOLD, Decision, PostProcessor, Source};
pub use rules::{Rule, Rules};
