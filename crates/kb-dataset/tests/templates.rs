//! Loading and validating question templates: the shipped file and every kind of bad input.

mod common;

use std::collections::HashSet;

use common::{data_dir, shipped, tiny, tiny_kb, tiny_templates_toml};
use kb_dataset::{Kb, Templates, doc_id_for, normalize, text_hash};

#[test]
fn shipped_kb_ids_and_hashes_match_their_text() {
    let text = std::fs::read_to_string(data_dir().join("kb.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["text"].as_str().unwrap();
        assert_eq!(v["doc_id"].as_str().unwrap(), doc_id_for(t), "{line}");
        assert_eq!(v["text_hash"].as_str().unwrap(), text_hash(t), "{line}");
        n += 1;
    }
    assert_eq!(n, 15);
}

#[test]
fn shipped_templates_cover_the_kb_with_enough_questions() {
    let (kb, t) = shipped();
    assert_eq!(t.docs().len(), kb.entries().len());
    for (doc, entry) in t.docs().iter().zip(kb.entries()) {
        assert_eq!(doc.doc_id, entry.doc_id, "docs are in KB order");
        assert!(doc.train.len() >= 15, "{}: {} training questions", doc.topic, doc.train.len());
        let styles: HashSet<&str> = doc.train.iter().map(|q| q.style.as_str()).collect();
        assert_eq!(styles, HashSet::from(["short", "full", "formal", "mixed"]), "{}", doc.topic);
        assert_eq!(doc.eval.len(), 5, "{}", doc.topic);
        assert!(doc.augment.len() >= 6, "{}", doc.topic);
        assert_eq!(t.topic_of(&doc.doc_id), Some(doc.topic.as_str()));
        assert_eq!(t.doc_id_of(&doc.topic), Some(doc.doc_id.as_str()));
    }
    let u = t.unanswerable();
    assert!(u.train.len() >= 75 && u.eval.len() >= 10 && u.augment.len() >= 10);
    assert!(u.train.iter().any(|q| q.question == "VPN 可以在國外用嗎"));
}

#[test]
fn shipped_refusals_are_polite_and_name_a_department() {
    let (_, t) = shipped();
    let u = t.unanswerable();
    let departments = ["HR", "IT", "財務部", "總務部", "資安團隊", "福委會", "法務部", "稽核室"];
    for r in u.train.iter().chain(&u.eval).chain(&u.augment) {
        assert!(r.refusal.starts_with("抱歉"), "{r:?}");
        assert!(departments.iter().any(|d| r.refusal.contains(d)), "no department in {r:?}");
    }
    let distinct: HashSet<&str> = u.train.iter().map(|r| r.refusal.as_str()).collect();
    assert_eq!(distinct.len(), u.train.len(), "each training question has its own refusal");
}

#[test]
fn shipped_pools_are_disjoint() {
    let (_, t) = shipped();
    let mut all: Vec<String> = Vec::new();
    for d in t.docs() {
        all.extend(d.train.iter().map(|q| normalize(&q.question)));
        all.extend(d.eval.iter().map(|q| normalize(q)));
        all.extend(d.augment.iter().map(|q| normalize(q)));
    }
    let u = t.unanswerable();
    all.extend(u.train.iter().chain(&u.eval).chain(&u.augment).map(|r| normalize(&r.question)));
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
}

#[test]
fn tiny_templates_load_in_style_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, t) = tiny(dir.path(), 2, 3);
    assert_eq!(t.styles(), vec!["formal", "short"]);
    let d = &t.docs()[0];
    assert_eq!(d.topic, "t0");
    assert_eq!(d.train[0].style, "formal");
    assert_eq!(d.train[0].question, "d0 formal 0");
    assert_eq!(d.eval, vec!["d0 eval a", "d0 eval b"]);
    assert_eq!(t.unanswerable().train.len(), 3);
    assert_eq!(t.topic_of("doc_00000000"), None);
}

/// Loads a modified tiny template file and returns the error text.
fn load_err(edit: impl Fn(String) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kb: Kb = tiny_kb(dir.path());
    let p = dir.path().join("questions.toml");
    std::fs::write(&p, edit(tiny_templates_toml(2, 3))).unwrap();
    let e = Templates::load(&p, &kb).unwrap_err().to_string();
    assert!(e.contains("questions.toml"), "error should name the file: {e}");
    e
}

