//! Drawing the training set from the templates: balanced across docs and styles, a given share
//! of unanswerable questions, shuffled with a seed.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::distribution::Distribution;
use crate::error::Result;
use crate::kb::Kb;
use crate::plan::{TrainRequest, plan};
use crate::sample::{STYLE_UNANSWERABLE, Sample};
use crate::templates::{DocTemplates, Templates};

/// The sampled set and how it is spread.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub samples: Vec<Sample>,
    pub distribution: Distribution,
}

/// Picks `count` training questions of one doc, cycling through its styles so they stay
/// balanced; the starting style rotates with `rotation` so no style is always the short one.
fn pick_doc<'a>(doc: &'a DocTemplates, count: usize, rotation: usize, rng: &mut StdRng) -> Vec<(&'a str, &'a str)> {
    let mut styles: Vec<&str> = doc.train.iter().map(|q| q.style.as_str()).collect();
    styles.dedup(); // train is grouped by style
    let groups: Vec<Vec<&str>> = styles
        .iter()
        .map(|s| {
            let mut qs: Vec<&str> = doc.train.iter().filter(|q| q.style == *s).map(|q| q.question.as_str()).collect();
            qs.shuffle(rng);
            qs
        })
        .collect();
    let k = styles.len();
    let mut picked = Vec::with_capacity(count);
    if count == 0 {
        return picked;
    }
    let mut next = vec![0usize; k];
    'fill: loop {
        let mut any = false;
        for j in 0..k {
            let s = (j + rotation) % k;
            if let Some(q) = groups[s].get(next[s]) {
                picked.push((styles[s], *q));
                next[s] += 1;
                any = true;
                if picked.len() == count {
                    break 'fill;
                }
            }
        }
        if !any {
            break;
        }
    }
    picked
}

/// Builds the training set. Same templates, KB and request give the same samples in the same
/// order (rand 0.9 `StdRng`, consumed in a fixed order).
pub fn build_train_set(kb: &Kb, templates: &Templates, req: &TrainRequest) -> Result<TrainSet> {
    let plan = plan(templates, req)?;
    let mut rng = StdRng::seed_from_u64(req.seed);
    let mut samples = Vec::with_capacity(req.total);
    for (i, (doc, &count)) in templates.docs().iter().zip(&plan.per_doc).enumerate() {
        let entry = templates.kb_entry(kb, &doc.doc_id)?;
        let answer = kb.answer_for(entry);
        for (style, question) in pick_doc(doc, count, i, &mut rng) {
            samples.push(Sample::new(question, &answer, Some(&doc.doc_id), style));
        }
    }
    let mut pool: Vec<_> = templates.unanswerable().train.iter().collect();
    pool.shuffle(&mut rng);
    for u in pool.into_iter().take(plan.unanswerable) {
        samples.push(Sample::new(&u.question, &u.refusal, None, STYLE_UNANSWERABLE));
    }
    samples.shuffle(&mut rng);
    let distribution = Distribution::measure(templates, &samples, req, &plan);
    Ok(TrainSet { samples, distribution })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{max_balanced, spread};
    use crate::templates::StyledQuestion;

    fn doc(n: usize, styles: &[&str]) -> DocTemplates {
        DocTemplates {
            topic: format!("t{n}"),
            doc_id: format!("doc_{n}"),
            train: styles
                .iter()
                .flat_map(|s| (0..n).map(move |k| StyledQuestion { style: s.to_string(), question: format!("{s}{k}") }))
                .collect(),
            eval: vec![],
            augment: vec![],
        }
    }

    #[test]
    fn spread_gives_the_remainder_to_the_largest_pools() {
        let docs = [doc(2, &["a"]), doc(5, &["a"]), doc(3, &["a"])];
        assert_eq!(spread(7, &docs), vec![2, 3, 2]);
        assert_eq!(spread(8, &docs), vec![2, 3, 3]);
        assert_eq!(spread(0, &docs), vec![0, 0, 0]);
        // A short pool gives what it has; the others share the rest as evenly as they can.
        assert_eq!(spread(9, &docs), vec![2, 4, 3]);
        assert_eq!(spread(10, &docs), vec![2, 5, 3]);
        // Equal pools, none short: counts differ by at most one.
        let even = [doc(4, &["a"]), doc(4, &["a"]), doc(4, &["a"])];
        assert_eq!(spread(10, &even), vec![4, 3, 3]);
    }

    #[test]
    fn max_balanced_is_reachable_and_tight() {
        let docs = [doc(2, &["a"]), doc(5, &["a"]), doc(3, &["a"])];
        assert_eq!(max_balanced(&docs), 10);
        let fits = |a| spread(a, &docs).iter().zip(&docs).all(|(&n, d)| n <= d.train.len());
        assert!((0..=10).all(fits) && !fits(11));
        assert_eq!(spread(11, &docs).iter().sum::<usize>(), 11, "the excess is spread, then refused");
    }

    #[test]
    fn pick_cycles_styles_starting_at_the_rotation() {
        let d = doc(3, &["a", "b", "c"]);
        let mut rng = StdRng::seed_from_u64(0);
        let styles: Vec<&str> = pick_doc(&d, 5, 1, &mut rng).iter().map(|(s, _)| *s).collect();
        assert_eq!(styles, vec!["b", "c", "a", "b", "c"]);
        // Exhausted styles are skipped; nothing is picked twice.
        let mut picked = pick_doc(&d, 9, 0, &mut rng);
        picked.sort();
        picked.dedup();
        assert_eq!(picked.len(), 9);
        assert!(pick_doc(&d, 0, 0, &mut rng).is_empty());
    }
}
