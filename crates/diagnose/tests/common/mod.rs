//! The fixture KB and templates (tests/fixtures) and helpers to build evaluated questions.
#![allow(dead_code)]

use std::path::PathBuf;

use kb_dataset::{Kb, Sample, Templates};
use lora_eval::{Detail, RawAnswers};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn load() -> (Kb, Templates) {
    let kb = Kb::load(fixtures().join("kb.jsonl")).unwrap();
    let t = Templates::load(fixtures().join("questions.toml"), &kb).unwrap();
    (kb, t)
}

/// The reference answer of a topic.
pub fn answer(kb: &Kb, t: &Templates, topic: &str) -> String {
    zh_answer(kb.get(t.doc_id_of(topic).unwrap()).unwrap())
}

/// An answerable eval question of `topic` (its `i`-th eval question) and the model's `raw`.
pub fn asked(kb: &Kb, t: &Templates, topic: &str, i: usize, raw: &str) -> (Sample, String) {
    let doc = t.doc(t.doc_id_of(topic).unwrap()).unwrap();
    (Sample::new(&doc.eval[i], &answer(kb, t, topic), Some(&doc.doc_id), "eval"), raw.to_string())
}

/// The `i`-th unanswerable eval question and the model's `raw`.
pub fn unanswerable(t: &Templates, i: usize, raw: &str) -> (Sample, String) {
    let u = &t.unanswerable().eval[i];
    (Sample::new(&u.question, &u.refusal, None, "unanswerable"), raw.to_string())
}

/// The questions with their raw answers scored by lora-eval, as test-qwen-lora's report holds
/// them (no post-processing).
pub fn scored(asked: Vec<(Sample, String)>) -> Vec<Detail> {
    let (samples, raw): (Vec<Sample>, Vec<String>) = asked.into_iter().unzip();
    lora_eval::evaluate_answers(&samples, None, RawAnswers { raw, generation_seconds: 0.0 }).unwrap().details
}

/// A mixed run: 4 correct, 7 wrong of every kind. vpn→mfa is the most frequent confusion (2×).
pub fn mixed_run(kb: &Kb, t: &Templates) -> Vec<Detail> {
    let vpn = answer(kb, t, "vpn");
    let mfa = answer(kb, t, "mfa");
    let leave = answer(kb, t, "leave");
    let refusal = t.unanswerable().eval[1].refusal.clone();
    scored(vec![
        asked(kb, t, "vpn", 0, &vpn),                                  // correct
        asked(kb, t, "vpn", 1, &mfa),                                  // vpn -> mfa
        asked(kb, t, "vpn", 0, &format!("{mfa}。")),                   // vpn -> mfa again
        asked(kb, t, "mfa", 0, "抱歉,知識庫沒有這項資訊。"),           // refused answerable
        asked(kb, t, "mfa", 1, &mfa),                                  // correct
        asked(kb, t, "leave", 0, "依據公司規範:年假須於前一週提出"),   // right topic, inexact
        asked(kb, t, "leave", 1, "我不知道"),                          // none
        unanswerable(t, 0, &vpn),                                      // answered unanswerable
        unanswerable(t, 1, &refusal),                                  // correct
        unanswerable(t, 2, "抱歉,這我無法回答喔,請見諒,謝謝您的耐心"), // refusal, other words
        asked(kb, t, "leave", 1, &leave),                              // correct
    ])
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
