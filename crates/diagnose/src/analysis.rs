//! The error analysis itself: which eval answers are wrong, grouped by topic, and what they were
//! confused with.

use std::collections::{BTreeMap, HashMap};

use kb_dataset::{Kb, Templates};
use lora_eval::Detail;

use crate::classify::{ErrorKind, TOPIC_UNANSWERABLE, classify, kind_of, topic_of};
use crate::error::{Error, Result};
use crate::findings::{ConfusionEntry, DiagnoseOptions, ErrorAnalysis, ErrorDetail, FailureKinds, TopicErrors};
use crate::suggest::suggestions;

/// Analyzes the evaluated questions `details` (lora-eval's, generated now or read from a report):
/// a raw answer that is not correct ([`lora_eval::is_correct`] of its score `similarity_raw` at
/// `opts.threshold`) is an error; the errors are classified and grouped.
pub fn analyze(details: &[Detail], kb: &Kb, templates: &Templates, opts: &DiagnoseOptions) -> Result<ErrorAnalysis> {
    for (name, v) in [("threshold", opts.threshold), ("floor", opts.floor)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::Options(format!("--{name} {v} must be between 0 and 1")));
        }
    }
    let mut topic_errors: BTreeMap<String, TopicErrors> = BTreeMap::new();
    let mut detailed_errors = Vec::new();
    for d in details {
        let expected_topic = topic_of(templates, d.doc_id.as_deref());
        let tally = topic_errors.entry(expected_topic.clone()).or_insert(TopicErrors {
            evaluated: 0,
            errors: 0,
            accuracy: 0.0,
            questions: Vec::new(),
        });
        tally.evaluated += 1;
        let similarity = d.similarity_raw;
        if lora_eval::is_correct(similarity, opts.threshold) {
            continue;
        }
        tally.errors += 1;
        tally.questions.push(d.question.clone());
        let actual = classify(&d.raw, kb, templates, opts.floor);
        detailed_errors.push(ErrorDetail {
            question: d.question.clone(),
            expected: d.expected.clone(),
            raw: d.raw.clone(),
            similarity,
            doc_id: d.doc_id.clone(),
            kind: kind_of(&expected_topic, &actual.topic),
            expected_topic,
            actual_topic: actual.topic,
            actual_similarity: actual.similarity,
        });
    }
    for t in topic_errors.values_mut() {
        t.accuracy = share(t.evaluated - t.errors, t.evaluated);
    }
    let total = details.len();
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
