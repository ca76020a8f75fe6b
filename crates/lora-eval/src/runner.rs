//! Running the eval set: batches of questions through a generator, then post-processing and
//! scoring of every answer.

use std::time::Instant;

use kb_dataset::Sample;
use postprocess::{PostProcessor, Source};

use crate::detail::Detail;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::summary::summarize;

/// How to run an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Questions per generator call (the model's batch size).
    pub batch_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { batch_size: 16 }
    }
}

/// Evaluates `samples`: asks `generate` for the answers to the questions, `batch_size` at a time
/// and in order, post-processes each answer with `post` (`None`: `--no-postprocess`, the final
/// answer is the raw one and the source `MODEL_GENERATED`), scores raw and final answers against
/// the expected ones with difflib's ratio (expected first, as the reference called it) and
/// summarizes.
///
/// `generate` must return exactly one answer per question, in order. Progress reporting belongs
/// in the closure, which sees every batch.
pub fn evaluate<G, E>(
    samples: &[Sample],
    post: Option<&PostProcessor>,
    options: EvalOptions,
    mut generate: G,
) -> Result<Report>
where
    G: FnMut(&[String]) -> std::result::Result<Vec<String>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if samples.is_empty() {
        return Err(Error::NoSamples);
    }
    if options.batch_size == 0 {
        return Err(Error::BatchSize);
    }
    let questions: Vec<String> = samples.iter().map(|s| s.question.clone()).collect();

    let started = Instant::now();
    let mut answers = Vec::with_capacity(questions.len());
    for (n, batch) in questions.chunks(options.batch_size).enumerate() {
        let start = n * options.batch_size;
        let got = generate(batch).map_err(|e| Error::Generation {
            start: start + 1,
            end: start + batch.len(),
            source: e.into(),
        })?;
        if got.len() != batch.len() {
            return Err(Error::AnswerCount { expected: batch.len(), got: got.len() });
        }
        answers.extend(got);
    }
    let generation_seconds = started.elapsed().as_secs_f64();

    let details = samples
        .iter()
        .zip(answers)
        .map(|(s, raw)| score(s.question.clone(), s.answer.clone(), raw, s.doc_id.clone(), post))
        .collect::<Vec<_>>();
    let mut summary = summarize(&details);
    summary.generation_seconds = generation_seconds;
    Ok(Report { summary, postprocess: post.map(PostProcessor::settings), details })
}

/// Post-processes and scores one answer.
fn score(
    question: String,
    expected: String,
    raw: String,
    doc_id: Option<String>,
    post: Option<&PostProcessor>,
) -> Detail {
    let (model, source, source_detail, raw_kind) = match post {
        Some(pp) => {
            let d = pp.apply(&question, &raw);
            (d.answer, d.source, d.source_detail, Some(d.raw_kind))
        }
        None => (
            raw.clone(),
            Source::ModelGenerated,
            "post-processing disabled (--no-postprocess): the model's answer as generated".into(),
            None,
        ),
    };
    let mut detail = Detail {
        similarity: 0.0,
        similarity_raw: 0.0,
        question,
        expected,
        raw,
        model,
        source,
        source_detail,
        doc_id,
        raw_kind,
    };
    detail.score();
    detail
}
