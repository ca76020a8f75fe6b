//! fix-remaining-issues logic: what is drawn, from where, and the no-eval-leak guarantee.

mod common;

use std::collections::HashSet;

use common::*;
use diagnose::fix::{STYLE_AUGMENT, STYLE_CONTRASTIVE};
use diagnose::{DiagnoseOptions, Error, ErrorAnalysis, FixOptions, analyze, build_fix, print_fix};
use kb_dataset::{Kb, STYLE_UNANSWERABLE, Sample, Templates, normalize};

/// The base training set: every train question of the templates.
fn base_train(kb: &Kb, t: &Templates) -> Vec<Sample> {
    let mut out = Vec::new();
    for d in t.docs() {
        let a = zh_answer(kb.get(&d.doc_id).unwrap());
        for q in &d.train {
            out.push(Sample::new(&q.question, &a, Some(&d.doc_id), &q.style));
        }
    }
    for u in &t.unanswerable().train {
        out.push(Sample::new(&u.question, &u.refusal, None, STYLE_UNANSWERABLE));
    }
    out
}

/// The eval set as gen-eval-set would write it.
fn eval_set(kb: &Kb, t: &Templates) -> Vec<Sample> {
    let mut out = Vec::new();
    for d in t.docs() {
        let a = zh_answer(kb.get(&d.doc_id).unwrap());
        for q in &d.eval {
            out.push(Sample::new(q, &a, Some(&d.doc_id), "eval"));
        }
    }
    for u in &t.unanswerable().eval {
        out.push(Sample::new(&u.question, &u.refusal, None, STYLE_UNANSWERABLE));
    }
    out
}

fn mixed_analysis(kb: &Kb, t: &Templates) -> ErrorAnalysis {
    analyze(&mixed_run(kb, t), kb, t, &DiagnoseOptions::default()).unwrap()
}

fn questions(samples: &[Sample]) -> HashSet<String> {
    samples.iter().map(|s| normalize(&s.question)).collect()
}

#[test]
fn no_eval_question_ever_enters_the_output() {
    let (kb, t) = load();
    let a = mixed_analysis(&kb, &t);
    let train = base_train(&kb, &t);
    // An eval file made from other templates may hold questions that are augment questions
    // here: they must be skipped too, not only the templates' eval pools.
    let mut eval = eval_set(&kb, &t);
    let vpn = t.doc(t.doc_id_of("vpn").unwrap()).unwrap();
    for q in &vpn.augment[..3] {
        eval.push(Sample::new(q, &answer(&kb, &t, "vpn"), Some(&vpn.doc_id), "eval"));
    }
    let eval_qs = questions(&eval);
    for seed in 0..20 {
        let out = build_fix(&a, &kb, &t, &train, &eval, &FixOptions { per_topic: 100, seed }).unwrap();
        assert!(out.samples.len() > train.len());
        let leaked: Vec<&str> =
            out.samples.iter().map(|s| s.question.as_str()).filter(|q| eval_qs.contains(&normalize(q))).collect();
        assert!(leaked.is_empty(), "seed {seed}: eval questions in the output: {leaked:?}");
        let vpn_added = out.additions.iter().find(|x| x.topic == "vpn").unwrap();
        assert_eq!(vpn_added.added, vpn.augment.len() - 3);
    }
}

#[test]
fn an_eval_question_in_the_training_set_is_refused() {
    let (kb, t) = load();
    let a = mixed_analysis(&kb, &t);
    let eval = eval_set(&kb, &t);
    let mut train = base_train(&kb, &t);
    train.push(eval[3].clone());
    let e = build_fix(&a, &kb, &t, &train, &eval, &FixOptions::default()).unwrap_err();
    match &e {
        Error::EvalLeak { question, origin } => {
            assert_eq!(*question, eval[3].question);
            assert!(origin.contains(&format!("line {}", train.len())), "{origin}");
        }
        other => panic!("expected EvalLeak, got {other:?}"),
    }
    assert!(e.to_string().contains("refusing to write"), "{e}");
}

