//! Aggregate figures of an evaluation, computed from the details alone.

use std::collections::BTreeMap;

use kb_dataset::is_refusal;
use postprocess::Source;
use serde::{Deserialize, Serialize};

use crate::detail::{Detail, PASS_THRESHOLD};

/// How many answers fall in each similarity band (named in percent: ≥85, 70–84, 50–69, <50).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    #[serde(rename = "85+")]
    pub excellent: usize,
    #[serde(rename = "70-84")]
    pub good: usize,
    #[serde(rename = "50-69")]
    pub fair: usize,
    #[serde(rename = "<50")]
    pub poor: usize,
}

impl Buckets {
    fn add(&mut self, similarity: f64) {
        // Compared in 0..=1 against the same literals the bands are named after, so a ratio of
        // exactly 17/20 lands in 85+.
        match similarity {
            s if s >= 0.85 => self.excellent += 1,
            s if s >= 0.70 => self.good += 1,
            s if s >= 0.50 => self.fair += 1,
            _ => self.poor += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.excellent + self.good + self.fair + self.poor
    }
}

/// Figures for the answers of one source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceStats {
    pub count: usize,
    pub avg_similarity: f64,
    pub avg_similarity_raw: f64,
}

/// Figures for the answerable questions about one KB doc.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DocStats {
    pub total: usize,
    /// Final answers that are correct ([`Detail::is_correct`]).
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    pub avg_similarity: f64,
    pub avg_similarity_raw: f64,
}

/// The summary of an evaluation. Rates and similarities are fractions (0..=1), in JSON too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub total_tests: usize,
    /// Mean final similarity (after post-processing).
    pub avg_similarity: f64,
    /// Mean similarity of the answers as generated.
    pub avg_similarity_raw: f64,
    /// Mean final similarity over the answerable questions (`null` when none).
    #[serde(default)]
    pub avg_similarity_answerable: Option<f64>,
    /// Mean raw similarity over the answerable questions (`null` when none).
    #[serde(default)]
    pub avg_similarity_answerable_raw: Option<f64>,
    pub max_similarity: f64,
    pub min_similarity: f64,
    pub max_similarity_raw: f64,
    pub min_similarity_raw: f64,
    /// Final similarities by band.
    pub buckets: Buckets,
    /// Raw similarities by band.
    pub buckets_raw: Buckets,
    /// Answers per source; every source is listed, with 0 when unused.
    pub source_distribution: BTreeMap<Source, usize>,
    /// Averages per source that occurred.
    pub by_source: BTreeMap<Source, SourceStats>,
    /// Questions whose expected answer is a refusal.
    pub unanswerable_total: usize,
    /// Share of unanswerable questions whose final answer is a refusal (`null` when none).
    pub refusal_accuracy: Option<f64>,
    pub answerable_total: usize,
    /// Share of answerable questions whose final answer is a refusal (`null` when none).
    pub answerable_refusal_rate: Option<f64>,
    /// Share of answerable questions the model refused as generated (`null` when none).
    #[serde(default)]
    pub answerable_refusal_rate_raw: Option<f64>,
    /// Raw answers that quote no KB entry and are no refusal (invented policies, or no answer);
    /// known only with post-processing.
    #[serde(default)]
    pub raw_unmatched: usize,
    /// Of those, the ones post-processing kept as generated.
    #[serde(default)]
    pub unmatched_kept: usize,
    /// Answerable questions by doc_id (`(none)` for samples without one).
    pub per_doc: BTreeMap<String, DocStats>,
    pub pass_threshold: f64,
    /// Raw answers that are empty or one repeated character ([`crate::is_degenerate`]).
    #[serde(default)]
    pub degenerate_raw: usize,
    /// Whether `avg_similarity` ≥ `pass_threshold` and the model is not broken
    /// ([`Summary::model_broken`]).
    pub goal_met: bool,
    /// Wall-clock seconds spent in the generator (0 when not measured).
    #[serde(default)]
    pub generation_seconds: f64,
}

impl Summary {
    /// Whether most raw answers are degenerate: the model is broken, however well
    /// post-processing scored its answers.
    pub fn model_broken(&self) -> bool {
        crate::is_broken(self.degenerate_raw, self.total_tests)
    }

