//! Where an evaluation's raw answers come from: generated now by the model, or taken from an
//! earlier report. Either way they are [`RawAnswers`], one per eval sample and in its order, and
//! [`evaluate_answers`] scores them (`test-qwen-lora`; `diagnose-errors` on generated answers,
//! while on a report it takes the report's own scores, [`Report::details_for`]).

use std::path::Path;
use std::time::Instant;

use kb_dataset::Sample;
use postprocess::PostProcessor;

use crate::error::{Error, Result};
use crate::report::{Report, read_report};
use crate::runner::{EvalOptions, evaluate};

/// The raw answer to each eval sample, in the samples' order, and how long generating them took.
#[derive(Debug, Clone, PartialEq)]
pub struct RawAnswers {
    pub raw: Vec<String>,
    /// Seconds the model spent generating; for answers from a report, that run's figure.
    pub generation_seconds: f64,
}

impl RawAnswers {
    /// Answers every sample's question with one call of `generate` (which sorts the prompts by
    /// length and batches them itself) and times it. `generate` must return one answer per
    /// question, in order.
    pub fn generate<G, E>(samples: &[Sample], generate: G) -> Result<Self>
    where
        G: FnOnce(&[String]) -> std::result::Result<Vec<String>, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let questions: Vec<String> = samples.iter().map(|s| s.question.clone()).collect();
        let started = Instant::now();
        let raw =
            generate(&questions).map_err(|e| Error::Generation { start: 1, end: questions.len(), source: e.into() })?;
        if raw.len() != questions.len() {
            return Err(Error::AnswerCount { expected: questions.len(), got: raw.len() });
        }
        Ok(Self { raw, generation_seconds: started.elapsed().as_secs_f64() })
    }

    /// The raw answers the report at `path` gave to `samples`' questions, matched by question:
    /// the report's order and any questions it has beyond these do not matter, and a question it
    /// does not answer is an error naming that question. Carries the report's generation time.
    pub fn from_report(path: &Path, samples: &[Sample]) -> Result<Self> {
        let report = read_report(path)?;
        Self::from_loaded_report(&report, path, samples)
    }

    /// [`RawAnswers::from_report`] on a report already read from `path`.
    pub fn from_loaded_report(report: &Report, path: &Path, samples: &[Sample]) -> Result<Self> {
        let raw = report.raw_answers_to(samples, path)?;
        Ok(Self { raw, generation_seconds: report.summary.generation_seconds })
    }
}

/// Post-processes and scores `answers` to `samples` as [`evaluate`] does; the report's generation
/// time is the answers' own.
pub fn evaluate_answers(samples: &[Sample], post: Option<&PostProcessor>, answers: RawAnswers) -> Result<Report> {
    let RawAnswers { raw, generation_seconds } = answers;
    let options = EvalOptions { batch_size: samples.len().max(1) };
    let mut raw = Some(raw);
    let mut report = evaluate(samples, post, options, |_| {
        Ok::<_, std::convert::Infallible>(raw.take().expect("one batch of every question"))
    })?;
    report.summary.generation_seconds = generation_seconds;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_report;

    fn samples() -> Vec<Sample> {
        vec![
            Sample::new("VPN 怎麼連", "依據公司規範:先裝用戶端。", Some("doc_1"), "eval"),
            Sample::new("尾牙在哪", "抱歉,沒有這項資訊。", None, "unanswerable"),
            Sample::new("密碼多久換", "依據公司規範:每 90 天。", Some("doc_2"), "eval"),
        ]
    }

    fn echo(q: &[String]) -> std::result::Result<Vec<String>, std::io::Error> {
        Ok(q.iter().map(|q| format!("answer to {q}")).collect())
    }

    /// The report of [`echo`]'s answers to `samples`, unprocessed.
    fn echoed(samples: &[Sample]) -> Report {
        evaluate_answers(samples, None, RawAnswers::generate(samples, echo).unwrap()).unwrap()
    }

    #[test]
    fn answers_from_a_report_are_matched_by_question_not_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let all = samples();
        let report = echoed(&all);
        write_report(&path, &report).unwrap();

        // Another order, and fewer questions than the report holds: each gets its own answer.
        let asked = vec![all[2].clone(), all[0].clone()];
        let got = RawAnswers::from_report(&path, &asked).unwrap();
        assert_eq!(got.raw, ["answer to 密碼多久換", "answer to VPN 怎麼連"]);
        assert_eq!(got.generation_seconds, report.summary.generation_seconds);

        // A question the report never answered is named.
        let mut other = asked.clone();
        other.push(Sample::new("影印機在哪", "依據公司規範:三樓。", Some("doc_3"), "eval"));
        let e = RawAnswers::from_report(&path, &other).unwrap_err().to_string();
        assert!(e.contains("r.json has no answer to `影印機在哪`") && e.contains("--limit"), "{e}");
    }

    #[test]
    fn a_reports_details_are_matched_by_question_and_must_expect_the_same_answers() {
        let all = samples();
        let report = echoed(&all);
        // Where the report was read from, for the messages.
        let path = Path::new("r.json");

        let asked = vec![all[2].clone(), all[1].clone()];
        let got = report.details_for(&asked, path).unwrap();
        assert_eq!(got, [report.details[2].clone(), report.details[1].clone()]);

        // Scores computed against another answer, or about another doc, are not this eval set's.
        let mut changed = asked.clone();
        changed[0].answer = "依據公司規範:每 60 天。".into();
        let e = report.details_for(&changed, path).unwrap_err().to_string();
        assert!(e.contains("r.json scored `密碼多久換` against another expected answer"), "{e}");
        let mut moved = asked.clone();
        moved[0].doc_id = Some("doc_9".into());
        let e = report.details_for(&moved, path).unwrap_err().to_string();
        assert!(e.contains("another doc_id") && e.contains("--answers-from"), "{e}");
        // Raw answers to score again need no such agreement.
        assert_eq!(report.raw_answers_to(&changed, path).unwrap(), ["answer to 密碼多久換", "answer to 尾牙在哪"]);

        let mut other = asked;
        other.push(Sample::new("影印機在哪", "依據公司規範:三樓。", Some("doc_3"), "eval"));
        let e = report.details_for(&other, path).unwrap_err().to_string();
        assert!(e.contains("r.json has no answer to `影印機在哪`"), "{e}");
    }

    #[test]
    fn generated_answers_must_be_one_per_question() {
        let all = samples();
        let e = RawAnswers::generate(&all, |_| Ok::<_, std::io::Error>(vec!["x".into()])).unwrap_err();
        assert!(matches!(e, Error::AnswerCount { expected: 3, got: 1 }), "{e}");
        let e = RawAnswers::generate(&all, |_| Err::<Vec<String>, _>(std::io::Error::other("boom"))).unwrap_err();
        assert!(matches!(e, Error::Generation { start: 1, end: 3, .. }), "{e}");
    }
}
