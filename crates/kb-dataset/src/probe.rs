//! Probe files: held-out questions written by hand in new wordings (`data/probe/probe.toml`,
//! `data/examples/*/probe.toml`), turned into an eval set.
//!
//! `[[answerable]]` tables name a `doc_id` and its `questions` (answered with the KB text in the
//! KB's language); `[[unanswerable]]` tables hold a `kind` (`near_miss` or `off_topic`), a
//! `question` and its `refusal`. The eval set lists the answerable questions in file order, then
//! the unanswerable ones, as `data/probe/probe_qwen.jsonl` does.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::io::read_text;
use crate::kb::{Kb, normalize};
use crate::sample::{STYLE_UNANSWERABLE, Sample};

/// The style of a probe set's answerable samples.
pub const STYLE_PROBE: &str = "probe";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default)]
    answerable: Vec<RawAnswerable>,
    #[serde(default)]
    unanswerable: Vec<RawUnanswerable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswerable {
    doc_id: String,
    questions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnanswerable {
    kind: String,
    question: String,
    refusal: String,
}

/// The eval samples of the probe file at `path`, checked against `kb`: known doc ids, known
/// kinds, no empty or repeated question, refusals with the KB language's prefix.
pub fn build_probe_set(kb: &Kb, path: &Path) -> Result<Vec<Sample>> {
    let source = read_text(path)?;
    let raw: RawProbe =
        toml::from_str(&source).map_err(|e| Error::Toml { path: path.to_path_buf(), message: e.to_string() })?;
    let err = |location: String, message: String| Error::Template { path: path.to_path_buf(), location, message };
    let mut seen = HashSet::new();
    let mut question = |q: &str, location: &str| -> Result<String> {
        let q = q.trim();
        if q.is_empty() {
            return Err(err(location.to_string(), "empty question".into()));
        }
        if !seen.insert(normalize(q)) {
            return Err(err(location.to_string(), format!("question {q:?} appears twice")));
        }
        Ok(q.to_string())
    };
    let mut samples = Vec::new();
    for (i, a) in raw.answerable.iter().enumerate() {
        let location = format!("[[answerable]] {} (doc_id {})", i + 1, a.doc_id);
        let entry = kb
            .get(&a.doc_id)
            .ok_or_else(|| err(location.clone(), format!("doc_id {} is not in {}", a.doc_id, kb.path().display())))?;
        let answer = kb.answer_for(entry);
        for q in &a.questions {
            samples.push(Sample::new(&question(q, &location)?, &answer, Some(&a.doc_id), STYLE_PROBE));
        }
    }
    let prefix = kb.language().refusal_prefix();
    for (i, u) in raw.unanswerable.iter().enumerate() {
        let location = format!("[[unanswerable]] {}", i + 1);
        if !matches!(u.kind.as_str(), "near_miss" | "off_topic") {
            return Err(err(location, format!("kind {:?} must be \"near_miss\" or \"off_topic\"", u.kind)));
        }
        let refusal = u.refusal.trim();
        if !refusal.starts_with(prefix) {
            return Err(err(location, format!("refusal {refusal:?} must start with {prefix:?}")));
        }
        samples.push(Sample::new(&question(&u.question, &location)?, refusal, None, STYLE_UNANSWERABLE));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::KbEntry;

    fn kb_and_file(toml: &str) -> (tempfile::TempDir, Kb, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::from_entries(dir.path().join("kb.jsonl"), vec![KbEntry::from_text("Refunds within 14 days.")]);
        let path = dir.path().join("probe.toml");
        std::fs::write(&path, toml.replace("ID", &kb.entries()[0].doc_id)).unwrap();
        (dir, kb, path)
    }

    #[test]
    fn an_english_probe_gets_english_answers() {
        let (_d, kb, path) = kb_and_file(
            "[[answerable]]\ndoc_id = \"ID\"\nquestions = [\"money back?\"]\n\n[[unanswerable]]\nkind = \"off_topic\"\nquestion = \"office?\"\nrefusal = \"Sorry, ask the desk.\"\n",
        );
        let s = build_probe_set(&kb, &path).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].answer, "According to company policy: Refunds within 14 days.");
        assert_eq!((s[1].doc_id.as_deref(), s[1].style.as_str()), (None, STYLE_UNANSWERABLE));
    }

    #[test]
    fn bad_probes_are_errors_naming_the_table() {
        for (toml, needle) in [
            ("[[answerable]]\ndoc_id = \"doc_00000000\"\nquestions = [\"q\"]\n", "not in"),
            ("[[answerable]]\ndoc_id = \"ID\"\nquestions = [\"q\", \" q \"]\n", "appears twice"),
            ("[[unanswerable]]\nkind = \"other\"\nquestion = \"q\"\nrefusal = \"Sorry\"\n", "near_miss"),
            (
                "[[unanswerable]]\nkind = \"off_topic\"\nquestion = \"q\"\nrefusal = \"抱歉\"\n",
                "must start with \"Sorry\"",
            ),
        ] {
            let (_d, kb, path) = kb_and_file(toml);
            let e = build_probe_set(&kb, &path).unwrap_err().to_string();
            assert!(e.contains("probe.toml") && e.contains(needle), "{e}");
        }
    }
}