    /// Every similarity, accuracy and rate of the summary (all fractions, 0..=1), named by its
    /// place in the JSON report; rates that are `null` are left out.
    pub(crate) fn fractions_mut(&mut self) -> Vec<(String, &mut f64)> {
        let mut out: Vec<(String, &mut f64)> = vec![
            ("summary.avg_similarity".into(), &mut self.avg_similarity),
            ("summary.avg_similarity_raw".into(), &mut self.avg_similarity_raw),
            ("summary.max_similarity".into(), &mut self.max_similarity),
            ("summary.min_similarity".into(), &mut self.min_similarity),
            ("summary.max_similarity_raw".into(), &mut self.max_similarity_raw),
            ("summary.min_similarity_raw".into(), &mut self.min_similarity_raw),
            ("summary.pass_threshold".into(), &mut self.pass_threshold),
        ];
        for (name, value) in [
            ("avg_similarity_answerable", &mut self.avg_similarity_answerable),
            ("avg_similarity_answerable_raw", &mut self.avg_similarity_answerable_raw),
            ("refusal_accuracy", &mut self.refusal_accuracy),
            ("answerable_refusal_rate", &mut self.answerable_refusal_rate),
            ("answerable_refusal_rate_raw", &mut self.answerable_refusal_rate_raw),
        ] {
            out.extend(value.as_mut().map(|v| (format!("summary.{name}"), v)));
        }
        for (source, st) in &mut self.by_source {
            out.push((format!("summary.by_source.{source}.avg_similarity"), &mut st.avg_similarity));
            out.push((format!("summary.by_source.{source}.avg_similarity_raw"), &mut st.avg_similarity_raw));
        }
        for (doc, st) in &mut self.per_doc {
            out.push((format!("summary.per_doc.{doc}.accuracy"), &mut st.accuracy));
            out.push((format!("summary.per_doc.{doc}.avg_similarity"), &mut st.avg_similarity));
            out.push((format!("summary.per_doc.{doc}.avg_similarity_raw"), &mut st.avg_similarity_raw));
        }
        out
    }
}

/// Mean of `values`; 0 for none (an empty eval is refused earlier, this only avoids NaN).
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The max or min of `values`; 0 for none.
fn extreme(values: impl Iterator<Item = f64>, pick: fn(f64, f64) -> f64) -> f64 {
    values.reduce(pick).unwrap_or(0.0)
}

fn share(part: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| part as f64 / total as f64)
}

