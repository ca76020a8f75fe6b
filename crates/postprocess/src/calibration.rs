//! How far post-processing trusts retrieval: margin thresholds calibrated by leave-one-out over
//! the training questions, never by hand and never on the eval set.
//!
//! Each training question is ranked by an index that leaves it out (so it is a question the
//! index has not seen, like a user's), giving a predicted class, its margin and whether it was
//! right. A threshold is the lowest margin at which the predictions at or above it reach a
//! precision target; where none does, retrieval is never trusted for that decision. The targets
//! are the method's, the same for every KB; the margins they yield are the KB's own, and the
//! report records both.

use serde::{Deserialize, Serialize};

use crate::retrieval::{Class, Index, Scope, TrainingQuestion};

/// The default precision retrieval must have shown, on questions it had not seen, before it may
/// overrule the model (`test-qwen-lora --retrieval-precision`). The same for every KB: chosen
/// once, on the shipped KB's augment pool (neither trained on nor an eval or probe set), where it
/// gave the best average of 0.5–0.95 (docs/RESULTS.md).
pub const CONFIDENT_PRECISION: f64 = 0.9;

/// A margin threshold and the evidence behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Predictions with at least this margin are trusted; `None`: no margin reached the target.
    pub margin: Option<f64>,
    /// The precision the threshold had to reach.
    pub precision_target: f64,
    /// Leave-one-out precision of the predictions at or above `margin`.
    pub precision: f64,
    /// How many leave-one-out predictions are at or above `margin`.
    pub support: usize,
    /// How many leave-one-out predictions of this kind there were in all.
    pub predictions: usize,
}

impl Threshold {
    /// Whether a prediction with this margin is trusted.
    pub fn trusts(&self, margin: f64) -> bool {
        self.margin.is_some_and(|t| margin >= t)
    }

    /// The lowest margin whose predictions at or above it reach `target` precision, from
    /// `(margin, correct)` pairs. Cuts fall only between distinct margins, so tied predictions
    /// are trusted or not together.
    fn fit(mut predictions: Vec<(f64, bool)>, target: f64) -> Threshold {
        predictions.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut best = Threshold {
            margin: None,
            precision_target: target,
            precision: 0.0,
            support: 0,
            predictions: predictions.len(),
        };
        let mut correct = 0;
        for (i, &(margin, ok)) in predictions.iter().enumerate() {
            correct += usize::from(ok);
            let is_cut = predictions.get(i + 1).is_none_or(|next| next.0 < margin);
            let precision = correct as f64 / (i + 1) as f64;
            if is_cut && precision >= target {
                best = Threshold { margin: Some(margin), precision, support: i + 1, ..best };
            }
        }
        best
    }
}

/// The thresholds [`crate::PostProcessor`] decides with, and how retrieval did on the training
/// questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Distinct training questions ranked with themselves left out.
    pub questions: usize,
    pub answerable: usize,
    pub unanswerable: usize,
    /// Share of answerable training questions whose left-out ranking of the entries puts their
    /// own first.
    pub top1_accuracy: f64,
    /// Which entry, over the model's citation or invented answer: margins of the entries-only
    /// ranking ([`Scope::Entries`]), fitted on the answerable questions.
    pub entry_confident: Threshold,
    /// An answerable question about this entry, over the model's refusal: margins of an entry
    /// ranked first among entries and the unanswerable class ([`Scope::All`]), fitted on every
    /// question (an unanswerable one ranked under an entry counts as wrong).
    pub answerable_confident: Threshold,
    /// A question the KB does not answer, over the model's citation of an entry: margins of the
    /// unanswerable class ranked first ([`Scope::All`]).
    pub unanswerable_confident: Threshold,
}

