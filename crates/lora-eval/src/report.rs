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
    /// The raw answer this report (read from `path`) gave to each of `samples`' questions, in
    /// their order; a question it lacks is an error naming both.
    pub fn raw_answers_to(&self, samples: &[Sample], path: &Path) -> Result<Vec<String>> {
        let raw: HashMap<&str, &str> = self.details.iter().map(|d| (d.question.as_str(), d.raw.as_str())).collect();
        samples
            .iter()
            .map(|s| {
                let q = s.question.as_str();
                raw.get(q)
                    .map(|a| a.to_string())
                    .ok_or_else(|| Error::MissingAnswer { path: path.to_path_buf(), question: q.to_string() })
            })
            .collect()
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
/// fractions.
pub fn read_report(path: impl AsRef<Path>) -> Result<Report> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::ReadReport { path: path.to_path_buf(), source })?;
    let mut report: Report =
        serde_json::from_str(&text).map_err(|source| Error::ParseReport { path: path.to_path_buf(), source })?;
    if report.summary.pass_threshold > 1.0 {
        report.percents_to_fractions();
    }
    Ok(report)
}

impl Report {
    /// Turns the scores of a report written in percents (before fractions were stored) into
    /// fractions, as those versions read them.
    fn percents_to_fractions(&mut self) {
        let f = |v: &mut f64| *v /= 100.0;
        let o = |v: &mut Option<f64>| {
            if let Some(v) = v {
                *v /= 100.0;
            }
        };
        for d in &mut self.details {
            f(&mut d.similarity);
            f(&mut d.similarity_raw);
        }
        let s = &mut self.summary;
        for v in [
            &mut s.avg_similarity,
            &mut s.avg_similarity_raw,
            &mut s.max_similarity,
            &mut s.min_similarity,
            &mut s.max_similarity_raw,
            &mut s.min_similarity_raw,
            &mut s.pass_threshold,
        ] {
            f(v);
        }
        for v in [
            &mut s.avg_similarity_answerable,
            &mut s.avg_similarity_answerable_raw,
            &mut s.refusal_accuracy,
            &mut s.answerable_refusal_rate,
            &mut s.answerable_refusal_rate_raw,
        ] {
            o(v);
        }
        for st in s.by_source.values_mut() {
            f(&mut st.avg_similarity);
            f(&mut st.avg_similarity_raw);
        }
        for st in s.per_doc.values_mut() {
            f(&mut st.accuracy);
            f(&mut st.avg_similarity);
            f(&mut st.avg_similarity_raw);
        }
    }
}
