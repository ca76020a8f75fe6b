//! Retrieval on the shipped KB and training set: it calibrates, and it places the training
//! questions it has not seen on their own entry far more often than chance.

use std::path::PathBuf;

use kb_dataset::{Kb, read_jsonl};
use postprocess::{Calibration, Retriever};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

fn calibration() -> Calibration {
    let kb = Kb::load(data("kb.jsonl")).unwrap();
    let training = read_jsonl(data("train_qwen_v1.jsonl")).unwrap();
    Retriever::new(&kb, &training, &data("train_qwen_v1.jsonl"), postprocess::CONFIDENT_PRECISION)
        .unwrap()
        .calibration()
        .clone()
}

#[test]
fn the_shipped_training_set_calibrates_every_threshold() {
    let c = calibration();
    println!("{}", serde_json::to_string_pretty(&c).unwrap());
    assert_eq!((c.answerable, c.unanswerable), (225, 75), "{c:?}");
    // 15 entries: chance is 1 in 15.
    assert!(c.top1_accuracy > 0.5, "{c:?}");
    for t in [c.entry_confident, c.answerable_confident, c.unanswerable_confident] {
        let margin = t.margin.unwrap_or_else(|| panic!("no margin reached {t:?}"));
        assert!((0.0..=1.0).contains(&margin) && t.precision >= t.precision_target, "{t:?}");
    }
    // Which entry is the easier question: it trusts most answerable questions.
    assert!(c.entry_confident.support * 2 > c.answerable, "{c:?}");
}

use postprocess::{PostProcessor, RawKind, Source};

fn processor() -> PostProcessor {
    let kb = Kb::load(data("kb.jsonl")).unwrap();
    let training = read_jsonl(data("train_qwen_v1.jsonl")).unwrap();
    let retriever =
        Retriever::new(&kb, &training, &data("train_qwen_v1.jsonl"), postprocess::CONFIDENT_PRECISION).unwrap();
    PostProcessor::new(kb, postprocess::DEFAULT_KB_MATCH_THRESHOLD).unwrap().with_retriever(retriever)
}

fn answer(pp: &PostProcessor, topic_word: &str) -> String {
    let e = pp.kb().entries().iter().find(|e| e.text.contains(topic_word)).unwrap();
    zh_answer(e)
}

#[test]
fn a_refusal_to_a_question_retrieval_is_sure_of_becomes_its_entry() {
    let pp = processor();
    // A training question on a topic no unanswerable question shares.
    let d = pp.apply("釣魚郵件通報", "抱歉，我不知道。");
    assert_eq!((d.source, d.raw_kind), (Source::RetrievalOverride, RawKind::Refusal), "{d:?}");
    assert_eq!(d.answer, answer(&pp, "釣魚郵件"));
    assert!(d.source_detail.contains("the model refused"), "{}", d.source_detail);
}

#[test]
fn a_refusal_retrieval_is_unsure_of_is_kept() {
    let pp = processor();
    let refusal = "抱歉，規範中沒有這方面的說明。";
    let d = pp.apply("今天天氣如何", refusal);
    assert_eq!((d.source, d.answer.as_str(), d.doc_id.as_deref()), (Source::ModelGenerated, refusal, None), "{d:?}");
}

#[test]
fn a_quote_of_the_wrong_entry_is_replaced_by_the_entry_retrieval_is_confident_of() {
    let pp = processor();
    let d = pp.apply("vpn怎麼連", &answer(&pp, "附件上限"));
    assert_eq!((d.source, d.raw_kind), (Source::RetrievalOverride, RawKind::KbQuote), "{d:?}");
    assert_eq!(d.answer, answer(&pp, "VPN 用戶端"));
    // The right entry, slightly garbled, is snapped to its exact text.
    let garbled = answer(&pp, "VPN 用戶端").replace("新版", "最新版");
    let d = pp.apply("vpn怎麼連", &garbled);
    assert_eq!((d.source, &d.answer), (Source::KbMatch, &answer(&pp, "VPN 用戶端")), "{d:?}");
}

#[test]
fn a_policy_answer_to_a_trained_unanswerable_question_becomes_a_refusal_naming_who_to_ask() {
    let pp = processor();
    let d = pp.apply("尾牙在哪裡辦", &answer(&pp, "會議室"));
    assert_eq!(d.source, Source::RetrievalOverride, "{d:?}");
    assert!(kb_dataset::is_refusal(&d.answer), "{d:?}");
    // The trained refusal of that question sends people to 福委會.
    assert!(d.answer.contains("福委會"), "{}", d.answer);
    // An invented policy about nothing the KB has: refused too.
    let d = pp.apply("尾牙在哪裡辦", "依據公司規範:尾牙於每年一月在台北舉辦。");
    assert_eq!((d.source, d.raw_kind), (Source::RetrievalOverride, RawKind::Unmatched), "{d:?}");
    assert!(kb_dataset::is_refusal(&d.answer), "{d:?}");
}

#[test]
fn an_invented_answer_to_a_question_retrieval_is_sure_of_becomes_its_entry() {
    let pp = processor();
    let d = pp.apply("vpn怎麼連", "依據公司規範:VPN 請向主管申請帳號。");
    assert_eq!((d.source, d.raw_kind), (Source::RetrievalOverride, RawKind::Unmatched), "{d:?}");
    assert_eq!(d.answer, answer(&pp, "VPN 用戶端"));
}

#[test]
fn scoring_the_eval_set_takes_well_under_a_second() {
    let pp = processor();
    let eval = read_jsonl(data("eval_qwen_v1.jsonl")).unwrap();
    let started = std::time::Instant::now();
    for s in &eval {
        pp.apply(s.question.as_str(), s.answer.as_str());
    }
    // Generous bound (debug builds, a busy CI machine); a release build takes milliseconds.
    assert!(started.elapsed().as_secs_f64() < 5.0, "{:?}", started.elapsed());
}

#[test]
fn rules_that_declare_themselves_complete_decide_exactly_as_without_retrieval() {
    let kb = Kb::load(data("kb.jsonl")).unwrap();
    let rules = || postprocess::Rules::load(data("rules.toml"), &kb).unwrap();
    assert!(rules().uncovered_refusal().is_some(), "data/rules.toml sets uncovered_refusal");
    let training = read_jsonl(data("train_qwen_v1.jsonl")).unwrap();
    let retriever =
        Retriever::new(&kb, &training, &data("train_qwen_v1.jsonl"), postprocess::CONFIDENT_PRECISION).unwrap();
    let both = PostProcessor::new(kb.clone(), 0.8).unwrap().with_retriever(retriever).with_rules(rules());
    let alone = PostProcessor::new(kb.clone(), 0.8).unwrap().with_rules(rules());
    let other = zh_answer(&kb.entries()[3]);
    let retrieval_alone = processor();
    let mut retrieval_would_differ = 0;
    for s in read_jsonl(data("eval_qwen_v1.jsonl")).unwrap() {
        let q = s.question.as_str();
        for a in [s.answer.as_str(), "抱歉，我不知道。", other.as_str(), "依據公司規範:沒有這條規定。"]
        {
            assert_eq!(both.apply(q, a), alone.apply(q, a), "{q} / {a}");
            retrieval_would_differ += usize::from(retrieval_alone.apply(q, a) != alone.apply(q, a));
        }
    }
    // Not vacuous: retrieval on its own decides many of these differently.
    assert!(retrieval_would_differ > 0);
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
