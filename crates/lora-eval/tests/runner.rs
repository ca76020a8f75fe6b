//! End-to-end runs of the evaluation with fake generators: every figure in the report must come
//! from the answers the generator produced.

use kb_dataset::{Kb, KbEntry, Sample};
use lora_eval::{Error, EvalOptions, PrintOptions, Report, Source, evaluate, print_report, read_report, write_report};
use postprocess::{PostProcessor, Rules};

const TEXTS: [&str; 3] = [
    "連線公司 VPN 前，請先下載新版 VPN 用戶端，安裝後以公司 SSO 帳號登入。",
    "費用報銷須於 30 天內上傳發票，逾期申請須附上直屬主管簽核的逾期原因說明。",
    "會議室預約：每個單位同一時段最多保留 2 間會議室，不使用的時段請主動取消。",
];
const REFUSAL: &str = "抱歉，規範中沒有這方面的說明，請洽人資部(HR)。";

fn kb() -> Kb {
    Kb::from_entries("kb.jsonl", TEXTS.iter().map(|t| KbEntry::from_text(t)).collect())
}

fn post() -> PostProcessor {
    let kb = kb();
    let src = format!(
        "[[rule]]\ntopic = \"vpn\"\ndoc_id = \"{}\"\npatterns = ['vpn']\nexclude = ['國外']\n",
        kb.entries()[0].doc_id
    );
    let rules = Rules::parse("rules.toml", &src, &kb).unwrap();
    PostProcessor::new(kb, 0.8).unwrap().with_rules(rules)
}

/// Eight samples: six answerable (two per doc), two unanswerable.
fn samples() -> Vec<Sample> {
    let kb = kb();
    let e = kb.entries();
    let a = |i: usize, q: &str| Sample::new(q, &zh_answer(&e[i]), Some(&e[i].doc_id), "eval");
    vec![
        a(0, "VPN 怎麼連？"),
        a(0, "遠端連線要裝什麼"),
        a(1, "發票多久內要上傳"),
        a(1, "報帳逾期怎麼辦"),
        a(2, "會議室可以借幾間"),
        a(2, "不用的會議室要取消嗎"),
        Sample::new("VPN 可以在國外用嗎", REFUSAL, None, "unanswerable"),
        Sample::new("尾牙在哪裡辦", REFUSAL, None, "unanswerable"),
    ]
}

/// What the fake model answers for the i-th question.
fn fake_answer(i: usize, question: &str, expected: &str) -> String {
    match i {
        0 => REFUSAL.to_string(), // answerable, refused: the vpn rule overrides
        1 => expected.to_string(),
        2 => expected.replace("30 天", "三十天"), // close: KB_MATCH
        3 => "請找主管。".to_string(),            // garbled: MODEL_GENERATED
        4 => zh_answer(&kb().entries()[1]),       // wrong doc, no rule: KB_MATCH to doc 1
        5 => expected.to_string(),
        6 => REFUSAL.to_string(), // near-miss, excluded from the vpn rule: refusal kept
        _ => format!("依據公司規範:{question}"), // unanswerable, not refused
    }
}

fn run(post: Option<&PostProcessor>, batch: usize) -> (Report, Vec<usize>) {
    let samples = samples();
    let expected: Vec<String> = samples.iter().map(|s| s.answer.clone()).collect();
    let mut calls = Vec::new();
    let mut next = 0;
    let report = evaluate(&samples, post, EvalOptions { batch_size: batch }, |qs: &[String]| {
        calls.push(qs.len());
        let out = qs.iter().enumerate().map(|(k, q)| fake_answer(next + k, q, &expected[next + k])).collect::<Vec<_>>();
        next += qs.len();
        Ok::<_, std::io::Error>(out)
    })
    .unwrap();
    (report, calls)
}

#[test]
fn batches_questions_in_order() {
    let (report, calls) = run(Some(&post()), 3);
    assert_eq!(calls, vec![3, 3, 2]);
    let questions: Vec<String> = samples().iter().map(|s| s.question.clone()).collect();
    let got: Vec<String> = report.details.iter().map(|d| d.question.clone()).collect();
    assert_eq!(got, questions);
}