/// Computes every summary figure from `details`: the expected answer decides whether a question
/// is answerable (a refusal is expected) and the final answer whether the model refused.
pub fn summarize(details: &[Detail]) -> Summary {
    let finals = || details.iter().map(|d| d.similarity);
    let raws = || details.iter().map(|d| d.similarity_raw);

    let mut buckets = Buckets::default();
    let mut buckets_raw = Buckets::default();
    let mut source_distribution: BTreeMap<Source, usize> = Source::ALL.iter().map(|&s| (s, 0)).collect();
    let mut by_source: BTreeMap<Source, Vec<&Detail>> = BTreeMap::new();
    let mut per_doc: BTreeMap<String, Vec<&Detail>> = BTreeMap::new();
    let (mut unanswerable, mut refused_unanswerable) = (0, 0);
    let (mut answerable, mut refused_answerable, mut refused_answerable_raw) = (0, 0, 0);
    let unmatched = || details.iter().filter(|d| d.raw_kind == Some(postprocess::RawKind::Unmatched));
    for d in details {
        buckets.add(d.similarity);
        buckets_raw.add(d.similarity_raw);
        *source_distribution.entry(d.source).or_default() += 1;
        by_source.entry(d.source).or_default().push(d);
        let refused = is_refusal(&d.model);
        if is_refusal(&d.expected) {
            unanswerable += 1;
            refused_unanswerable += usize::from(refused);
        } else {
            answerable += 1;
            refused_answerable += usize::from(refused);
            refused_answerable_raw += usize::from(is_refusal(&d.raw));
            let key = d.doc_id.clone().unwrap_or_else(|| "(none)".to_string());
            per_doc.entry(key).or_default().push(d);
        }
    }

    let by_source = by_source
        .into_iter()
        .map(|(source, ds)| {
            let stats = SourceStats {
                count: ds.len(),
                avg_similarity: mean(ds.iter().map(|d| d.similarity)),
                avg_similarity_raw: mean(ds.iter().map(|d| d.similarity_raw)),
            };
            (source, stats)
        })
        .collect();
    let per_doc = per_doc
        .into_iter()
        .map(|(doc, ds)| {
            let correct = ds.iter().filter(|d| d.is_correct()).count();
            let stats = DocStats {
                total: ds.len(),
                correct,
                accuracy: share(correct, ds.len()).unwrap_or(0.0),
                avg_similarity: mean(ds.iter().map(|d| d.similarity)),
                avg_similarity_raw: mean(ds.iter().map(|d| d.similarity_raw)),
            };
            (doc, stats)
        })
        .collect();

    let avg_similarity = mean(finals());
    let answerable_details = || details.iter().filter(|d| !is_refusal(&d.expected));
    let degenerate_raw = details.iter().filter(|d| crate::is_degenerate(&d.raw)).count();
    Summary {
        total_tests: details.len(),
        avg_similarity,
        avg_similarity_raw: mean(raws()),
        avg_similarity_answerable: (answerable > 0).then(|| mean(answerable_details().map(|d| d.similarity))),
        avg_similarity_answerable_raw: (answerable > 0).then(|| mean(answerable_details().map(|d| d.similarity_raw))),
        max_similarity: extreme(finals(), f64::max),
        min_similarity: extreme(finals(), f64::min),
        max_similarity_raw: extreme(raws(), f64::max),
        min_similarity_raw: extreme(raws(), f64::min),
        buckets,
        buckets_raw,
        source_distribution,
        by_source,
        unanswerable_total: unanswerable,
        refusal_accuracy: share(refused_unanswerable, unanswerable),
        answerable_total: answerable,
        answerable_refusal_rate: share(refused_answerable, answerable),
        answerable_refusal_rate_raw: share(refused_answerable_raw, answerable),
        raw_unmatched: unmatched().count(),
        unmatched_kept: unmatched().filter(|d| d.model == d.raw).count(),
        per_doc,
        pass_threshold: PASS_THRESHOLD,
        degenerate_raw,
        goal_met: !details.is_empty()
            && avg_similarity >= PASS_THRESHOLD
            && !crate::is_broken(degenerate_raw, details.len()),
        generation_seconds: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(expected: &str, model: &str, sim: f64, raw: f64, source: Source, doc: Option<&str>) -> Detail {
        Detail {
            question: "q".into(),
            expected: expected.into(),
            raw: model.into(),
            model: model.into(),
            similarity: sim,
            similarity_raw: raw,
            source,
            source_detail: String::new(),
            doc_id: doc.map(str::to_string),
            raw_kind: None,
        }
    }

    #[test]
    fn bucket_edges_follow_the_0_to_100_bands() {
        let mut b = Buckets::default();
        for s in [1.0, 0.85, 34.0 / 40.0, 0.8499, 0.70, 0.6999, 0.5, 0.4999, 0.0] {
            b.add(s);
        }
        assert_eq!((b.excellent, b.good, b.fair, b.poor), (3, 2, 2, 2));
        assert_eq!(b.total(), 9);
    }

    #[test]
    fn figures_come_from_the_details() {
        let a = "依據公司規範:甲";
        let r = "抱歉,不知道";
        let details = vec![
            detail(a, a, 1.0, 0.5, Source::KbMatch, Some("doc_a")),
            detail(a, "亂講", 0.25, 0.25, Source::ModelGenerated, Some("doc_a")),
            detail(a, r, 0.0, 0.0, Source::ModelGenerated, Some("doc_b")),
            detail(r, r, 1.0, 1.0, Source::ModelGenerated, None),
            detail(r, a, 0.2, 0.2, Source::RuleOverride, None),
        ];
        let s = summarize(&details);
        assert_eq!(s.total_tests, 5);
        assert!((s.avg_similarity - 2.45 / 5.0).abs() < 1e-12);
        assert!((s.avg_similarity_raw - 1.95 / 5.0).abs() < 1e-12);
        assert_eq!((s.max_similarity, s.min_similarity), (1.0, 0.0));
        assert_eq!((s.max_similarity_raw, s.min_similarity_raw), (1.0, 0.0));
        assert_eq!(s.buckets, Buckets { excellent: 2, good: 0, fair: 0, poor: 3 });
        assert_eq!(s.buckets_raw, Buckets { excellent: 1, good: 0, fair: 1, poor: 3 });
        assert_eq!(s.source_distribution[&Source::ModelGenerated], 3);
        assert_eq!(s.source_distribution[&Source::KbMatch], 1);
        assert_eq!(s.by_source[&Source::ModelGenerated].count, 3);
        assert!((s.by_source[&Source::ModelGenerated].avg_similarity - 1.25 / 3.0).abs() < 1e-12);
        assert_eq!((s.unanswerable_total, s.answerable_total), (2, 3));
        assert_eq!(s.refusal_accuracy, Some(0.5));
        assert_eq!(s.answerable_refusal_rate, Some(1.0 / 3.0));
        assert_eq!(s.per_doc["doc_a"].total, 2);
        assert_eq!(s.per_doc["doc_a"].correct, 1);
        assert_eq!(s.per_doc["doc_a"].accuracy, 0.5);
        assert_eq!(s.per_doc["doc_b"].accuracy, 0.0);
        assert!(!s.goal_met);
    }

    #[test]
    fn no_unanswerable_questions_means_no_refusal_accuracy() {
        let a = "依據公司規範:甲";
        let s = summarize(&[detail(a, a, 1.0, 1.0, Source::KbMatch, Some("d"))]);
        assert_eq!(s.refusal_accuracy, None);
        assert!(s.goal_met);
        let empty = summarize(&[]);
        assert_eq!(empty.avg_similarity, 0.0);
        assert!(!empty.goal_met);
    }

    #[test]
    fn garbage_raw_answers_fail_the_goal_whatever_post_processing_did() {
        let a = "依據公司規範:甲";
        let mut rescued = detail(a, a, 1.0, 0.0, Source::RuleOverride, Some("d"));
        rescued.raw = "!!!!!!!!".into();
        let fine = detail(a, a, 1.0, 1.0, Source::ModelGenerated, Some("d"));
        let s = summarize(&[rescued.clone(), rescued.clone(), fine.clone()]);
        assert_eq!((s.degenerate_raw, s.avg_similarity), (2, 1.0));
        assert!(s.model_broken() && !s.goal_met);
        let s = summarize(&[rescued, fine.clone(), fine]);
        assert!(!s.model_broken() && s.goal_met);
    }
}