#[test]
fn unknown_doc_id_names_line_and_doc() {
    let id = doc_id_for(common::TEXTS[1]);
    let e = load_err(|s| s.replace(&id, "doc_0badf00d"));
    assert!(e.contains("line 12, doc \"t1\""), "{e}");
    assert!(e.contains("doc_0badf00d is not in the KB"), "{e}");
    assert!(e.contains(&doc_id_for(common::TEXTS[0])), "lists the known ids: {e}");
}

#[test]
fn duplicate_topic_is_rejected() {
    let e = load_err(|s| s.replace("topic = \"t1\"", "topic = \"t0\""));
    assert!(e.contains("duplicate topic (first used on line 2)"), "{e}");
}

#[test]
fn duplicate_doc_id_in_templates_is_rejected() {
    let e = load_err(|s| s.replace(&doc_id_for(common::TEXTS[1]), &doc_id_for(common::TEXTS[0])));
    assert!(e.contains("already used by topic \"t0\""), "{e}");
}

#[test]
fn kb_doc_without_templates_is_rejected() {
    let e = load_err(|s| {
        let cut = s.find("[[doc]]\ntopic = \"t1\"").unwrap();
        let rest = &s[cut..];
        let end = rest.find("[unanswerable]").unwrap();
        format!("{}{}", &s[..cut], &rest[end..])
    });
    assert!(e.contains(&doc_id_for(common::TEXTS[1])) && e.contains("has no [[doc]] entry"), "{e}");
}

#[test]
fn empty_pools_are_rejected() {
    let e = load_err(|s| s.replace("eval = [\"d1 eval a\", \"d1 eval b\"]", "eval = []"));
    assert!(e.contains("doc \"t1\"") && e.contains("no eval questions"), "{e}");
    let e = load_err(|s| s.replacen("short = [\"d0 short 0\", \"d0 short 1\"]", "short = []", 1));
    assert!(e.contains("doc \"t0\"") && e.contains("style \"short\" is empty"), "{e}");
    let e = load_err(|s| s.replace("\"d0 eval b\"", "\"  \""));
    assert!(e.contains("line 4, doc \"t0\" eval") && e.contains("empty question"), "{e}");
    let e = load_err(|_| String::new());
    assert!(e.contains("no [[doc]] entries"), "{e}");
}

#[test]
fn refusal_must_start_with_baoqian() {
    let e = load_err(|s| s.replace("抱歉，請洽人資部(HR)。1", "請洽人資部(HR)。"));
    assert!(e.contains("unanswerable.train entry 2"), "{e}");
    assert!(e.contains("must start with \"抱歉\""), "{e}");
}

#[test]
fn question_in_two_pools_is_rejected() {
    let e = load_err(|s| s.replace("\"d1 eval a\"", "\"d1 short 1\""));
    assert!(e.contains("doc \"t1\" eval"), "{e}");
    assert!(e.contains("already in doc \"t1\" train.short"), "{e}");
    // Whitespace differences do not hide a repeat, and unanswerable pools count too.
    let e = load_err(|s| s.replace("question = \"ue\"", "question = \" d0  eval a\""));
    assert!(e.contains("unanswerable.eval entry 1") && e.contains("doc \"t0\" eval"), "{e}");
}

#[test]
fn malformed_toml_and_unknown_fields_are_rejected() {
    let e = load_err(|s| s.replacen("topic = \"t0\"", "topic = t0", 1));
    assert!(e.contains("invalid TOML") && e.contains("line 2"), "{e}");
    let e = load_err(|s| s.replacen("augment =", "augmnet =", 1));
    assert!(e.contains("invalid TOML") && e.contains("augmnet"), "{e}");
}

#[test]
fn invalid_utf8_names_line() {
    let dir = tempfile::tempdir().unwrap();
    let kb = tiny_kb(dir.path());
    let p = dir.path().join("questions.toml");
    let mut bytes = b"# comment\n".to_vec();
    bytes.extend_from_slice(b"# \xff\n");
    std::fs::write(&p, bytes).unwrap();
    let e = Templates::load(&p, &kb).unwrap_err().to_string();
    assert!(e.contains("questions.toml:2: not valid UTF-8"), "{e}");
}
