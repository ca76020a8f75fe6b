//! What an error analysis finds: the types of `error_analysis.json`, and its options.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::classify::ErrorKind;

/// Knobs of [`analyze`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnoseOptions {
    /// An answer whose raw similarity to the expected answer is below this is an error
    /// ([`lora_eval::is_correct`]).
    pub threshold: f64,
    /// A wrong answer whose best KB similarity is below this is classified as `none`.
    pub floor: f64,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions { threshold: 0.90, floor: 0.3 }
    }
}

/// One wrong answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub question: String,
    pub expected: String,
    pub raw: String,
    /// The score of `raw`: lora-eval's `similarity_raw` (difflib ratio of `expected` vs `raw`).
    pub similarity: f64,
    pub doc_id: Option<String>,
    pub expected_topic: String,
    /// Topic of the KB entry the answer is closest to, `refusal` or `none`.
    pub actual_topic: String,
    /// Similarity of the answer to that entry's text (`None` for refusals).
    pub actual_similarity: Option<f64>,
    pub kind: ErrorKind,
}

/// Per-topic tally (every topic in the eval set, with or without errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicErrors {
    pub evaluated: usize,
    pub errors: usize,
    pub accuracy: f64,
    /// The questions answered wrongly, in eval order.
    pub questions: Vec<String>,
}

/// How often answers to `expected` questions landed on `actual`, with one example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionEntry {
    pub expected: String,
    pub actual: String,
    pub count: usize,
    pub example_question: String,
}

/// The two failure kinds the reference pipeline singles out (questions, in eval order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureKinds {
    pub answered_unanswerable: Vec<String>,
    pub refused_answerable: Vec<String>,
}

/// The whole analysis; this is `error_analysis.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnalysis {
    pub total: usize,
    pub correct: usize,
    pub errors: usize,
    pub accuracy: f64,
    pub threshold: f64,
    pub floor: f64,
    /// Every topic of the templates in KB order, then `unanswerable`: the matrix rows.
    pub topics: Vec<String>,
    pub detailed_errors: Vec<ErrorDetail>,
    pub topic_errors: BTreeMap<String, TopicErrors>,
    /// Sorted by count (descending), then expected and actual topic.
    pub confusion: Vec<ConfusionEntry>,
    pub failure_kinds: FailureKinds,
    pub suggestions: Vec<String>,
}
