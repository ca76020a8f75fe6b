//! Error analysis of an evaluation, and targeted extra training samples (no tensors).
//!
//! - [`analyze`]: given lora-eval's evaluated questions ([`lora_eval::Detail`]: expected answer,
//!   the model's raw answer and its score, generated now or read from a `test-qwen-lora` report),
//!   a raw answer that is not correct at the threshold ([`lora_eval::is_correct`]) is an error.
//!   Errors are grouped by the expected doc's topic (from the templates; unanswerable questions
//!   are topic `unanswerable`) and classified ([`ErrorKind`]) by what the answer resembles: the
//!   closest KB entry's topic, `refusal` or `none`. The result, [`ErrorAnalysis`], is
//!   `error_analysis.json`; it carries the confusion counts, the two failure kinds (answered an
//!   unanswerable question, refused an answerable one) and concrete suggestions.
//! - [`print_report`] writes the human summary; [`write_analysis`] writes the JSON and an SVG
//!   heat map of the confusion matrix ([`confusion_svg`]) atomically; [`load_analysis`] reads it.
//! - [`build_fix`] ([`fix`] module): new phrasings from the templates' reserved augment pools for
//!   weak topics, contrastive samples for both topics of a confusion, extra refusals, merged
//!   into the training set — refusing to ever write an eval question.
//!
//! Similarities, accuracies and thresholds are fractions (0..=1) in memory and in
//! `error_analysis.json`, as in lora-eval's report; only the printed summary shows percentages.

mod analysis;
mod classify;
mod error;
mod findings;
pub mod fix;
mod output;
mod report;
mod suggest;
mod svg;

pub use analysis::analyze;
pub use classify::{ACTUAL_NONE, ACTUAL_REFUSAL, Actual, ErrorKind, TOPIC_UNANSWERABLE, classify, kind_of, topic_of};
pub use error::{Error, Result};
pub use findings::{ConfusionEntry, DiagnoseOptions, ErrorAnalysis, ErrorDetail, FailureKinds, TopicErrors};
pub use fix::{Addition, FixOptions, FixOutcome, build_fix, print_fix};
pub use output::{load_analysis, write_analysis};
pub use report::print_report;
pub use suggest::suggestions;
pub use svg::confusion_svg;
