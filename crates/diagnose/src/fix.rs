//! `fix-remaining-issues`: targeted extra training samples for the topics an analysis found weak
//! or confused, drawn only from the templates' reserved augment pools, merged into the training
//! set. Eval questions are never written (hard check over the whole output).

use std::collections::{BTreeMap, HashSet};

use kb_dataset::{Kb, STYLE_UNANSWERABLE, Sample, Templates, normalize};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::classify::{ACTUAL_NONE, ACTUAL_REFUSAL, ErrorKind, TOPIC_UNANSWERABLE};
use crate::error::{Error, Result};
use crate::findings::ErrorAnalysis;

/// Style of extra samples for a topic that was only weak.
pub const STYLE_AUGMENT: &str = "augment";
/// Style of extra samples for a topic in a confusion pair.
pub const STYLE_CONTRASTIVE: &str = "contrastive";

/// Knobs of [`build_fix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixOptions {
    /// At most this many new samples per topic (and for refusals).
    pub per_topic: usize,
    /// Seed of the `StdRng` that picks from the pools.
    pub seed: u64,
}

impl Default for FixOptions {
    fn default() -> Self {
        FixOptions { per_topic: 6, seed: 42 }
    }
}

/// What was added for one topic and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addition {
    pub topic: String,
    pub style: String,
    pub added: usize,
    /// Augment questions of this topic not yet in the training set after this run.
    pub left_in_pool: usize,
    pub reasons: Vec<String>,
}

/// The merged training set and the per-topic account.
#[derive(Debug, Clone)]
pub struct FixOutcome {
    /// The existing training set followed by the new samples.
    pub samples: Vec<Sample>,
    pub existing: usize,
    pub additions: Vec<Addition>,
    /// Topics of the analysis the templates do not know (stale analysis); nothing added for them.
    pub unknown_topics: Vec<String>,
}

/// Builds the merged training set. `eval` is the eval set file; its questions and the
/// templates' eval pools may never appear in the output ([`Error::EvalLeak`] otherwise).
pub fn build_fix(
    analysis: &ErrorAnalysis,
    kb: &Kb,
    templates: &Templates,
    train: &[Sample],
    eval: &[Sample],
    opts: &FixOptions,
) -> Result<FixOutcome> {
    let forbidden = eval_questions(templates, eval);
    let mut seen: HashSet<String> = train.iter().map(|s| normalize(&s.question)).collect();
    let reasons = reasons_by_topic(analysis);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut new = Vec::new();
    let mut additions = Vec::new();

    for doc in templates.docs() {
        let Some((confused, why)) = reasons.get(doc.topic.as_str()) else {
            continue;
        };
        let entry = kb.get(&doc.doc_id).ok_or_else(|| {
            Error::Options(format!(
                "doc_id {} of topic `{}` is not in the KB {}",
                doc.doc_id,
                doc.topic,
                kb.path().display()
            ))
        })?;
        let style = if *confused { STYLE_CONTRASTIVE } else { STYLE_AUGMENT };
        let answer = kb.answer_for(entry);
        let picked = pick(&doc.augment, &seen, &forbidden, opts.per_topic, &mut rng);
        for q in &picked {
            seen.insert(normalize(q));
            new.push(Sample::new(q, &answer, Some(&doc.doc_id), style));
        }
        additions.push(Addition {
            topic: doc.topic.clone(),
            style: style.to_string(),
            added: picked.len(),
            left_in_pool: unused(doc.augment.iter().map(String::as_str), &seen),
            reasons: why.clone(),
        });
    }

    if let Some((_, why)) = reasons.get(TOPIC_UNANSWERABLE) {
        let pool = &templates.unanswerable().augment;
        let questions: Vec<String> = pool.iter().map(|u| u.question.clone()).collect();
        let picked = pick(&questions, &seen, &forbidden, opts.per_topic, &mut rng);
        for q in &picked {
            seen.insert(normalize(q));
            // `pick` returns questions of `pool`, so the refusal is always found.
            if let Some(u) = pool.iter().find(|u| &u.question == q) {
                new.push(Sample::new(q, &u.refusal, None, STYLE_UNANSWERABLE));
            }
        }
        additions.push(Addition {
            topic: TOPIC_UNANSWERABLE.to_string(),
            style: STYLE_UNANSWERABLE.to_string(),
            added: picked.len(),
            left_in_pool: unused(questions.iter().map(String::as_str), &seen),
            reasons: why.clone(),
        });
    }

    let known: HashSet<&str> = templates.docs().iter().map(|d| d.topic.as_str()).collect();
    let unknown_topics =
        reasons.keys().filter(|t| **t != TOPIC_UNANSWERABLE && !known.contains(*t)).map(|t| t.to_string()).collect();

    let existing = train.len();
    let mut samples = train.to_vec();
    samples.extend(new);
    check_no_eval(&samples, existing, &forbidden)?;
    Ok(FixOutcome { samples, existing, additions, unknown_topics })
}