#[test]
fn details_and_summary_come_from_the_generated_answers() {
    let (report, _) = run(Some(&post()), 4);
    let d = &report.details;
    let sources: Vec<Source> = d.iter().map(|d| d.source).collect();
    use Source::*;
    assert_eq!(
        sources,
        vec![RuleOverride, KbMatch, KbMatch, ModelGenerated, KbMatch, KbMatch, ModelGenerated, ModelGenerated]
    );
    for (i, det) in d.iter().enumerate() {
        let raw = fake_answer(i, &det.question, &det.expected);
        assert_eq!(det.raw, raw, "raw answer {i}");
        assert_eq!(det.similarity_raw, seqmatch::ratio(&det.expected, &raw), "raw score {i}");
        assert_eq!(det.similarity, seqmatch::ratio(&det.expected, &det.model), "score {i}");
    }
    assert_eq!(d[0].model, d[0].expected);
    assert_eq!(d[3].model, "請找主管。");
    assert_ne!(d[4].model, d[4].expected); // snapped to the wrong doc's text

    let s = &report.summary;
    let n = d.len() as f64;
    let avg: f64 = d.iter().map(|d| d.similarity).sum::<f64>() / n;
    let avg_raw: f64 = d.iter().map(|d| d.similarity_raw).sum::<f64>() / n;
    assert_eq!(s.total_tests, 8);
    assert!((s.avg_similarity - avg).abs() < 1e-12);
    assert!((s.avg_similarity_raw - avg_raw).abs() < 1e-12);
    assert!(s.avg_similarity > s.avg_similarity_raw);
    assert_eq!(s.source_distribution[&RuleOverride], 1);
    assert_eq!(s.source_distribution[&KbMatch], 4);
    assert_eq!(s.source_distribution[&ModelGenerated], 3);
    assert_eq!(s.buckets.total(), 8);
    assert_eq!(s.buckets.excellent, d.iter().filter(|d| d.similarity >= 0.85).count());
    assert_eq!(s.buckets_raw.excellent, d.iter().filter(|d| d.similarity_raw >= 0.85).count());
    // One of the two unanswerable questions was refused; none of the answerable ones was after
    // post-processing (the refusal to the VPN question was overridden).
    assert_eq!((s.unanswerable_total, s.answerable_total), (2, 6));
    assert_eq!(s.refusal_accuracy, Some(0.5));
    assert_eq!(s.answerable_refusal_rate, Some(0.0));
    let kb = kb();
    let doc = |i: usize| &s.per_doc[&kb.entries()[i].doc_id];
    assert_eq!((doc(0).correct, doc(0).total), (2, 2));
    assert_eq!((doc(1).correct, doc(1).total), (1, 2));
    assert_eq!((doc(2).correct, doc(2).total), (1, 2));
    assert_eq!(s.goal_met, avg >= 0.85);
}

#[test]
fn no_postprocess_keeps_raw_answers() {
    let (report, _) = run(None, 8);
    for d in &report.details {
        assert_eq!(d.model, d.raw);
        assert_eq!(d.source, Source::ModelGenerated);
        assert_eq!(d.similarity, d.similarity_raw);
        assert!(d.source_detail.contains("--no-postprocess"));
    }
    let s = &report.summary;
    assert_eq!(s.avg_similarity, s.avg_similarity_raw);
    assert_eq!(s.source_distribution[&Source::ModelGenerated], 8);
    assert_eq!(s.source_distribution[&Source::KbMatch], 0);
    // The raw refusal to the answerable VPN question now counts.
    assert_eq!(s.answerable_refusal_rate, Some(1.0 / 6.0));
}

