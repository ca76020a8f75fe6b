//! Grouping, confusion and failure kinds on constructed inputs.

mod common;

use common::*;
use diagnose::{
    ACTUAL_NONE, ACTUAL_REFUSAL, DiagnoseOptions, Error, ErrorKind, TOPIC_UNANSWERABLE, analyze, confusion_svg,
    load_analysis, print_report, write_analysis,
};

#[test]
fn counts_topics_and_kinds() {
    let (kb, t) = load();
    let run = mixed_run(&kb, &t);
    let a = analyze(&run, &kb, &t, &DiagnoseOptions::default()).unwrap();
    assert_eq!((a.total, a.correct, a.errors), (11, 4, 7));
    assert!((a.accuracy - 4.0 / 11.0).abs() < 1e-12);
    assert_eq!(a.topics, ["vpn", "mfa", "leave", TOPIC_UNANSWERABLE]);

    let tally = |topic: &str| {
        let e = &a.topic_errors[topic];
        (e.evaluated, e.errors)
    };
    assert_eq!(tally("vpn"), (3, 2));
    assert_eq!(tally("mfa"), (2, 1));
    assert_eq!(tally("leave"), (3, 2));
    assert_eq!(tally(TOPIC_UNANSWERABLE), (3, 2));
    assert_eq!(a.topic_errors["vpn"].questions, [run[1].question.clone(), run[2].question.clone()]);

    let kinds: Vec<(&str, &str, ErrorKind)> =
        a.detailed_errors.iter().map(|e| (e.expected_topic.as_str(), e.actual_topic.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("vpn", "mfa", ErrorKind::WrongTopic),
            ("vpn", "mfa", ErrorKind::WrongTopic),
            ("mfa", ACTUAL_REFUSAL, ErrorKind::RefusedAnswerable),
            ("leave", "leave", ErrorKind::RightTopicInexact),
            ("leave", ACTUAL_NONE, ErrorKind::OffTopic),
            (TOPIC_UNANSWERABLE, "vpn", ErrorKind::AnsweredUnanswerable),
            (TOPIC_UNANSWERABLE, ACTUAL_REFUSAL, ErrorKind::RefusalWording),
        ]
    );
    // Every recorded similarity is the one that made it an error.
    assert!(a.detailed_errors.iter().all(|e| e.similarity < a.threshold));
    assert_eq!(a.detailed_errors[2].actual_similarity, None);

    assert_eq!(a.failure_kinds.answered_unanswerable, [run[7].question.clone()]);
    assert_eq!(a.failure_kinds.refused_answerable, [run[3].question.clone()]);
}

#[test]
fn confusion_is_sorted_with_examples() {
    let (kb, t) = load();
    let run = mixed_run(&kb, &t);
    let a = analyze(&run, &kb, &t, &DiagnoseOptions::default()).unwrap();
    let top = &a.confusion[0];
    assert_eq!((top.expected.as_str(), top.actual.as_str(), top.count), ("vpn", "mfa", 2));
    assert_eq!(top.example_question, run[1].question);
    assert_eq!(a.confusion.len(), 6);
    assert_eq!(a.confusion.iter().map(|c| c.count).sum::<usize>(), a.errors);
    // Ties (count 1) in expected, then actual order.
    let rest: Vec<(&str, &str)> = a.confusion[1..].iter().map(|c| (c.expected.as_str(), c.actual.as_str())).collect();
    assert_eq!(
        rest,
        [
            ("leave", "leave"),
            ("leave", ACTUAL_NONE),
            ("mfa", ACTUAL_REFUSAL),
            (TOPIC_UNANSWERABLE, ACTUAL_REFUSAL),
            (TOPIC_UNANSWERABLE, "vpn")
        ]
    );
}

#[test]
fn threshold_decides_what_is_an_error() {
    let (kb, t) = load();
    let run = mixed_run(&kb, &t);
    let all_ok = analyze(&run, &kb, &t, &DiagnoseOptions { threshold: 0.0, floor: 0.3 }).unwrap();
    assert_eq!(all_ok.errors, 0);
    assert!(all_ok.confusion.is_empty());
    assert!(all_ok.suggestions[0].contains("nothing to fix"), "{:?}", all_ok.suggestions);
    // `mfa。` is 0.97 similar to the mfa answer: correct at 0.9, wrong at 0.99.
    let strict = analyze(&run[2..3], &kb, &t, &DiagnoseOptions { threshold: 0.99, floor: 0.3 }).unwrap();
    assert_eq!(strict.errors, 1);
    let bad = analyze(&run, &kb, &t, &DiagnoseOptions { threshold: 1.5, floor: 0.3 });
    assert!(matches!(bad, Err(Error::Options(_))));
}

