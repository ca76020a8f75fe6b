//! One evaluated question, and what makes its answer correct.

use postprocess::{RawKind, Source};
use serde::{Deserialize, Serialize};

/// An answer with at least this similarity counts as correct ([`is_correct`]), and the goal is
/// an average at or above it (85%, the reference's target).
pub const PASS_THRESHOLD: f64 = 0.85;

/// The one definition of a correct answer: its difflib similarity to the expected answer
/// (0..=1) is at least `threshold` ([`PASS_THRESHOLD`] for the eval report; `diagnose` takes
/// its own, stricter one).
pub fn is_correct(similarity: f64, threshold: f64) -> bool {
    similarity >= threshold
}

/// One evaluated question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    pub question: String,
    /// The eval set's answer.
    pub expected: String,
    /// The model's answer as generated.
    pub raw: String,
    /// The final answer after post-processing (equal to `raw` without it).
    pub model: String,
    /// difflib ratio of `expected` vs `model` (0..=1, in JSON too).
    pub similarity: f64,
    /// difflib ratio of `expected` vs `raw` (0..=1, in JSON too).
    pub similarity_raw: f64,
    pub source: Source,
    pub source_detail: String,
    /// The KB doc the question is about; `None` for unanswerable questions.
    pub doc_id: Option<String>,
    /// What the raw answer was (`None` without post-processing, or in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_kind: Option<RawKind>,
}

impl Detail {
    /// Whether the final answer is correct ([`is_correct`] at [`PASS_THRESHOLD`]).
    pub fn is_correct(&self) -> bool {
        is_correct(self.similarity, PASS_THRESHOLD)
    }

    /// Scores the final and the raw answer: difflib's ratio of the expected answer vs each,
    /// expected first as the reference called it (the ratio is not symmetric). The one place an
    /// answer is scored.
    pub(crate) fn score(&mut self) {
        self.similarity = seqmatch::ratio(&self.expected, &self.model);
        self.similarity_raw = seqmatch::ratio(&self.expected, &self.raw);
    }
}
