//! Concrete next steps derived from an analysis: which topics need more or more distinctive
//! training questions, and when to retrain or tune instead.

use kb_dataset::Templates;

use crate::classify::{ACTUAL_NONE, ACTUAL_REFUSAL, ErrorKind, TOPIC_UNANSWERABLE};
use crate::findings::ErrorAnalysis;

/// Below this accuracy the adapter is undertrained as a whole; targeted samples will not help.
const RETRAIN_BELOW: f64 = 0.5;

/// Suggestions, most important first.
pub fn suggestions(a: &ErrorAnalysis, templates: &Templates) -> Vec<String> {
    let mut out = Vec::new();
    if a.total == 0 {
        return vec!["the eval set is empty; generate it with gen-eval-set".into()];
    }
    if a.errors == 0 {
        return vec![format!(
            "no answer below the threshold {:.2}; nothing to fix — package the adapter (package-lora)",
            a.threshold
        )];
    }
    let count = |kind| a.detailed_errors.iter().filter(|e| e.kind == kind).count();
    if a.accuracy < RETRAIN_BELOW {
        out.push(format!(
            "accuracy {:.1}% is below {:.0}%: the adapter is undertrained as a whole; check the loss curve and \
             retrain with more epochs or a higher learning rate before adding targeted samples",
            a.accuracy * 100.0,
            RETRAIN_BELOW * 100.0
        ));
    }

    // Weakest topics first.
    let mut weak: Vec<(&String, &crate::findings::TopicErrors)> =
        a.topic_errors.iter().filter(|(t, e)| e.errors > 0 && t.as_str() != TOPIC_UNANSWERABLE).collect();
    weak.sort_by(|x, y| x.1.accuracy.total_cmp(&y.1.accuracy).then_with(|| x.0.cmp(y.0)));
    for (topic, e) in weak {
        let left = templates.doc_id_of(topic).and_then(|id| templates.doc(id)).map(|d| d.augment.len());
        let pool = match left {
            Some(0) => "its augment pool is empty: add new phrasings to data/questions.toml".to_string(),
            Some(n) => format!("fix-remaining-issues can draw from {n} reserved augment questions"),
            None => format!("it is not in {}: regenerate the eval set", templates.path().display()),
        };
        out.push(format!(
            "topic `{topic}`: {}/{} wrong ({:.0}%) — add more training questions for it; {pool}",
            e.errors,
            e.evaluated,
            (1.0 - e.accuracy) * 100.0
        ));
    }

    for c in &a.confusion {
        let real = |t: &str| t != ACTUAL_REFUSAL && t != ACTUAL_NONE && t != TOPIC_UNANSWERABLE;
        if real(&c.expected) && real(&c.actual) && c.expected != c.actual {
            out.push(format!(
                "`{}` questions were answered with `{}` {}× (e.g. {:?}): add distinctive questions that name what \
                 sets the two apart, trained as contrastive pairs (fix-remaining-issues does this)",
                c.expected, c.actual, c.count, c.example_question
            ));
        }
    }

    let answered = a.failure_kinds.answered_unanswerable.len();
    if answered > 0 {
        out.push(format!(
            "{answered} unanswerable question(s) got an answer instead of a refusal: add refusal samples \
             (fix-remaining-issues draws them from the unanswerable augment pool) or raise \
             gen-train-set --unanswerable-ratio"
        ));
    }
    let refused = a.failure_kinds.refused_answerable.len();
    if refused > 0 {
        out.push(format!(
            "{refused} answerable question(s) were refused: the model over-refuses; add answerable questions for \
             those topics, or lower the unanswerable share if it is above 25%"
        ));
    }
    let inexact = count(ErrorKind::RightTopicInexact);
    if inexact > 0 {
        out.push(format!(
            "{inexact} answer(s) found the right KB entry but not verbatim: train one or two more epochs (or lower \
             the learning rate for a steadier fit), and check max_new_tokens is not truncating long answers"
        ));
    }
    let off = count(ErrorKind::OffTopic);
    if off > 0 {
        out.push(format!(
            "{off} answer(s) resemble no KB entry: the adapter has not learned the answer format for them; retrain \
             with more epochs or a larger LoRA rank"
        ));
    }
    let wording = count(ErrorKind::RefusalWording);
    if wording > 0 {
        out.push(format!(
            "{wording} unanswerable question(s) were refused in other words than expected: harmless for users; \
             keep refusals uniform in data/questions.toml if the score matters"
        ));
    }
    if a.accuracy >= RETRAIN_BELOW {
        out.push(
            "then: fix-remaining-issues → train-qwen-lora on data/train_qwen_final.jsonl → test-qwen-lora \
             (make iterate)"
                .into(),
        );
    }
    out
}