impl Calibration {
    /// Leave-one-out over the distinct questions of `training` (the first occurrence of a
    /// repeated question decides its class); every threshold must reach `precision`.
    pub fn fit(index: &Index, training: &[TrainingQuestion], precision: f64) -> Calibration {
        let mut seen = std::collections::HashSet::new();
        let (mut identity, mut answerable_preds, mut unanswerable_preds) = (Vec::new(), Vec::new(), Vec::new());
        let (mut answerable, mut unanswerable, mut top1) = (0, 0, 0);
        for t in training {
            if !seen.insert(t.question.split_whitespace().collect::<String>()) {
                continue;
            }
            if let Class::Entry(_) = t.class {
                answerable += 1;
                let entries = index.query_left_out(&t.question, Scope::Entries);
                if let Some(top) = entries.top() {
                    identity.push((entries.margin(), top == t.class));
                    top1 += usize::from(top == t.class);
                }
            } else {
                unanswerable += 1;
            }
            let all = index.query_left_out(&t.question, Scope::All);
            match all.top() {
                Some(top @ Class::Entry(_)) => answerable_preds.push((all.margin(), top == t.class)),
                Some(Class::Unanswerable) => unanswerable_preds.push((all.margin(), t.class == Class::Unanswerable)),
                None => {}
            }
        }
        Calibration {
            questions: answerable + unanswerable,
            answerable,
            unanswerable,
            top1_accuracy: if answerable == 0 { 0.0 } else { top1 as f64 / answerable as f64 },
            entry_confident: Threshold::fit(identity, precision),
            answerable_confident: Threshold::fit(answerable_preds, precision),
            unanswerable_confident: Threshold::fit(unanswerable_preds, precision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_the_lowest_margin_that_keeps_the_target_precision() {
        // Margins high to low: right, right, wrong, right, wrong, wrong.
        let p = vec![(0.9, true), (0.8, true), (0.7, false), (0.6, true), (0.5, false), (0.4, false)];
        let t = Threshold::fit(p.clone(), 0.75);
        // At 0.6: 3 of 4 right (0.75); at 0.5: 3 of 5 (0.6).
        assert_eq!((t.margin, t.support, t.predictions), (Some(0.6), 4, 6));
        assert!((t.precision - 0.75).abs() < 1e-12);
        assert!(t.trusts(0.6) && t.trusts(0.95) && !t.trusts(0.59));
        let strict = Threshold::fit(p, 1.0);
        assert_eq!(strict.margin, Some(0.8));
    }

    #[test]
    fn no_margin_reaching_the_target_trusts_nothing() {
        let t = Threshold::fit(vec![(0.9, false), (0.5, true)], 0.95);
        assert_eq!(t.margin, None);
        assert!(!t.trusts(1.0));
        assert_eq!(Threshold::fit(Vec::new(), 0.95).margin, None);
    }

    #[test]
    fn tied_margins_are_cut_together() {
        // Two predictions at 0.8, one wrong: precision 1.0 is reachable only above them.
        let t = Threshold::fit(vec![(0.9, true), (0.8, true), (0.8, false)], 1.0);
        assert_eq!((t.margin, t.support), (Some(0.9), 1));
    }

    #[test]
    fn leave_one_out_counts_questions_once_and_measures_top1() {
        let entries = ["連線公司 VPN 前，請先下載新版 VPN 用戶端。", "特休假依年資計算。"];
        let q = |s: &str, class| TrainingQuestion { question: s.into(), class, refusal: None };
        let training = [
            q("VPN 怎麼連", Class::Entry(0)),
            q("VPN 怎麼連", Class::Entry(0)),
            q("新版 VPN 用戶端在哪", Class::Entry(0)),
            q("特休怎麼算", Class::Entry(1)),
            q("年資多久有特休", Class::Entry(1)),
            q("尾牙在哪", Class::Unanswerable),
        ];
        let index = Index::build(&entries, &training);
        let c = Calibration::fit(&index, &training, CONFIDENT_PRECISION);
        assert_eq!((c.questions, c.answerable, c.unanswerable), (5, 4, 1));
        assert!(c.top1_accuracy > 0.0 && c.top1_accuracy <= 1.0, "{c:?}");
        assert_eq!(c.entry_confident.precision_target, CONFIDENT_PRECISION);
    }
}
