//! The knowledge base: `data/kb.jsonl`, one policy entry a line, with ids derived from the text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::{read_lines, to_python_json};
use crate::language::Language;
use crate::output::write_atomic;

/// One KB entry. `doc_id` and `text_hash` are derived from `text` (see [`doc_id_for`],
/// [`text_hash`]), so editing a text changes its id and stale references are caught.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbEntry {
    pub doc_id: String,
    pub text: String,
    pub text_hash: String,
}

impl KbEntry {
    /// Builds an entry from its text, computing the id and hash.
    pub fn from_text(text: &str) -> Self {
        KbEntry { doc_id: doc_id_for(text), text: text.to_string(), text_hash: text_hash(text) }
    }
}

/// Trims and folds every run of whitespace to one ASCII space: the form ids are hashed from, so
/// re-wrapping a text does not change its id.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Full lowercase hex SHA-256 of the normalized text.
pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(normalize(text).as_bytes()))
}

/// `doc_` + the first 8 hex digits of [`text_hash`].
pub fn doc_id_for(text: &str) -> String {
    format!("doc_{}", &text_hash(text)[..8])
}

/// The loaded knowledge base, in file order.
#[derive(Debug, Clone)]
pub struct Kb {
    path: PathBuf,
    entries: Vec<KbEntry>,
}

/// A line as written; ids are optional so a user can start from texts alone.
#[derive(Deserialize)]
struct RawEntry {
    doc_id: Option<String>,
    text: Option<String>,
    text_hash: Option<String>,
}

/// Entries longer than this (in characters) are warned about: an answer quotes its entry, and
/// answers are generated up to a few hundred tokens.
pub const LONG_ENTRY_CHARS: usize = 500;

impl Kb {
    /// Loads and checks a KB file: valid UTF-8 JSON lines, a non-empty `text` on each, ids and
    /// hashes matching the text (computed when absent), no duplicate ids, at least one entry.
    pub fn load(path: impl AsRef<Path>) -> Result<Kb> {
        let path = path.as_ref();
        let mut entries = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (line, content) in read_lines(path)? {
            let raw: RawEntry = serde_json::from_str(&content).map_err(|e| Error::Json {
                path: path.to_path_buf(),
                line,
                message: e.to_string(),
            })?;
            let entry = check_entry(path, line, raw)?;
            if let Some(&first_line) = seen.get(&entry.doc_id) {
                return Err(Error::DuplicateDocId { path: path.to_path_buf(), line, first_line, doc_id: entry.doc_id });
            }
            seen.insert(entry.doc_id.clone(), line);
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(Error::EmptyKb { path: path.to_path_buf() });
        }
        let kb = Kb { path: path.to_path_buf(), entries };
        for warning in kb.warnings() {
            tracing::warn!("{warning}");
        }
        Ok(kb)
    }

    /// What a KB that loads may still get wrong: a single entry (nothing for retrieval to tell
    /// apart, so every question lands on it), or entries too long to be quoted in one answer.
    pub fn warnings(&self) -> Vec<String> {
        let path = self.path.display();
        let mut out = Vec::new();
        if self.entries.len() == 1 {
            out.push(format!(
                "{path}: only one entry: every question, answerable or not, is closest to it, so refusals \
                 are learned from off-topic questions alone; a FAQ bot needs several entries"
            ));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let chars = e.text.chars().count();
            if chars > LONG_ENTRY_CHARS {
                out.push(format!(
                    "{path}: entry {} ({}) is {chars} characters: an answer quotes its whole entry, and one \
                     over {LONG_ENTRY_CHARS} characters is cut off at the answer length limit and \
                     makes long training samples; split it into entries of one fact each",
                    i + 1,
                    e.doc_id
                ));
            }
        }
        out
    }

    /// Builds a KB from entries in memory (tests, tools); ids are not re-checked.
    pub fn from_entries(path: impl Into<PathBuf>, entries: Vec<KbEntry>) -> Kb {
        Kb { path: path.into(), entries }
    }

    /// The file this KB was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[KbEntry] {
        &self.entries
    }

    /// The language of the entries' texts, which answers and refusals follow.
    pub fn language(&self) -> Language {
        Language::detect(self.entries.iter().map(|e| e.text.as_str()))
    }

    /// The entry with this id.
    pub fn get(&self, doc_id: &str) -> Option<&KbEntry> {
        self.entries.iter().find(|e| e.doc_id == doc_id)
    }

    /// Writes the KB as JSON lines (atomically), ids and hashes included.
    pub fn write_jsonl(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&to_python_json(e));
            out.push('\n');
        }
        write_atomic(path.as_ref(), out.as_bytes())
    }
}

