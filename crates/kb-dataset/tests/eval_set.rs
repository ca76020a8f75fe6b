//! The eval set, its overlap with the training set, and the shipped files being exactly what the
//! generators produce.

mod common;

use std::collections::HashSet;

use common::{data_dir, shipped};
use kb_dataset::{
    OverlapReport, STYLE_EVAL, STYLE_UNANSWERABLE, TrainRequest, build_eval_set, build_train_set, read_jsonl, to_jsonl,
};

#[test]
fn eval_set_is_grouped_by_doc_with_unanswerable_last() {
    let (kb, t) = shipped();
    let eval = build_eval_set(&kb, &t).unwrap();
    let n_unanswerable = t.unanswerable().eval.len();
    assert_eq!(eval.len(), 15 * 5 + n_unanswerable);
    for (i, entry) in kb.entries().iter().enumerate() {
        for s in &eval[i * 5..i * 5 + 5] {
            assert_eq!(s.doc_id.as_deref(), Some(entry.doc_id.as_str()));
            assert_eq!(s.style, STYLE_EVAL);
            assert_eq!(s.answer, zh_answer(entry));
        }
    }
    for s in &eval[75..] {
        assert!(s.doc_id.is_none());
        assert_eq!(s.style, STYLE_UNANSWERABLE);
        assert!(s.answer.starts_with("抱歉"));
    }
}

#[test]
fn shipped_eval_has_no_exact_overlap_and_few_near_duplicates() {
    let (kb, t) = shipped();
    let eval = build_eval_set(&kb, &t).unwrap();
    let train = build_train_set(&kb, &t, &TrainRequest::default()).unwrap().samples;
    let report = OverlapReport::analyze(&eval, &train);
    assert!(report.exact.is_empty(), "{report}");
    assert!(!report.too_many_near(), "{report}");
    // Against the whole training pool, not just the 300 drawn, there is no exact overlap either.
    let pool: HashSet<&str> = t.docs().iter().flat_map(|d| d.train.iter().map(|q| q.question.as_str())).collect();
    assert!(eval.iter().all(|s| !pool.contains(s.question.as_str())));
}

#[test]
fn shipped_files_are_what_the_generators_write() {
    let (kb, t) = shipped();
    let train = build_train_set(&kb, &t, &TrainRequest::default()).unwrap().samples;
    let shipped_train = std::fs::read_to_string(data_dir().join("train_qwen_v1.jsonl")).unwrap();
    assert_eq!(to_jsonl(&train), shipped_train, "regenerate with `cargo run -p gen-train-set`");
    let eval = build_eval_set(&kb, &t).unwrap();
    let shipped_eval = std::fs::read_to_string(data_dir().join("eval_qwen_v1.jsonl")).unwrap();
    assert_eq!(to_jsonl(&eval), shipped_eval, "regenerate with `cargo run -p gen-eval-set`");
    // And they read back as valid data sets.
    assert_eq!(read_jsonl(data_dir().join("train_qwen_v1.jsonl")).unwrap(), train);
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
