//! Training-set sampling: counts, balance, correctness of answers, determinism, and requests
//! that cannot be met.

mod common;

use std::collections::{HashMap, HashSet};

use common::{shipped, tiny};
use kb_dataset::{STYLE_UNANSWERABLE, TrainRequest, build_train_set, is_refusal, to_jsonl};

#[test]
fn default_request_on_shipped_data() {
    let (kb, t) = shipped();
    let set = build_train_set(&kb, &t, &TrainRequest::default()).unwrap();
    let s = &set.samples;
    assert_eq!(s.len(), 300);
    let unanswerable: Vec<_> = s.iter().filter(|x| x.doc_id.is_none()).collect();
    assert_eq!(unanswerable.len(), 75);

    // Every answer is exactly the KB text behind the prefix; every refusal the template's.
    let refusals: HashMap<&str, &str> =
        t.unanswerable().train.iter().map(|u| (u.question.as_str(), u.refusal.as_str())).collect();
    for x in s {
        let (q, a) = (x.question.as_str(), x.answer.as_str());
        match &x.doc_id {
            Some(id) => {
                assert_eq!(a, zh_answer(kb.get(id).unwrap()));
                let doc = t.doc(id).unwrap();
                assert!(doc.train.iter().any(|tq| tq.question == q && tq.style == x.style), "{q}");
            }
            None => {
                assert_eq!(x.style, STYLE_UNANSWERABLE);
                assert_eq!(refusals.get(q), Some(&a));
                assert!(is_refusal(a));
            }
        }
    }
    // No question twice.
    let qs: HashSet<&str> = s.iter().map(|x| x.question.as_str()).collect();
    assert_eq!(qs.len(), s.len());

    // Balanced across docs (15 each) and styles (within one of each other).
    let mut per_doc: HashMap<&str, usize> = HashMap::new();
    let mut per_style: HashMap<&str, usize> = HashMap::new();
    for x in s.iter().filter(|x| x.doc_id.is_some()) {
        *per_doc.entry(x.doc_id.as_deref().unwrap()).or_default() += 1;
        *per_style.entry(x.style.as_str()).or_default() += 1;
    }
    assert_eq!(per_doc.len(), 15);
    assert!(per_doc.values().all(|&n| n == 15), "{per_doc:?}");
    assert_eq!(per_style.len(), 4);
    let (lo, hi) = (per_style.values().min().unwrap(), per_style.values().max().unwrap());
    assert!(hi - lo <= 2, "{per_style:?}");

    // The report agrees with an independent count.
    let d = &set.distribution;
    assert_eq!((d.total.actual, d.unanswerable.actual, d.answerable.actual), (300, 75, 225));
    for row in &d.per_doc {
        assert_eq!(row.count.target, 15);
        assert_eq!(row.count.actual, per_doc[row.doc_id.as_str()]);
    }
    for row in d.per_style.iter().filter(|r| r.style != STYLE_UNANSWERABLE) {
        assert_eq!(row.actual, per_style[row.style.as_str()]);
        assert!((row.target - 225.0 / 4.0).abs() < 1e-9);
    }
    assert!((d.actual_ratio() - 0.25).abs() < 1e-12);
    let text = d.to_string();
    assert!(text.contains("vpn") && text.contains("unanswerable ratio"), "{text}");
}

