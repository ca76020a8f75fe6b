//! Where a wrong answer went: the KB entry the model's text is closest to, a refusal, or nowhere.

use kb_dataset::{Kb, Templates, is_refusal, strip_answer_prefix};
use serde::{Deserialize, Serialize};

/// Topic name of unanswerable questions (rows of the confusion matrix).
pub const TOPIC_UNANSWERABLE: &str = "unanswerable";
/// "Actual" label of an answer that is a refusal.
pub const ACTUAL_REFUSAL: &str = "refusal";
/// "Actual" label of an answer close to no KB entry.
pub const ACTUAL_NONE: &str = "none";

/// Why an answer is wrong; drives the suggestions and the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An unanswerable question got a KB answer (or other non-refusal text).
    AnsweredUnanswerable,
    /// An answerable question was refused.
    RefusedAnswerable,
    /// The answer is closest to another topic's KB entry.
    WrongTopic,
    /// The answer is closest to the right KB entry but not close enough (truncated, paraphrased).
    RightTopicInexact,
    /// The answer is close to no KB entry.
    OffTopic,
    /// An unanswerable question was refused, but in words far from the expected refusal.
    RefusalWording,
}

/// The topic the answer is closest to and how close (`None` for refusals).
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    pub topic: String,
    pub similarity: Option<f64>,
}

/// The topic of a doc id: its templates topic, or the doc id itself when the templates do not
/// know it (stale eval set), so nothing is lost.
pub fn topic_of(templates: &Templates, doc_id: Option<&str>) -> String {
    match doc_id {
        None => TOPIC_UNANSWERABLE.to_string(),
        Some(id) => match templates.topic_of(id) {
            Some(t) => t.to_string(),
            None => {
                tracing::warn!("doc_id {id} is not in {}; using the id as topic", templates.path().display());
                id.to_string()
            }
        },
    }
}

/// Classifies a model answer: a refusal, else the KB entry whose text is most similar to the
/// answer (answer prefix stripped from both sides, so the shared prefix does not count), or
/// [`ACTUAL_NONE`] when the best similarity is below `floor`. Ties go to the earlier KB entry.
pub fn classify(raw: &str, kb: &Kb, templates: &Templates, floor: f64) -> Actual {
    if is_refusal(raw) {
        return Actual { topic: ACTUAL_REFUSAL.to_string(), similarity: None };
    }
    let body = raw.trim();
    let body = strip_answer_prefix(body).unwrap_or(body);
    let mut best: Option<(f64, &str)> = None;
    for entry in kb.entries() {
        let r = seqmatch::ratio(body, &entry.text);
        if best.is_none_or(|(b, _)| r > b) {
            best = Some((r, &entry.doc_id));
        }
    }
    match best {
        Some((r, id)) if r >= floor => Actual { topic: topic_of(templates, Some(id)), similarity: Some(r) },
        Some((r, _)) => Actual { topic: ACTUAL_NONE.to_string(), similarity: Some(r) },
        None => Actual { topic: ACTUAL_NONE.to_string(), similarity: None },
    }
}

/// The failure kind of a wrong answer given its expected and actual topics.
pub fn kind_of(expected_topic: &str, actual_topic: &str) -> ErrorKind {
    match (expected_topic == TOPIC_UNANSWERABLE, actual_topic) {
        (true, ACTUAL_REFUSAL) => ErrorKind::RefusalWording,
        (true, _) => ErrorKind::AnsweredUnanswerable,
        (false, ACTUAL_REFUSAL) => ErrorKind::RefusedAnswerable,
        (false, ACTUAL_NONE) => ErrorKind::OffTopic,
        (false, a) if a == expected_topic => ErrorKind::RightTopicInexact,
        (false, _) => ErrorKind::WrongTopic,
    }
}