/// Normalized questions of the eval file and of every eval pool in the templates.
fn eval_questions(templates: &Templates, eval: &[Sample]) -> HashSet<String> {
    let mut set: HashSet<String> = eval.iter().map(|s| normalize(&s.question)).collect();
    set.extend(templates.docs().iter().flat_map(|d| d.eval.iter()).map(|q| normalize(q)));
    set.extend(templates.unanswerable().eval.iter().map(|u| normalize(&u.question)));
    set
}

/// The hard check: no sample of the output may ask an eval question.
fn check_no_eval(samples: &[Sample], existing: usize, forbidden: &HashSet<String>) -> Result<()> {
    for (i, s) in samples.iter().enumerate() {
        let q = s.question.as_str();
        if forbidden.contains(&normalize(q)) {
            let origin = if i < existing {
                format!("already in the training set, line {}", i + 1)
            } else {
                "drawn from an augment pool".to_string()
            };
            return Err(Error::EvalLeak { question: q.to_string(), origin });
        }
    }
    Ok(())
}

/// Up to `n` questions of `pool` that are neither trained on nor eval questions, in seeded
/// random order.
fn pick(
    pool: &[String],
    seen: &HashSet<String>,
    forbidden: &HashSet<String>,
    n: usize,
    rng: &mut StdRng,
) -> Vec<String> {
    let mut fresh: Vec<&String> = pool
        .iter()
        .filter(|q| {
            let k = normalize(q);
            !seen.contains(&k) && !forbidden.contains(&k)
        })
        .collect();
    fresh.shuffle(rng);
    fresh.into_iter().take(n).cloned().collect()
}

fn unused<'a>(pool: impl Iterator<Item = &'a str>, seen: &HashSet<String>) -> usize {
    pool.filter(|q| !seen.contains(&normalize(q))).count()
}

/// Per topic that needs samples: whether it is in a confusion pair, and the reasons in words.
fn reasons_by_topic(a: &ErrorAnalysis) -> BTreeMap<&str, (bool, Vec<String>)> {
    let mut out: BTreeMap<&str, (bool, Vec<String>)> = BTreeMap::new();
    for (topic, t) in &a.topic_errors {
        if t.errors > 0 {
            let kinds = kinds_in(a, topic);
            out.entry(topic).or_default().1.push(format!("{}/{} eval answers wrong ({kinds})", t.errors, t.evaluated));
        }
    }
    let real = |t: &str| t != ACTUAL_REFUSAL && t != ACTUAL_NONE && t != TOPIC_UNANSWERABLE;
    for c in &a.confusion {
        if real(&c.expected) && real(&c.actual) && c.expected != c.actual {
            let e = out.entry(&c.expected).or_default();
            e.0 = true;
            e.1.push(format!("answered as `{}` {}×: contrastive pair", c.actual, c.count));
            let e = out.entry(&c.actual).or_default();
            e.0 = true;
            e.1.push(format!("its answer was given to `{}` questions {}×: contrastive pair", c.expected, c.count));
        }
    }
    out
}

fn kinds_in(a: &ErrorAnalysis, topic: &str) -> String {
    let mut counts: BTreeMap<ErrorKind, usize> = BTreeMap::new();
    for e in a.detailed_errors.iter().filter(|e| e.expected_topic == topic) {
        *counts.entry(e.kind).or_default() += 1;
    }
    let name = |k: ErrorKind| match k {
        ErrorKind::AnsweredUnanswerable => "answered instead of refusing",
        ErrorKind::RefusedAnswerable => "refused",
        ErrorKind::WrongTopic => "wrong topic",
        ErrorKind::RightTopicInexact => "right topic, inexact",
        ErrorKind::OffTopic => "matches no KB entry",
        ErrorKind::RefusalWording => "refusal worded differently",
    };
    counts.into_iter().map(|(k, n)| format!("{n} {}", name(k))).collect::<Vec<_>>().join(", ")
}

/// Prints what was added per topic and why.
pub fn print_fix(outcome: &FixOutcome, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let added: usize = outcome.additions.iter().map(|a| a.added).sum();
    writeln!(w, "{} existing training samples + {added} new = {}", outcome.existing, outcome.samples.len())?;
    if outcome.additions.is_empty() {
        writeln!(w, "nothing to add: the analysis has no errors")?;
    }
    for a in &outcome.additions {
        writeln!(w, "  {}: +{} {} ({} left in the augment pool)", a.topic, a.added, a.style, a.left_in_pool)?;
        for r in &a.reasons {
            writeln!(w, "      because {r}")?;
        }
        if a.added == 0 {
            writeln!(w, "      pool exhausted: add new phrasings to the augment pool in the templates")?;
        }
    }
    for t in &outcome.unknown_topics {
        writeln!(w, "  {t}: skipped, not a topic of the templates (stale analysis?)")?;
    }
    Ok(())
}
