//! The distribution report of a training set: target versus actual, overall, per doc and per
//! style. The actual side is counted from the samples themselves, so it checks the sampler.

use std::fmt;

use crate::plan::{Plan, TrainRequest};
use crate::sample::{STYLE_UNANSWERABLE, Sample};
use crate::templates::Templates;

/// A planned and an achieved count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub target: usize,
    pub actual: usize,
}

/// One row of the per-doc table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCount {
    pub doc_id: String,
    pub topic: String,
    pub count: Count,
}

/// One row of the per-style table; the target is the even share, so it may be fractional.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleCount {
    pub style: String,
    pub target: f64,
    pub actual: usize,
}

/// How a training set is spread.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub total: Count,
    pub answerable: Count,
    pub unanswerable: Count,
    pub target_ratio: f64,
    pub per_doc: Vec<DocCount>,
    pub per_style: Vec<StyleCount>,
}

impl Distribution {
    pub(crate) fn measure(templates: &Templates, samples: &[Sample], req: &TrainRequest, plan: &Plan) -> Self {
        let unanswerable = samples.iter().filter(|s| s.doc_id.is_none()).count();
        let per_doc = templates
            .docs()
            .iter()
            .zip(&plan.per_doc)
            .map(|(d, &target)| DocCount {
                doc_id: d.doc_id.clone(),
                topic: d.topic.clone(),
                count: Count {
                    target,
                    actual: samples.iter().filter(|s| s.doc_id.as_deref() == Some(&d.doc_id)).count(),
                },
            })
            .collect();
        let mut per_style: Vec<StyleCount> = templates
            .styles()
            .into_iter()
            .map(|style| {
                // Even share: each doc spreads its count over the styles it has.
                let target = templates
                    .docs()
                    .iter()
                    .zip(&plan.per_doc)
                    .map(|(d, &n)| {
                        let mut styles: Vec<&str> = d.train.iter().map(|q| q.style.as_str()).collect();
                        styles.dedup();
                        if styles.contains(&style.as_str()) { n as f64 / styles.len() as f64 } else { 0.0 }
                    })
                    .sum();
                let actual = samples.iter().filter(|s| s.doc_id.is_some() && s.style == style).count();
                StyleCount { style, target, actual }
            })
            .collect();
        per_style.push(StyleCount {
            style: STYLE_UNANSWERABLE.to_string(),
            target: plan.unanswerable as f64,
            actual: unanswerable,
        });
        Distribution {
            total: Count { target: req.total, actual: samples.len() },
            answerable: Count { target: plan.answerable, actual: samples.len() - unanswerable },
            unanswerable: Count { target: plan.unanswerable, actual: unanswerable },
            target_ratio: req.unanswerable_ratio,
            per_doc,
            per_style,
        }
    }

    /// The achieved share of unanswerable samples.
    pub fn actual_ratio(&self) -> f64 {
        if self.total.actual == 0 { 0.0 } else { self.unanswerable.actual as f64 / self.total.actual as f64 }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<22}{:>8}{:>8}", "", "target", "actual")?;
        writeln!(f, "{:<22}{:>8}{:>8}", "total", self.total.target, self.total.actual)?;
        writeln!(f, "{:<22}{:>8}{:>8}", "answerable", self.answerable.target, self.answerable.actual)?;
        writeln!(f, "{:<22}{:>8}{:>8}", "unanswerable", self.unanswerable.target, self.unanswerable.actual)?;
        writeln!(
            f,
            "{:<22}{:>7.1}%{:>7.1}%",
            "unanswerable ratio",
            self.target_ratio * 100.0,
            self.actual_ratio() * 100.0
        )?;
        writeln!(f, "\nper doc")?;
        for d in &self.per_doc {
            writeln!(f, "  {:<20}{:>8}{:>8}  {}", d.topic, d.count.target, d.count.actual, d.doc_id)?;
        }
        writeln!(f, "\nper style")?;
        for s in &self.per_style {
            writeln!(f, "  {:<20}{:>8.1}{:>8}", s.style, s.target, s.actual)?;
        }
        Ok(())
    }
}
