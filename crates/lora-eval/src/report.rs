//! The evaluation report: per-question details plus the summary, and its JSON file.

use std::collections::HashMap;
use std::path::Path;

use kb_dataset::Sample;
use postprocess::Settings;
use serde::{Deserialize, Serialize};

use crate::detail::Detail;
use crate::error::{Error, Result};
use crate::summary::Summary;

/// What `test-qwen-lora` writes: `{"summary": ..., "details": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub summary: Summary,
    /// How post-processing was set up: rules file, retrieval and its calibrated thresholds
    /// (`None` without post-processing, or in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postprocess: Option<Settings>,
    pub details: Vec<Detail>,
}

impl Report {
    /// This report's detail for each of `samples`' questions, in their order, matched by
    /// question: the report's order and any questions it has beyond these do not matter, and a
    /// question it lacks is an error naming it and `path` (where the report was read from).
    fn details_matching(&self, samples: &[Sample], path: &Path) -> Result<Vec<&Detail>> {
        let by_question: HashMap<&str, &Detail> = self.details.iter().map(|d| (d.question.as_str(), d)).collect();
        samples
            .iter()
            .map(|s| {
                by_question
                    .get(s.question.as_str())
                    .copied()
                    .ok_or_else(|| Error::MissingAnswer { path: path.to_path_buf(), question: s.question.clone() })
            })
            .collect()
    }

    /// The raw answer this report gave to each of `samples`' questions, in their order (matched
    /// as [`Report::details_for`] does); the expected answers may have changed since, as the
    /// answers are scored again.
    pub fn raw_answers_to(&self, samples: &[Sample], path: &Path) -> Result<Vec<String>> {
        Ok(self.details_matching(samples, path)?.into_iter().map(|d| d.raw.clone()).collect())
    }

    /// This report's scored detail for each of `samples`' questions, in their order: matched by
    /// question (the report's order and any questions it has beyond these do not matter), and
    /// each must expect the sample's answer about the sample's doc, since its scores were
    /// computed against them. A question the report lacks, or scored against another answer or
    /// doc, is an error naming it and `path`.
    pub fn details_for(&self, samples: &[Sample], path: &Path) -> Result<Vec<Detail>> {
        let details = self.details_matching(samples, path)?;
        for (s, d) in samples.iter().zip(&details) {
            let field = if d.expected != s.answer {
                "expected answer"
            } else if d.doc_id != s.doc_id {
                "doc_id"
            } else {
                continue;
            };
            return Err(Error::OtherEvalSet { path: path.to_path_buf(), question: s.question.clone(), field });
        }
        Ok(details.into_iter().cloned().collect())
    }
}

/// Writes the report as pretty JSON, atomically, creating the directory; nothing is written on
/// error.
pub fn write_report(path: impl AsRef<Path>, report: &Report) -> Result<()> {
    let path = path.as_ref();
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| Error::WriteReport {
        path: path.to_path_buf(),
        source: kb_dataset::Error::Write { path: path.to_path_buf(), source: e.into() },
    })?;
    json.push(b'\n');
    kb_dataset::write_atomic(path, &json).map_err(|source| Error::WriteReport { path: path.to_path_buf(), source })
}

/// Reads a report written by [`write_report`] (for diagnosis and comparisons). A report written
/// by an older version, in percents, is recognised by its `pass_threshold` above 1 and read as
/// fractions: its answers are scored again from their texts (exactly as computed, which dividing
/// by 100 does not always give back) and its summary's figures divided by 100. Any figure that
/// is then no fraction (0..=1) is an error naming it.
pub fn read_report(path: impl AsRef<Path>) -> Result<Report> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::ReadReport { path: path.to_path_buf(), source })?;
    let mut report: Report =
        serde_json::from_str(&text).map_err(|source| Error::ParseReport { path: path.to_path_buf(), source })?;
    if report.summary.pass_threshold > 1.0 {
        report.percents_to_fractions();
    }
    report.check_fractions(path)?;
    Ok(report)
}

impl Report {
    /// Turns a report written in percents (before fractions were stored) into fractions.
    fn percents_to_fractions(&mut self) {
        for d in &mut self.details {
            d.score();
        }
        for (_, v) in self.summary.fractions_mut() {
            *v /= 100.0;
        }
    }

    /// Every score and rate must be a fraction: a percent where a fraction belongs is an error
    /// naming the field, not a figure a hundred times too large downstream.
    fn check_fractions(&mut self, path: &Path) -> Result<()> {
        let mut figures = self.summary.fractions_mut();
        for (i, d) in self.details.iter_mut().enumerate() {
            figures.push((format!("details[{i}].similarity"), &mut d.similarity));
            figures.push((format!("details[{i}].similarity_raw"), &mut d.similarity_raw));
        }
        match figures.into_iter().find(|(_, v)| !(0.0..=1.0).contains(&**v)) {
            Some((field, value)) => Err(Error::NotAFraction { path: path.to_path_buf(), field, value: *value }),
            None => Ok(()),
        }
    }
}