fn check_entry(path: &Path, line: usize, raw: RawEntry) -> Result<KbEntry> {
    let invalid = |field, message: String| Error::InvalidField { path: path.to_path_buf(), line, field, message };
    let text = raw.text.ok_or_else(|| Error::MissingField { path: path.to_path_buf(), line, field: "text" })?;
    if text.trim().is_empty() {
        return Err(invalid("text", "it is empty".into()));
    }
    let entry = KbEntry::from_text(&text);
    if let Some(id) = raw.doc_id
        && id != entry.doc_id
    {
        return Err(invalid(
            "doc_id",
            format!(
                "{id} does not match the text (expected {}); fix it or drop the field to have it computed",
                entry.doc_id
            ),
        ));
    }
    if let Some(hash) = raw.text_hash
        && hash != entry.text_hash
    {
        return Err(invalid(
            "text_hash",
            format!(
                "{hash} does not match the text (expected {}); fix it or drop the field to have it computed",
                entry.text_hash
            ),
        ));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, body: &str) -> PathBuf {
        let p = dir.path().join("kb.jsonl");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn normalize_trims_and_folds_whitespace() {
        assert_eq!(normalize("  a \t\n b  c\u{3000}d "), "a b c d");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn hash_is_sha256_of_normalized_text() {
        // sha256("abc"), a published test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(text_hash("abc"), abc);
        assert_eq!(text_hash("  abc\n"), abc);
        assert_eq!(doc_id_for(" abc "), "doc_ba7816bf");
        assert_ne!(doc_id_for("a b"), doc_id_for("ab"));
        assert_eq!(doc_id_for("a  b"), doc_id_for("a\nb"));
    }

    #[test]
    fn load_computes_missing_ids_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "{\"text\": \"甲\"}\n\n{\"text\": \"乙\"}\n");
        let kb = Kb::load(&p).unwrap();
        assert_eq!(kb.entries().len(), 2);
        assert_eq!(kb.entries()[0].doc_id, doc_id_for("甲"));
        assert_eq!(kb.get(&doc_id_for("乙")).unwrap().text, "乙");
        assert!(kb.get("doc_00000000").is_none());
    }

    #[test]
    fn write_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::from_entries("x", vec![KbEntry::from_text("甲 乙"), KbEntry::from_text("丙")]);
        let p = dir.path().join("out.jsonl");
        kb.write_jsonl(&p).unwrap();
        assert_eq!(Kb::load(&p).unwrap().entries(), kb.entries());
    }

    fn load_err(body: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, body);
        let e = Kb::load(&p).unwrap_err().to_string();
        assert!(e.contains("kb.jsonl"), "error should name the file: {e}");
        e
    }

    #[test]
    fn malformed_json_names_line() {
        let e = load_err("{\"text\": \"a\"}\n{\"text\": \"b\"\n");
        assert!(e.contains("kb.jsonl:2: malformed JSON"), "{e}");
    }

    #[test]
    fn missing_text_names_line_and_field() {
        let e = load_err("{\"text\": \"a\"}\n{\"doc_id\": \"doc_1\"}\n");
        assert!(e.contains("kb.jsonl:2: missing field `text`"), "{e}");
    }

    #[test]
    fn empty_text_is_rejected() {
        let e = load_err("{\"text\": \"  \"}\n");
        assert!(e.contains("kb.jsonl:1: field `text`"), "{e}");
    }

    #[test]
    fn one_entry_and_long_entries_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let long = "字".repeat(LONG_ENTRY_CHARS + 1);
        let kb = Kb::load(write(&dir, &format!("{{\"text\": \"短\"}}\n{{\"text\": \"{long}\"}}\n"))).unwrap();
        let w = kb.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("kb.jsonl: entry 2 (doc_") && w[0].contains("501 characters"), "{w:?}");
        let one = Kb::load(write(&dir, "{\"text\": \"短\"}\n")).unwrap();
        assert!(one.warnings()[0].contains("only one entry"), "{:?}", one.warnings());
        let fine = Kb::load(write(&dir, "{\"text\": \"短\"}\n{\"text\": \"長\"}\n")).unwrap();
        assert!(fine.warnings().is_empty());
    }

    #[test]
    fn empty_kb_is_rejected() {
        let e = load_err("\n  \n");
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn duplicate_doc_id_names_both_lines() {
        let e = load_err("{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \" a\"}\n");
        assert!(e.contains("kb.jsonl:3: duplicate doc_id"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn wrong_id_or_hash_is_rejected_with_expected_value() {
        let e = load_err("{\"doc_id\": \"doc_deadbeef\", \"text\": \"abc\"}\n");
        assert!(e.contains("kb.jsonl:1: field `doc_id`"), "{e}");
        assert!(e.contains("doc_ba7816bf"), "{e}");
        let e = load_err("{\"text\": \"abc\", \"text_hash\": \"00\"}\n");
        assert!(e.contains("field `text_hash`"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.jsonl");
        std::fs::write(&p, b"{\"text\": \"a\"}\n{\"text\": \"\xc3\x28\"}\n").unwrap();
        let e = Kb::load(&p).unwrap_err().to_string();
        assert!(e.contains("kb.jsonl:2: not valid UTF-8"), "{e}");
    }
}
