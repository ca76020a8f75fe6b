//! Overlap between the eval and training questions: exact repeats (which make the eval
//! meaningless) and near-duplicates by difflib ratio (which make it optimistic).

use std::fmt;

use crate::sample::Sample;

/// difflib `SequenceMatcher.ratio()` at or above which two questions count as near-duplicates.
pub const NEAR_DUPLICATE_RATIO: f64 = 0.8;
/// Share of near-duplicate eval questions above which the report warns.
pub const NEAR_DUPLICATE_WARN_SHARE: f64 = 0.30;

/// An eval question that also appears, verbatim, in the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactOverlap {
    pub question: String,
    pub eval_doc_id: Option<String>,
    pub train_doc_id: Option<String>,
}

/// An eval question whose closest training question has a ratio ≥ [`NEAR_DUPLICATE_RATIO`].
#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicate {
    pub eval_question: String,
    pub train_question: String,
    pub ratio: f64,
}

/// The overlap report printed by `gen-eval-set`.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlapReport {
    pub eval_questions: usize,
    pub train_questions: usize,
    pub exact: Vec<ExactOverlap>,
    /// Near but not exact, in eval order.
    pub near: Vec<NearDuplicate>,
}

impl OverlapReport {
    /// Compares every eval question with every distinct training question.
    pub fn analyze(eval: &[Sample], train: &[Sample]) -> OverlapReport {
        let mut train_qs: Vec<(&str, Option<&str>)> = Vec::new();
        for s in train {
            let q = s.question.as_str();
            if !train_qs.iter().any(|(t, _)| *t == q) {
                train_qs.push((q, s.doc_id.as_deref()));
            }
        }
        let mut exact = Vec::new();
        let mut near = Vec::new();
        let mut eval_questions = 0;
        for s in eval {
            let q = s.question.as_str();
            eval_questions += 1;
            if let Some((_, doc)) = train_qs.iter().find(|(t, _)| *t == q) {
                exact.push(ExactOverlap {
                    question: q.to_string(),
                    eval_doc_id: s.doc_id.clone(),
                    train_doc_id: doc.map(str::to_string),
                });
                continue;
            }
            // First best in training order, so the report is deterministic.
            let mut best: Option<(f64, &str)> = None;
            for (t, _) in &train_qs {
                let r = seqmatch::ratio(q, t);
                if best.is_none_or(|(b, _)| r > b) {
                    best = Some((r, t));
                }
            }
            if let Some((ratio, t)) = best
                && ratio >= NEAR_DUPLICATE_RATIO
            {
                near.push(NearDuplicate { eval_question: q.to_string(), train_question: t.to_string(), ratio });
            }
        }
        OverlapReport { eval_questions, train_questions: train_qs.len(), exact, near }
    }

    /// Share of eval questions that are near-duplicates (exact ones not included).
    pub fn near_share(&self) -> f64 {
        if self.eval_questions == 0 { 0.0 } else { self.near.len() as f64 / self.eval_questions as f64 }
    }

    /// Whether near-duplicates exceed [`NEAR_DUPLICATE_WARN_SHARE`].
    pub fn too_many_near(&self) -> bool {
        self.near_share() > NEAR_DUPLICATE_WARN_SHARE
    }
}

impl fmt::Display for OverlapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "overlap: {} eval questions vs {} distinct training questions",
            self.eval_questions, self.train_questions
        )?;
        writeln!(f, "exact overlaps: {}", self.exact.len())?;
        for e in &self.exact {
            writeln!(f, "  {:?}", e.question)?;
        }
        writeln!(
            f,
            "near-duplicates (ratio >= {NEAR_DUPLICATE_RATIO}): {} ({:.1}%)",
            self.near.len(),
            self.near_share() * 100.0
        )?;
        for n in &self.near {
            writeln!(f, "  {:.3}  {:?} ~ {:?}", n.ratio, n.eval_question, n.train_question)?;
        }
        if !self.exact.is_empty() {
            writeln!(f, "WARNING: eval questions also in the training set measure memory, not generalization")?;
        }
        if self.too_many_near() {
            writeln!(
                f,
                "WARNING: more than {:.0}% of eval questions are near-duplicates of training questions; \
                 rephrase the eval questions in the templates",
                NEAR_DUPLICATE_WARN_SHARE * 100.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::STYLE_EVAL;

    fn s(q: &str, doc: Option<&str>) -> Sample {
        Sample::new(q, "a", doc, STYLE_EVAL)
    }

    #[test]
    fn finds_exact_and_near_duplicates() {
        let train = vec![
            s("VPN 要怎麼連線", Some("doc_a")),
            s("請問公司的加班規定", Some("doc_b")),
            s("VPN 要怎麼連線", Some("doc_a")),
        ];
        let eval = vec![
            s("VPN 要怎麼連線", Some("doc_a")),
            s("VPN 要怎麼連線?", Some("doc_a")),
            s("報帳期限是多久", Some("doc_c")),
        ];
        let r = OverlapReport::analyze(&eval, &train);
        assert_eq!(r.train_questions, 2, "duplicates in train are counted once");
        assert_eq!(r.eval_questions, 3);
        assert_eq!(r.exact.len(), 1);
        assert_eq!(r.exact[0].train_doc_id.as_deref(), Some("doc_a"));
        assert_eq!(r.near.len(), 1);
        assert_eq!(r.near[0].train_question, "VPN 要怎麼連線");
        // 2 * 9 matching chars / (9 + 10) chars, as difflib computes it.
        assert!((r.near[0].ratio - 18.0 / 19.0).abs() < 1e-12, "{}", r.near[0].ratio);
        assert!((r.near_share() - 1.0 / 3.0).abs() < 1e-12);
        assert!(r.too_many_near());
        let text = r.to_string();
        assert!(text.contains("exact overlaps: 1"), "{text}");
        assert!(text.contains("WARNING"), "{text}");
    }

    #[test]
    fn unrelated_sets_have_no_overlap_or_warning() {
        let train = vec![s("請假怎麼申請", Some("d"))];
        let eval = vec![s("VPN 連不上", Some("e")), s("會議室可以借幾間", Some("f"))];
        let r = OverlapReport::analyze(&eval, &train);
        assert!(r.exact.is_empty() && r.near.is_empty());
        assert!(!r.too_many_near());
        assert!(!r.to_string().contains("WARNING"));
    }

    #[test]
    fn threshold_is_inclusive() {
        // ratio("abcd", "abce") = 2*3/8 = 0.75 (below); ratio("abcde", "abcdf") = 0.8 (at).
        let r = OverlapReport::analyze(&[s("abcd", None)], &[s("abce", None)]);
        assert!(r.near.is_empty());
        let r = OverlapReport::analyze(&[s("abcde", None)], &[s("abcdf", None)]);
        assert_eq!(r.near.len(), 1);
        assert_eq!(r.near[0].ratio, 0.8);
    }
}