#[test]
fn samples_are_shuffled_not_grouped() {
    let (kb, t) = shipped();
    let s = build_train_set(&kb, &t, &TrainRequest::default()).unwrap().samples;
    let first_15: HashSet<Option<&str>> = s[..15].iter().map(|x| x.doc_id.as_deref()).collect();
    assert!(first_15.len() > 3, "the first samples should mix docs: {first_15:?}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_order() {
    let (kb, t) = shipped();
    let req = TrainRequest::default();
    let a = to_jsonl(&build_train_set(&kb, &t, &req).unwrap().samples);
    let b = to_jsonl(&build_train_set(&kb, &t, &req).unwrap().samples);
    assert_eq!(a, b);
    let c = to_jsonl(&build_train_set(&kb, &t, &TrainRequest { seed: 7, ..req }).unwrap().samples);
    assert_ne!(a, c);
}

#[test]
fn remainder_goes_to_docs_with_more_questions_and_styles_alternate() {
    let dir = tempfile::tempdir().unwrap();
    let (kb, t) = tiny(dir.path(), 3, 4);
    // 9 answerable over 2 docs: 5 + 4; each doc alternates its two styles.
    let req = TrainRequest { total: 11, unanswerable_ratio: 0.2, seed: 1 };
    let set = build_train_set(&kb, &t, &req).unwrap();
    assert_eq!(set.samples.len(), 11);
    assert_eq!(set.distribution.unanswerable.actual, 2);
    let counts: Vec<usize> = set.distribution.per_doc.iter().map(|d| d.count.actual).collect();
    assert_eq!(counts, vec![5, 4]);
    for d in &set.distribution.per_doc {
        let styles: Vec<&str> = set
            .samples
            .iter()
            .filter(|s| s.doc_id.as_deref() == Some(d.doc_id.as_str()))
            .map(|s| s.style.as_str())
            .collect();
        let short = styles.iter().filter(|s| **s == "short").count();
        assert!(short.abs_diff(styles.len() - short) <= 1, "{styles:?}");
    }
}

#[test]
fn ratio_zero_and_one() {
    let dir = tempfile::tempdir().unwrap();
    let (kb, t) = tiny(dir.path(), 3, 4);
    let none = build_train_set(&kb, &t, &TrainRequest { total: 12, unanswerable_ratio: 0.0, seed: 0 }).unwrap();
    assert!(none.samples.iter().all(|s| s.doc_id.is_some()));
    let all = build_train_set(&kb, &t, &TrainRequest { total: 4, unanswerable_ratio: 1.0, seed: 0 }).unwrap();
    assert!(all.samples.iter().all(|s| s.doc_id.is_none()));
}

fn err(total: usize, ratio: f64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (kb, t) = tiny(dir.path(), 3, 4); // at most 12 answerable, 4 unanswerable
    build_train_set(&kb, &t, &TrainRequest { total, unanswerable_ratio: ratio, seed: 0 }).unwrap_err().to_string()
}

#[test]
fn total_too_large_says_what_can_be_met() {
    let e = err(100, 0.25);
    assert!(e.contains("--total 100"), "{e}");
    assert!(e.contains("needs 75 answerable and 25 unanswerable"), "{e}");
    assert!(e.contains("at most 12 answerable") && e.contains("and 4 unanswerable"), "{e}");
    // At 25%: t=16 needs 12 + 4; t=17 needs 13 answerable.
    assert!(e.contains("largest --total that can be met at this ratio is 16"), "{e}");
    assert!(e.contains("questions.toml"), "names the templates file: {e}");
}

#[test]
fn ratio_too_high_for_the_unanswerable_pool() {
    let e = err(10, 0.8);
    assert!(e.contains("needs 2 answerable and 8 unanswerable"), "{e}");
    assert!(e.contains("largest --total that can be met at this ratio is 5"), "{e}");
}

#[test]
fn odd_remainder_uses_the_largest_pools() {
    let dir = tempfile::tempdir().unwrap();
    let (kb, t) = tiny(dir.path(), 3, 4);
    // 13 answerable cannot be placed: 6 + 6 questions, 7 + 6 needed.
    let e = build_train_set(&kb, &t, &TrainRequest { total: 13, unanswerable_ratio: 0.0, seed: 0 })
        .unwrap_err()
        .to_string();
    assert!(e.contains("largest --total that can be met at this ratio is 12"), "{e}");
}

#[test]
fn invalid_ratio_and_total_are_rejected() {
    for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let e = err(10, bad);
        assert!(e.contains("--unanswerable-ratio") && e.contains("between 0 and 1"), "{e}");
    }
    assert!(err(0, 0.25).contains("--total must be at least 1"));
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
