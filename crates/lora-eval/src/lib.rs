//! Runs an eval set through a model and scores it against the expected answers.
//!
//! Model-independent: the caller supplies a generator closure (batched model generation in
//! `test-qwen-lora`, a fake in tests), so everything here is plain text and numbers.
//!
//! - [`evaluate`]: eval [`Sample`](kb_dataset::Sample)s + generator + optional
//!   [`PostProcessor`](postprocess::PostProcessor) → [`Report`] of per-question [`Detail`]s and a
//!   [`Summary`]. Similarity is difflib's ratio (via `seqmatch`) of expected vs answer, raw
//!   (as generated) and final (after post-processing).
//! - [`RawAnswers`]: the raw answers to score, generated now or taken from an earlier report
//!   (matched by question); [`evaluate_answers`] scores them as [`evaluate`] does.
//!   [`Report::details_for`] gives a report's scored details for an eval set, matched the same
//!   way (what `diagnose` analyses).
//! - [`summarize`]: the [`Summary`] of a list of details (averages, [`Buckets`], sources,
//!   refusal accuracy, per-doc accuracy, goal check). A model whose raw answers are mostly empty
//!   or one repeated character ([`is_degenerate`]) fails the goal whatever post-processing made
//!   of them ([`Summary::model_broken`]).
//! - [`print_report`]: the human-readable report; [`write_report`] / [`read_report`]: the JSON
//!   report `{summary, details}`, written atomically.
//!
//! Scores and rates are fractions (0..=1) in memory and in the JSON report, stored as computed
//! (as in `diagnose`'s `error_analysis.json`); only the printed report shows percentages.
//! [`read_report`] still reads reports written in percents by older versions, as fractions, and
//! refuses a figure that is no fraction, naming it.

mod answers;
mod detail;
mod error;
mod health;
mod print;
mod report;
mod runner;
mod summary;

pub use answers::{RawAnswers, evaluate_answers};
pub use detail::{Detail, PASS_THRESHOLD, is_correct};
pub use error::{Error, Result};
pub use health::{is_broken, is_degenerate};
pub use postprocess::Source;
pub use print::{PrintOptions, compare_table, print_report};
pub use report::{Report, read_report, write_report};
pub use runner::{EvalOptions, evaluate};
pub use summary::{Buckets, DocStats, SourceStats, Summary, summarize};
