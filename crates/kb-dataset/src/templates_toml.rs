//! Writing question templates as `questions.toml`, in the layout of the curated file, so a
//! synthesized file reads (and diffs) like a hand-written one and loads back as [`Templates`].
//!
//! [`Templates`]: crate::Templates

use std::fmt::Write;

use crate::templates::{DocTemplates, Unanswerable, UnanswerablePools};

/// The TOML text of these pools; `header` becomes the leading comment, one `# ` line per line.
pub fn render_templates(header: &str, docs: &[DocTemplates], unanswerable: &UnanswerablePools) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(format!("# {line}").trim_end());
        out.push('\n');
    }
    for doc in docs {
        let _ = write!(out, "\n[[doc]]\ntopic = {}\ndoc_id = {}\n", quote(&doc.topic), quote(&doc.doc_id));
        list(&mut out, "eval", doc.eval.iter().map(|q| quote(q)));
        list(&mut out, "augment", doc.augment.iter().map(|q| quote(q)));
        out.push_str("\n[doc.train]\n");
        let mut styles: Vec<&str> = doc.train.iter().map(|q| q.style.as_str()).collect();
        styles.dedup();
        for style in styles {
            let qs = doc.train.iter().filter(|q| q.style == style).map(|q| quote(&q.question));
            list(&mut out, style, qs);
        }
    }
    out.push_str("\n[unanswerable]\n");
    for (name, pool) in
        [("train", &unanswerable.train), ("eval", &unanswerable.eval), ("augment", &unanswerable.augment)]
    {
        list(&mut out, name, pool.iter().map(refusal));
    }
    out
}

fn list(out: &mut String, key: &str, items: impl Iterator<Item = String>) {
    let _ = writeln!(out, "{key} = [");
    for item in items {
        let _ = writeln!(out, "  {item},");
    }
    out.push_str("]\n");
}

fn refusal(u: &Unanswerable) -> String {
    format!("{{ question = {}, refusal = {} }}", quote(&u.question), quote(&u.refusal))
}

/// A TOML string literal of `s`, escaped as TOML requires.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kb, KbEntry, StyledQuestion, Templates};

    #[test]
    fn rendered_templates_load_back_unchanged() {
        let kb = Kb::from_entries(
            "kb.jsonl",
            vec![KbEntry::from_text("Refunds within 14 days."), KbEntry::from_text("Support 9-5.")],
        );
        let docs: Vec<DocTemplates> = kb
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| DocTemplates {
                topic: format!("topic-{i}"),
                doc_id: e.doc_id.clone(),
                train: vec![
                    StyledQuestion { style: "full".into(), question: format!("a \"quoted\" question {i}?") },
                    StyledQuestion { style: "short".into(), question: format!("short {i}") },
                ],
                eval: vec![format!("eval {i} with a back\\slash")],
                augment: vec![],
            })
            .collect();
        let un = UnanswerablePools {
            train: vec![Unanswerable { question: "parking?".into(), refusal: "Sorry, ask the desk.".into() }],
            eval: vec![Unanswerable { question: "lunch?".into(), refusal: "Sorry, no.".into() }],
            augment: vec![],
        };
        let text = render_templates("synthesized\nby a test", &docs, &un);
        assert!(text.starts_with("# synthesized\n# by a test\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("questions.toml");
        std::fs::write(&path, &text).unwrap();
        let back = Templates::load(&path, &kb).unwrap();
        assert_eq!(back.docs(), docs.as_slice());
        assert_eq!(back.unanswerable(), &un);
    }
}