#[test]
fn report_json_stores_fractions_as_computed_and_round_trips() {
    let (report, _) = run(Some(&post()), 8);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/sub/report.json");
    write_report(&path, &report).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let s = &json["summary"];
    assert_eq!(s["avg_similarity"].as_f64().unwrap(), report.summary.avg_similarity);
    assert_eq!(s["pass_threshold"], 0.85);
    assert_eq!(s["source_distribution"]["KB_MATCH"], 4);
    assert_eq!(s["refusal_accuracy"], 0.5);
    assert_eq!(s["buckets"]["85+"], report.summary.buckets.excellent);
    let d0 = &json["details"][0];
    for key in
        ["question", "expected", "raw", "model", "similarity", "similarity_raw", "source", "source_detail", "doc_id"]
    {
        assert!(!d0[key].is_null(), "details[0].{key} missing");
    }
    assert_eq!(d0["similarity_raw"].as_f64().unwrap(), report.details[0].similarity_raw);
    assert_eq!(d0["source"], "RULE_OVERRIDE");
    assert_eq!(json["details"][6]["doc_id"], serde_json::Value::Null);

    // Every figure reads back exactly as it was computed.
    assert_eq!(read_report(&path).unwrap(), report);
    // Only the report in the new directory: the write went through a renamed temp file.
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn reports_written_in_percents_are_read_as_fractions() {
    let (report, _) = run(Some(&post()), 8);
    let mut json = serde_json::to_value(&report).unwrap();
    let pct = |v: &mut serde_json::Value| {
        if let Some(x) = v.as_f64() {
            *v = (x * 100.0).into();
        }
    };
    let s = &mut json["summary"];
    for key in ["avg_similarity", "avg_similarity_raw", "min_similarity", "pass_threshold", "refusal_accuracy"] {
        pct(&mut s[key]);
    }
    for doc in s["per_doc"].as_object_mut().unwrap().values_mut() {
        pct(&mut doc["accuracy"]);
    }
    for d in json["details"].as_array_mut().unwrap() {
        pct(&mut d["similarity"]);
        pct(&mut d["similarity_raw"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();

    let back = read_report(&path).unwrap();
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(back.summary.pass_threshold, 0.85);
    close(back.summary.avg_similarity, report.summary.avg_similarity);
    close(back.summary.min_similarity, report.summary.min_similarity);
    close(back.summary.refusal_accuracy.unwrap(), 0.5);
    for (doc, stats) in &back.summary.per_doc {
        close(stats.accuracy, report.summary.per_doc[doc].accuracy);
    }
    // The answers are scored again from their texts: exactly as computed.
    assert_eq!(back.details, report.details);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Every fraction of a summary with its name, for comparing two summaries figure by figure.
fn figures(s: &lora_eval::Summary) -> Vec<(String, f64)> {
    let json = serde_json::to_value(s).unwrap();
    let mut out = Vec::new();
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
        match v {
            serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| walk(&format!("{prefix}.{k}"), v, out)),
            serde_json::Value::Number(n) if n.is_f64() => out.push((prefix.to_string(), n.as_f64().unwrap())),
            _ => {}
        }
    }
    walk("summary", &json, &mut out);
    out
}

#[test]
fn an_old_percent_report_and_a_new_one_of_the_same_answers_read_the_same() {
    let old = read_report(fixture("report_percent.json")).unwrap();
    let new = read_report(fixture("report.json")).unwrap();
    // The files differ: one holds percents, the other fractions.
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("report_percent.json")).unwrap()).unwrap();
    assert_eq!(raw["summary"]["pass_threshold"], 85.0);
    assert_eq!(new.summary.pass_threshold, 0.85);

    assert_eq!(old.details, new.details, "scores read back exactly");
    let (a, b) = (figures(&old.summary), figures(&new.summary));
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 20, "{a:?}");
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        assert!((x - y).abs() < 1e-12, "{name}: {x} vs {y}");
        if name != "summary.generation_seconds" {
            assert!((0.0..=1.0).contains(x), "{name} = {x}");
        }
    }
    assert_eq!(old.summary.buckets, new.summary.buckets);
    assert_eq!(old.summary.goal_met, new.summary.goal_met);
    assert_eq!(old.summary.generation_seconds, new.summary.generation_seconds);
}

#[test]
fn a_percent_in_a_fraction_report_is_named() {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("report.json")).unwrap()).unwrap();
    json["details"][3]["similarity_raw"] = 85.0.into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let e = read_report(&path).unwrap_err().to_string();
    assert!(e.contains("mixed.json: details[3].similarity_raw is 85,") && e.contains("fraction"), "{e}");

    json["details"][3]["similarity_raw"] = 0.5.into();
    json["summary"]["per_doc"]["doc_ca4961fd"]["accuracy"] = 50.0.into();
    std::fs::write(&path, json.to_string()).unwrap();
    let e = read_report(&path).unwrap_err().to_string();
    assert!(e.contains("summary.per_doc.doc_ca4961fd.accuracy is 50"), "{e}");
}

