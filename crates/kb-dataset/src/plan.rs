//! What `gen-train-set` asks for ([`TrainRequest`]) and how many samples each part of the set
//! gets ([`Plan`]).

use crate::error::{Error, Result};
use crate::templates::{DocTemplates, Templates};

/// What `gen-train-set` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainRequest {
    /// Number of samples to write.
    pub total: usize,
    /// Share of unanswerable samples, in `[0, 1]`; the count is `round(total * ratio)`.
    pub unanswerable_ratio: f64,
    /// Seed of the `StdRng` that picks and shuffles.
    pub seed: u64,
}

impl Default for TrainRequest {
    fn default() -> Self {
        TrainRequest { total: 300, unanswerable_ratio: 0.25, seed: 42 }
    }
}

/// How many samples each part of the set gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub answerable: usize,
    pub unanswerable: usize,
    /// Per doc, in `Templates::docs()` order.
    pub per_doc: Vec<usize>,
}

/// Splits `total` into unanswerable and answerable counts and spreads the answerable ones over
/// the docs as evenly as possible (the remainder goes to the docs with the most questions, so
/// the largest feasible total is reachable). Errors say what can be met instead.
pub(crate) fn plan(templates: &Templates, req: &TrainRequest) -> Result<Plan> {
    let ratio = req.unanswerable_ratio;
    if !ratio.is_finite() || !(0.0..=1.0).contains(&ratio) {
        return Err(Error::Sampling(format!("--unanswerable-ratio {ratio} must be between 0 and 1 (e.g. 0.25)")));
    }
    if req.total == 0 {
        return Err(Error::Sampling("--total must be at least 1".into()));
    }
    let docs = templates.docs();
    let unanswerable = split_unanswerable(req.total, ratio);
    let answerable = req.total - unanswerable;
    let per_doc = spread(answerable, docs);

    let max_answerable = max_balanced(docs);
    let max_unanswerable = templates.unanswerable().train.len();
    let fits = per_doc.iter().zip(docs).all(|(&n, d)| n <= d.train.len());
    if fits && unanswerable <= max_unanswerable {
        return Ok(Plan { answerable, unanswerable, per_doc });
    }
    let smallest = docs
        .iter()
        .min_by_key(|d| d.train.len())
        .map_or(String::new(), |d| format!(", smallest: {} with {}", d.topic, d.train.len()));
    let largest_total = largest_total(templates, ratio, req.total);
    Err(Error::Sampling(format!(
        "--total {} at --unanswerable-ratio {ratio} needs {answerable} answerable and {unanswerable} \
         unanswerable samples, but {} allows at most {max_answerable} answerable (every training question of its {} \
         docs{smallest} training questions) and {max_unanswerable} unanswerable; the largest --total that can be met at this \
         ratio is {largest_total}, or add questions to the templates",
        req.total,
        templates.path().display(),
        docs.len(),
    )))
}

/// The largest total up to `upto` that the templates can give at `ratio` without repeating a
/// question (0 when none).
pub fn largest_total(templates: &Templates, ratio: f64, upto: usize) -> usize {
    let (max_answerable, max_unanswerable) = (max_balanced(templates.docs()), templates.unanswerable().train.len());
    (0..=upto.min(max_answerable + max_unanswerable))
        .rev()
        .find(|&t| {
            let u = split_unanswerable(t, ratio);
            t - u <= max_answerable && u <= max_unanswerable
        })
        .unwrap_or(0)
}

fn split_unanswerable(total: usize, ratio: f64) -> usize {
    ((total as f64 * ratio).round() as usize).min(total)
}

/// Per-doc counts as even as the pools allow: every doc gets the same level, or its whole pool
/// when that is smaller, and the remainder goes one each to the docs with the largest pools
/// (ties: earlier doc first). With no pool short, counts differ by at most one.
pub(crate) fn spread(answerable: usize, docs: &[DocTemplates]) -> Vec<usize> {
    let pools: Vec<usize> = docs.iter().map(|d| d.train.len()).collect();
    let filled = |level: usize| pools.iter().map(|&p| p.min(level)).sum::<usize>();
    // The highest level whose counts fit in `answerable` (past the largest pool nothing grows).
    let top = pools.iter().copied().max().unwrap_or(0);
    let level = (0..=top).rev().find(|&l| filled(l) <= answerable).unwrap_or(0);
    let mut counts: Vec<usize> = pools.iter().map(|&p| p.min(level)).collect();
    let mut left = answerable.saturating_sub(counts.iter().sum());
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pools[i]));
    for &i in order.iter().filter(|&&i| pools[i] > level) {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    // More than every pool holds: spread the excess evenly, for the caller to refuse.
    for (k, c) in counts.iter_mut().enumerate() {
        *c += left / docs.len().max(1) + usize::from(k < left % docs.len().max(1));
    }
    counts
}

/// The most answerable samples [`spread`] can place without repeating a question: every pool.
pub(crate) fn max_balanced(docs: &[DocTemplates]) -> usize {
    docs.iter().map(|d| d.train.len()).sum()
}
