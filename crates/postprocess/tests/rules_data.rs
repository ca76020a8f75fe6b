//! Checks the shipped `data/rules.toml` against `data/kb.jsonl` and the question pools of
//! `data/questions.toml`: every answerable training/augment question is claimed by its own
//! topic's rule (first in file order), and no unanswerable training/augment question triggers a
//! rule (so a correct refusal to a near-miss question is kept). The eval pools, which the rules
//! were not written from, must stay within the limits below.

use std::path::PathBuf;

use kb_dataset::{Kb, Templates};
use postprocess::Rules;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

struct Data {
    rules: Rules,
    templates: Templates,
}

fn load() -> Data {
    let kb = Kb::load(data("kb.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let templates = Templates::load(data("questions.toml"), &kb).unwrap_or_else(|e| panic!("{e}"));
    let rules = Rules::load(data("rules.toml"), &kb).unwrap_or_else(|e| panic!("{e}"));
    Data { rules, templates }
}

/// The topic of the first rule that applies, as an override would pick it.
fn first_topic<'r>(rules: &'r Rules, question: &str) -> Option<&'r str> {
    rules.rules().iter().find(|r| r.applies_to(question)).map(|r| r.topic.as_str())
}

#[test]
fn every_kb_doc_has_one_rule_named_like_its_templates() {
    let d = load();
    assert_eq!(d.rules.rules().len(), d.templates.docs().len());
    for doc in d.templates.docs() {
        let rule = d.rules.for_doc(&doc.doc_id).unwrap_or_else(|| panic!("no rule for {} ({})", doc.doc_id, doc.topic));
        assert_eq!(rule.topic, doc.topic, "rule for {} has another topic name", doc.doc_id);
    }
}

#[test]
fn training_and_augment_questions_are_claimed_by_their_own_rule() {
    let d = load();
    let mut wrong = Vec::new();
    for doc in d.templates.docs() {
        let questions = doc.train.iter().map(|q| q.question.as_str()).chain(doc.augment.iter().map(String::as_str));
        for q in questions {
            let got = first_topic(&d.rules, q);
            if got != Some(doc.topic.as_str()) {
                wrong.push(format!("{q:?}: expected {}, got {got:?}", doc.topic));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn unanswerable_training_and_augment_questions_trigger_no_rule() {
    let d = load();
    let pools = d.templates.unanswerable();
    let mut hits = Vec::new();
    for u in pools.train.iter().chain(&pools.augment) {
        if let Some(topic) = first_topic(&d.rules, &u.question) {
            hits.push(format!("{:?} triggers {topic}", u.question));
        }
    }
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

#[test]
fn held_out_eval_questions_are_mostly_routed_right() {
    // The rules were written without tuning to these pools; a drop below these limits means a
    // rules edit made them too narrow or too broad.
    let d = load();
    let (mut right, mut total, mut misrouted) = (0, 0, Vec::new());
    for doc in d.templates.docs() {
        for q in &doc.eval {
            total += 1;
            match first_topic(&d.rules, q) {
                Some(t) if t == doc.topic => right += 1,
                Some(t) => misrouted.push(format!("{q:?}: expected {}, got {t}", doc.topic)),
                None => {}
            }
        }
    }
    let false_hits: Vec<String> = d
        .templates
        .unanswerable()
        .eval
        .iter()
        .filter_map(|u| Some(format!("{:?} -> {}", u.question, first_topic(&d.rules, &u.question)?)))
        .collect();
    eprintln!(
        "eval: {right}/{total} answerable routed to their rule; misrouted: {misrouted:?}; \
         unanswerable triggering a rule: {false_hits:?}"
    );
    assert!(right * 10 >= total * 9, "only {right}/{total} eval questions routed right");
    assert!(misrouted.is_empty(), "{}", misrouted.join("\n"));
    assert!(false_hits.len() <= 1, "{}", false_hits.join("\n"));
}

#[test]
fn kb_answers_are_far_enough_apart_for_an_unambiguous_kb_match() {
    // If two KB answers were within the default threshold of each other, a KB_MATCH could snap
    // an answer to the wrong doc.
    let kb = Kb::load(data("kb.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let answers: Vec<String> = kb.entries().iter().map(|e| kb.answer_for(e)).collect();
    for (i, a) in answers.iter().enumerate() {
        for (j, b) in answers.iter().enumerate().filter(|&(j, _)| j != i) {
            let r = seqmatch::ratio(a, b);
            assert!(r < postprocess::DEFAULT_KB_MATCH_THRESHOLD, "KB entries {i} and {j} are {r:.2} alike");
        }
    }
}
