//! What post-processing knows besides the model's answer: the [`Index`] over the KB and the
//! training set, its leave-one-out [`Calibration`] and the [`Refusals`] writer, built in one go
//! from the samples the adapter was trained on.

use std::path::Path;

use kb_dataset::{Kb, Sample};

use crate::calibration::Calibration;
use crate::error::{Error, Result};
use crate::refusal::Refusals;
use crate::retrieval::{Class, Index, Ranking, Scope, TrainingQuestion};

/// The retrieval side of [`crate::PostProcessor`].
#[derive(Debug)]
pub struct Retriever {
    index: Index,
    calibration: Calibration,
    refusals: Refusals,
    entries: usize,
    training_path: std::path::PathBuf,
}

impl Retriever {
    /// Indexes `kb` and the questions of `training` (read from `path`, named in errors), and
    /// calibrates on them: retrieval overrules the model only at margins where its
    /// leave-one-out precision reached `precision` (0 < precision ≤ 1;
    /// [`crate::CONFIDENT_PRECISION`] by default). A training sample about a doc the KB does not
    /// have is an error.
    pub fn new(kb: &Kb, training: &[Sample], path: &Path, precision: f64) -> Result<Retriever> {
        if !(precision > 0.0 && precision <= 1.0) {
            return Err(Error::Precision(precision));
        }
        let questions = training
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (question, answer) = (s.question.as_str(), s.answer.as_str());
                let class = match &s.doc_id {
                    None => Class::Unanswerable,
                    Some(id) => Class::Entry(kb.entries().iter().position(|e| &e.doc_id == id).ok_or_else(|| {
                        Error::TrainingSample { path: path.to_path_buf(), line: i + 1, doc_id: id.clone() }
                    })?),
                };
                let refusal = (class == Class::Unanswerable).then(|| answer.to_string());
                Ok(TrainingQuestion { question: question.to_string(), class, refusal })
            })
            .collect::<Result<Vec<_>>>()?;
        let texts: Vec<&str> = kb.entries().iter().map(|e| e.text.as_str()).collect();
        let index = Index::build(&texts, &questions);
        let calibration = Calibration::fit(&index, &questions, precision);
        Ok(Retriever {
            refusals: Refusals::new(&questions, kb.language()),
            index,
            calibration,
            entries: texts.len(),
            training_path: path.to_path_buf(),
        })
    }

    /// The training set this retriever indexed.
    pub fn training_path(&self) -> &Path {
        &self.training_path
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    pub fn rank(&self, question: &str, scope: Scope) -> Ranking {
        self.index.query(question, scope)
    }

    /// The refusal written for a question ranked `ranking`.
    pub fn refusal(&self, ranking: &Ranking) -> String {
        self.refusals.for_ranking(&self.index, self.entries, ranking)
    }
}
