//! The error analysis itself: which eval answers are wrong, grouped by topic, and what they were
//! confused with.

use std::collections::{BTreeMap, HashMap};

use kb_dataset::{Kb, Sample, Templates};
use serde::{Deserialize, Serialize};

use crate::classify::{ErrorKind, TOPIC_UNANSWERABLE, classify, kind_of, topic_of};
use crate::error::{Error, Result};
use crate::suggest::suggestions;

/// One eval question with the reference answer and the model's raw (not post-processed) answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalAnswer {
    pub question: String,
    pub expected: String,
    /// `None` for unanswerable questions.
    pub doc_id: Option<String>,
    pub raw: String,
}

/// Knobs of [`analyze`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagnoseOptions {
    /// An answer whose raw similarity to the expected answer is below this is an error.
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
    /// difflib ratio of `expected` vs `raw` (as lora-eval's `similarity_raw`).
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

/// Pairs eval samples with the generated answers (same order).
pub fn answers_from_samples(eval: &[Sample], raw: &[String]) -> Result<Vec<EvalAnswer>> {
    if eval.len() != raw.len() {
        return Err(Error::AnswerCount { count: eval.len(), answers: raw.len() });
    }
    eval.iter()
        .zip(raw)
        .enumerate()
        .map(|(i, (s, r))| match (s.question(), s.answer()) {
            (Some(q), Some(a)) => Ok(EvalAnswer {
                question: q.to_string(),
                expected: a.to_string(),
                doc_id: s.doc_id.clone(),
                raw: r.clone(),
            }),
            _ => Err(Error::BadEvalSample { index: i + 1 }),
        })
        .collect()
}

/// The single entry point for `diagnose-errors`: pairs the eval set with the model's raw answers
/// and analyzes them.
pub fn diagnose(
    eval: &[Sample],
    raw: &[String],
    kb: &Kb,
    templates: &Templates,
    opts: &DiagnoseOptions,
) -> Result<ErrorAnalysis> {
    let answers = answers_from_samples(eval, raw)?;
    analyze(&answers, kb, templates, opts)
}

/// Scores every answer against its expected answer; classifies and groups the wrong ones.
pub fn analyze(
    answers: &[EvalAnswer],
    kb: &Kb,
    templates: &Templates,
    opts: &DiagnoseOptions,
) -> Result<ErrorAnalysis> {
    for (name, v) in [("threshold", opts.threshold), ("floor", opts.floor)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::Options(format!("--{name} {v} must be between 0 and 1")));
        }
    }
    let mut topic_errors: BTreeMap<String, TopicErrors> = BTreeMap::new();
    let mut detailed_errors = Vec::new();
    for a in answers {
        let expected_topic = topic_of(templates, a.doc_id.as_deref());
        let tally = topic_errors.entry(expected_topic.clone()).or_insert(TopicErrors {
            evaluated: 0,
            errors: 0,
            accuracy: 0.0,
            questions: Vec::new(),
        });
        tally.evaluated += 1;
        // Same argument order as lora-eval's `similarity_raw`: difflib's ratio is not symmetric.
        let similarity = seqmatch::ratio(&a.expected, &a.raw);
        if similarity >= opts.threshold {
            continue;
        }
        tally.errors += 1;
        tally.questions.push(a.question.clone());
        let actual = classify(&a.raw, kb, templates, opts.floor);
        detailed_errors.push(ErrorDetail {
            question: a.question.clone(),
            expected: a.expected.clone(),
            raw: a.raw.clone(),
            similarity,
            doc_id: a.doc_id.clone(),
            kind: kind_of(&expected_topic, &actual.topic),
            expected_topic,
            actual_topic: actual.topic,
            actual_similarity: actual.similarity,
        });
    }
    for t in topic_errors.values_mut() {
        t.accuracy = share(t.evaluated - t.errors, t.evaluated);
    }
    let total = answers.len();
    let errors = detailed_errors.len();
    let mut topics: Vec<String> = templates.docs().iter().map(|d| d.topic.clone()).collect();
    topics.push(TOPIC_UNANSWERABLE.to_string());
    // Stale doc ids (topic = id) still get a row.
    for t in topic_errors.keys() {
        if !topics.contains(t) {
            topics.push(t.clone());
        }
    }
    let questions_of =
        |kind| detailed_errors.iter().filter(|e: &&ErrorDetail| e.kind == kind).map(|e| e.question.clone()).collect();
    let failure_kinds = FailureKinds {
        answered_unanswerable: questions_of(ErrorKind::AnsweredUnanswerable),
        refused_answerable: questions_of(ErrorKind::RefusedAnswerable),
    };
    let mut analysis = ErrorAnalysis {
        total,
        correct: total - errors,
        errors,
        accuracy: share(total - errors, total),
        threshold: opts.threshold,
        floor: opts.floor,
        topics,
        confusion: confusion(&detailed_errors),
        detailed_errors,
        topic_errors,
        failure_kinds,
        suggestions: Vec::new(),
    };
    analysis.suggestions = suggestions(&analysis, templates);
    Ok(analysis)
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Counts expected -> actual pairs; the example is the first question of each pair.
fn confusion(errors: &[ErrorDetail]) -> Vec<ConfusionEntry> {
    let mut cells: HashMap<(&str, &str), ConfusionEntry> = HashMap::new();
    for e in errors {
        cells
            .entry((&e.expected_topic, &e.actual_topic))
            .or_insert_with(|| ConfusionEntry {
                expected: e.expected_topic.clone(),
                actual: e.actual_topic.clone(),
                count: 0,
                example_question: e.question.clone(),
            })
            .count += 1;
    }
    let mut out: Vec<ConfusionEntry> = cells.into_values().collect();
    out.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| a.expected.cmp(&b.expected)).then_with(|| a.actual.cmp(&b.actual))
    });
    out
}