#[test]
fn suggestions_name_weak_and_confused_topics() {
    let (kb, t) = load();
    let a = analyze(&mixed_run(&kb, &t), &kb, &t, &DiagnoseOptions::default()).unwrap();
    let s = a.suggestions.join("\n");
    assert!(s.contains("undertrained"), "{s}"); // 36% accuracy
    assert!(s.contains("topic `vpn`: 2/3 wrong"), "{s}");
    assert!(s.contains("`vpn` questions were answered with `mfa` 2×"), "{s}");
    assert!(s.contains("1 unanswerable question(s) got an answer"), "{s}");
    assert!(s.contains("1 answerable question(s) were refused"), "{s}");
    assert!(!s.contains("topic `unanswerable`"), "{s}");
}

#[test]
fn the_scores_of_the_evaluation_decide_and_are_not_computed_again() {
    let (kb, t) = load();
    let mut run = mixed_run(&kb, &t);
    let opts = DiagnoseOptions::default();
    let a = analyze(&run, &kb, &t, &opts).unwrap();
    // Each error carries the score the evaluation gave its raw answer.
    for e in &a.detailed_errors {
        let d = run.iter().find(|d| d.question == e.question && d.raw == e.raw).unwrap();
        assert_eq!(e.similarity, d.similarity_raw);
    }
    // Correct is lora-eval's `is_correct` of that score: at the threshold exactly is correct, and a
    // score says so whatever the texts are (run[1] answers vpn with the mfa text).
    run[1].similarity_raw = opts.threshold;
    run[3].similarity_raw = 1.0;
    let b = analyze(&run, &kb, &t, &opts).unwrap();
    assert_eq!((b.errors, b.correct), (a.errors - 2, a.correct + 2));
    assert!(!b.failure_kinds.refused_answerable.contains(&run[3].question));
    // The final (post-processed) score plays no part: diagnosis is of the model's own answers.
    run[5].similarity = 1.0;
    assert_eq!(analyze(&run, &kb, &t, &opts).unwrap().errors, b.errors);
}

#[test]
fn report_json_and_svg() {
    let (kb, t) = load();
    let a = analyze(&mixed_run(&kb, &t), &kb, &t, &DiagnoseOptions::default()).unwrap();
    let mut out = Vec::new();
    print_report(&a, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("11 eval questions, 4 correct, 7 errors"), "{text}");
    assert!(text.contains("vpn: 2/3 wrong"), "{text}");
    assert!(text.contains("2×  vpn"), "{text}");
    assert!(text.contains("unanswerable but answered: 1"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out/error_analysis.json");
    let svg = write_analysis(&a, &json).unwrap();
    assert_eq!(svg, dir.path().join("out/error_analysis.svg"));
    assert_eq!(load_analysis(&json).unwrap(), a);
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in ["total", "correct", "errors", "accuracy", "detailed_errors", "topic_errors", "confusion"] {
        assert!(raw.get(key).is_some(), "missing {key}");
    }
    assert_eq!(raw["detailed_errors"][2]["kind"], "refused_answerable");
    assert_eq!(std::fs::read_dir(dir.path().join("out")).unwrap().count(), 2);

    let image = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(image, confusion_svg(&a));
    assert!(image.starts_with("<svg") && image.trim_end().ends_with("</svg>"));
    // 4 rows x (3 topics + refusal + none) cells.
    assert_eq!(image.matches("<rect x=").count(), 4 * 5 + 1);
    assert!(image.contains("<title>vpn → mfa: 2</title>"));
    assert!(image.contains(">unanswerable</text>") && image.contains(">refusal</text>"));
    assert!(image.contains("fill=\"#a50f15\""), "the largest cell is darkest");
}

#[test]
fn load_analysis_names_file_on_bad_json() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("error_analysis.json");
    std::fs::write(&p, "{\"total\": 1}").unwrap();
    let e = load_analysis(&p).unwrap_err().to_string();
    assert!(e.contains("error_analysis.json") && e.contains("diagnose-errors"), "{e}");
}

#[test]
fn the_analysis_holds_fractions_and_a_percent_in_it_is_named() {
    let (kb, t) = load();
    let a = analyze(&mixed_run(&kb, &t), &kb, &t, &DiagnoseOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("error_analysis.json");
    write_analysis(&a, &path).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["accuracy"].as_f64().unwrap(), 4.0 / 11.0);
    assert_eq!(json["threshold"], 0.9);
    assert_eq!(json["topic_errors"]["vpn"]["accuracy"].as_f64().unwrap(), 1.0 / 3.0);

    json["topic_errors"]["vpn"]["accuracy"] = 33.3.into();
    std::fs::write(&path, json.to_string()).unwrap();
    let e = load_analysis(&path).unwrap_err().to_string();
    assert!(e.contains("error_analysis.json") && e.contains("topic_errors.vpn.accuracy is 33.3"), "{e}");
    json["topic_errors"]["vpn"]["accuracy"] = (1.0 / 3.0).into();
    json["detailed_errors"][0]["similarity"] = 80.0.into();
    std::fs::write(&path, json.to_string()).unwrap();
    let e = load_analysis(&path).unwrap_err().to_string();
    assert!(e.contains("detailed_errors[0].similarity is 80"), "{e}");
}