#[test]
fn adds_contrastive_pairs_augments_and_refusals_with_correct_answers() {
    let (kb, t) = load();
    let a = mixed_analysis(&kb, &t);
    let train = base_train(&kb, &t);
    let eval = eval_set(&kb, &t);
    let out = build_fix(&a, &kb, &t, &train, &eval, &FixOptions { per_topic: 2, seed: 7 }).unwrap();
    assert_eq!(&out.samples[..train.len()], &train[..], "existing samples kept first, unchanged");
    let new = &out.samples[train.len()..];
    assert_eq!(new.len(), 8, "2 for each of vpn, mfa, leave and unanswerable");

    for s in new {
        let q = s.question.as_str();
        match &s.doc_id {
            Some(id) => {
                let doc = t.doc(id).unwrap();
                assert!(doc.augment.iter().any(|x| x == q), "{q} is not from {}'s augment pool", doc.topic);
                assert_eq!(s.answer, zh_answer(kb.get(id).unwrap()));
                // vpn and mfa were confused with each other; leave was only weak.
                let want = if doc.topic == "leave" { STYLE_AUGMENT } else { STYLE_CONTRASTIVE };
                assert_eq!(s.style, want, "{q}");
            }
            None => {
                let u = t.unanswerable().augment.iter().find(|u| u.question == q).unwrap();
                assert_eq!(s.answer, u.refusal);
                assert_eq!(s.style, STYLE_UNANSWERABLE);
            }
        }
    }
    let mfa = out.additions.iter().find(|x| x.topic == "mfa").unwrap();
    assert!(mfa.reasons.iter().any(|r| r.contains("given to `vpn` questions 2×")), "{:?}", mfa.reasons);
    assert_eq!(mfa.left_in_pool, 2);

    let mut text = Vec::new();
    print_fix(&out, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(&format!("{} existing training samples + 8 new", train.len())), "{text}");
    assert!(text.contains("vpn: +2 contrastive"), "{text}");
    assert!(text.contains("because 1/2 eval answers wrong (1 refused)"), "{text}");
}

#[test]
fn deterministic_and_never_duplicates() {
    let (kb, t) = load();
    let a = mixed_analysis(&kb, &t);
    let eval = eval_set(&kb, &t);
    let train = base_train(&kb, &t);
    let opts = FixOptions { per_topic: 3, seed: 42 };
    let once = build_fix(&a, &kb, &t, &train, &eval, &opts).unwrap();
    assert_eq!(once.samples, build_fix(&a, &kb, &t, &train, &eval, &opts).unwrap().samples);
    // A second round on the output draws only what is left, until the pools are empty.
    let twice = build_fix(&a, &kb, &t, &once.samples, &eval, &opts).unwrap();
    let thrice = build_fix(&a, &kb, &t, &twice.samples, &eval, &opts).unwrap();
    assert_eq!(questions(&thrice.samples).len(), thrice.samples.len(), "duplicate questions");
    let augment_total: usize = t.docs().iter().map(|d| d.augment.len()).sum::<usize>() + t.unanswerable().augment.len();
    assert_eq!(thrice.samples.len(), train.len() + augment_total);
    assert!(thrice.additions.iter().all(|x| x.added == 0 && x.left_in_pool == 0));
}

#[test]
fn no_errors_adds_nothing() {
    let (kb, t) = load();
    let run = mixed_run(&kb, &t);
    let a = analyze(&run, &kb, &t, &DiagnoseOptions { threshold: 0.0, floor: 0.3 }).unwrap();
    let train = base_train(&kb, &t);
    let out = build_fix(&a, &kb, &t, &train, &eval_set(&kb, &t), &FixOptions::default()).unwrap();
    assert_eq!(out.samples, train);
    assert!(out.additions.is_empty());
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
