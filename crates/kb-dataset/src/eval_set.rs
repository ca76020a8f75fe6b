//! The evaluation set: every eval question of every doc (KB order, not shuffled, so reports
//! read doc by doc), then the unanswerable eval questions.

use crate::error::Result;
use crate::kb::Kb;
use crate::sample::{STYLE_EVAL, STYLE_UNANSWERABLE, Sample};
use crate::templates::Templates;

/// Builds the eval set from the held-out pools of `templates`.
pub fn build_eval_set(kb: &Kb, templates: &Templates) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for doc in templates.docs() {
        let entry = templates.kb_entry(kb, &doc.doc_id)?;
        let answer = kb.answer_for(entry);
        for q in &doc.eval {
            samples.push(Sample::new(q, &answer, Some(&doc.doc_id), STYLE_EVAL));
        }
    }
    for u in &templates.unanswerable().eval {
        samples.push(Sample::new(&u.question, &u.refusal, None, STYLE_UNANSWERABLE));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::KbEntry;

    #[test]
    fn templates_of_another_kb_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::from_entries(dir.path().join("kb.jsonl"), vec![KbEntry::from_text("甲")]);
        kb.write_jsonl(kb.path()).unwrap();
        let q = dir.path().join("q.toml");
        let toml = format!(
            "[[doc]]\ntopic = \"a\"\ndoc_id = \"{}\"\neval = [\"e\"]\n[doc.train]\nshort = [\"s\"]\n",
            kb.entries()[0].doc_id
        );
        std::fs::write(&q, toml).unwrap();
        let templates = Templates::load(&q, &kb).unwrap();
        let eval = build_eval_set(&kb, &templates).unwrap();
        assert_eq!(eval.len(), 1);
        assert_eq!(eval[0].question, "e");

        let other = Kb::from_entries("other.jsonl", vec![KbEntry::from_text("乙")]);
        let e = build_eval_set(&other, &templates).unwrap_err().to_string();
        assert!(e.contains("q.toml") && e.contains("other.jsonl"), "{e}");
    }
}