#[test]
fn printed_report_shows_examples_figures_and_goal() {
    let (report, _) = run(Some(&post()), 8);
    let mut out = Vec::new();
    let options = PrintOptions { examples: 2, worst: 1, ..PrintOptions::default() };
    print_report(&mut out, &report, &options).unwrap();
    let text = String::from_utf8(out).unwrap();
    let s = &report.summary;
    for needle in [
        "=== Examples (first 2 of 8) ===".to_string(),
        "[1] Question: VPN 怎麼連？".to_string(),
        "[2] Question: 遠端連線要裝什麼".to_string(),
        format!("Average similarity (post-processed): {:.2}%", s.avg_similarity * 100.0),
        format!("Average similarity (raw model):      {:.2}%", s.avg_similarity_raw * 100.0),
        "RULE_OVERRIDE".to_string(),
        "Refusal accuracy (unanswerable questions refused): 1/2 = 50.00%".to_string(),
        "Worst cases:".to_string(),
        "Goal: average similarity".to_string(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("[3] Question"), "only 2 examples and the worst case:\n{text}");
}

#[test]
fn generator_errors_and_bad_counts_are_reported() {
    let samples = samples();
    let e = evaluate(&samples, None, EvalOptions { batch_size: 5 }, |_: &[String]| {
        Err::<Vec<String>, _>(std::io::Error::other("out of memory"))
    })
    .unwrap_err();
    assert!(matches!(e, Error::Generation { start: 1, end: 5, .. }), "{e:?}");
    // The generator's error is the source (an error chain prints it after the message).
    let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
    assert!(source.contains("out of memory") && !e.to_string().contains("out of memory"), "{e}: {source}");

    let e = evaluate(&samples, None, EvalOptions::default(), |qs: &[String]| {
        Ok::<_, std::io::Error>(vec![String::new(); qs.len() - 1])
    })
    .unwrap_err();
    assert!(matches!(e, Error::AnswerCount { expected: 8, got: 7 }), "{e:?}");

    let ok = |qs: &[String]| Ok::<_, std::io::Error>(qs.to_vec());
    assert!(matches!(evaluate(&[], None, EvalOptions::default(), ok), Err(Error::NoSamples)));
    let e = evaluate(&samples, None, EvalOptions { batch_size: 0 }, ok).unwrap_err();
    assert!(matches!(e, Error::BatchSize), "{e:?}");
}

#[test]
fn comparison_table_has_one_row_per_report_with_its_figures() {
    let (with_post, _) = run(Some(&post()), 8);
    let (raw_only, _) = run(None, 8);
    let mut out = Vec::new();
    lora_eval::compare_table(&mut out, &[("post".into(), with_post.clone()), ("raw".into(), raw_only.clone())])
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let s = &with_post.summary;
    assert!(rows[0].starts_with("| post | 8 |"), "{text}");
    assert!(rows[0].contains(&pct(s.avg_similarity_raw)) && rows[0].contains(&pct(s.avg_similarity)), "{text}");
    let refusal = raw_only.summary.refusal_accuracy.map(pct).unwrap();
    assert!(rows[1].contains(&refusal), "{text}");
    // Without post-processing every answer is the model's own.
    assert!(rows[1].contains("| 0 / 0 / 0 / 8 |"), "{text}");
    // Answerable-only averages and raw refusals of answerable questions have their columns.
    let answerable =
        format!("{} / {}", pct(s.avg_similarity_answerable_raw.unwrap()), pct(s.avg_similarity_answerable.unwrap()));
    assert!(rows[0].contains(&answerable), "{text}");
}

/// The answer to a question about `entry` of a Chinese KB (the shipped one).
fn zh_answer(entry: &kb_dataset::KbEntry) -> String {
    kb_dataset::answer_for(entry, kb_dataset::Language::Zh)
}
