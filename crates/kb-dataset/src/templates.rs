//! Question templates (`data/questions.toml`): per KB doc a topic name and question pools
//! (training by style, eval, augment), plus unanswerable questions with their refusals.
//!
//! The pools are disjoint on purpose: eval questions must never be trained on, and the augment
//! pool is held back for targeted retraining. The file format is documented at the top of
//! `data/questions.toml`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::io::read_text;
use crate::kb::{Kb, KbEntry, normalize};
use crate::language::Language;

/// A training question and its style (`short`, `full`, `formal`, `mixed`, or any name the file uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyledQuestion {
    pub style: String,
    pub question: String,
}

/// The question pools of one KB doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocTemplates {
    /// Short stable name (`vpn`, `mfa`, ...) used by rules and diagnosis.
    pub topic: String,
    pub doc_id: String,
    /// Training questions, grouped by style (styles in name order, questions in file order).
    pub train: Vec<StyledQuestion>,
    /// Held-out evaluation questions.
    pub eval: Vec<String>,
    /// Reserve for targeted extra samples; never used by the base train or eval sets.
    pub augment: Vec<String>,
}

/// A question the KB does not answer, with the refusal to learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswerable {
    pub question: String,
    pub refusal: String,
}

/// The three unanswerable pools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnanswerablePools {
    pub train: Vec<Unanswerable>,
    pub eval: Vec<Unanswerable>,
    pub augment: Vec<Unanswerable>,
}

/// Validated templates; docs are in KB order.
#[derive(Debug, Clone)]
pub struct Templates {
    path: PathBuf,
    docs: Vec<DocTemplates>,
    unanswerable: UnanswerablePools,
}

type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    doc: Vec<RawDoc>,
    #[serde(default)]
    unanswerable: RawUnanswerable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    topic: Text,
    doc_id: Text,
    #[serde(default)]
    train: BTreeMap<String, Vec<Text>>,
    #[serde(default)]
    eval: Vec<Text>,
    #[serde(default)]
    augment: Vec<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUnanswerable {
    #[serde(default)]
    train: Vec<RawRefusal>,
    #[serde(default)]
    eval: Vec<RawRefusal>,
    #[serde(default)]
    augment: Vec<RawRefusal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRefusal {
    question: Text,
    refusal: Text,
}

impl Templates {
    /// Loads and validates a templates file against `kb`. Errors name the file, the line and the
    /// doc or entry: unknown or duplicate doc_id, duplicate topic, KB docs without templates,
    /// empty pools or questions, refusals not starting with `抱歉`, a question in two places.
    pub fn load(path: impl AsRef<Path>, kb: &Kb) -> Result<Templates> {
        let path = path.as_ref();
        let source = read_text(path)?;
        let raw: RawFile =
            toml::from_str(&source).map_err(|e| Error::Toml { path: path.to_path_buf(), message: e.to_string() })?;
        Checker { path, source: &source, seen: HashMap::new() }.check(raw, kb)
    }

    /// The file the templates came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Per-doc pools, in KB order.
    pub fn docs(&self) -> &[DocTemplates] {
        &self.docs
    }

    /// The pools of one doc.
    pub fn doc(&self, doc_id: &str) -> Option<&DocTemplates> {
        self.docs.iter().find(|d| d.doc_id == doc_id)
    }

    /// The topic name of a doc (`vpn`, `mfa`, ...).
    pub fn topic_of(&self, doc_id: &str) -> Option<&str> {
        self.doc(doc_id).map(|d| d.topic.as_str())
    }

    /// The doc id of a topic name.
    pub fn doc_id_of(&self, topic: &str) -> Option<&str> {
        self.docs.iter().find(|d| d.topic == topic).map(|d| d.doc_id.as_str())
    }

    /// The KB entry of one of these docs; an error when `kb` is not the KB the templates were
    /// loaded with.
    pub fn kb_entry<'k>(&self, kb: &'k Kb, doc_id: &str) -> Result<&'k KbEntry> {
        kb.get(doc_id).ok_or_else(|| Error::KbMismatch {
            templates: self.path.clone(),
            kb: kb.path().to_path_buf(),
            doc_id: doc_id.to_string(),
        })
    }

    /// Unanswerable questions and refusals.
    pub fn unanswerable(&self) -> &UnanswerablePools {
        &self.unanswerable
    }

    /// Every training style used by any doc, in name order.
    pub fn styles(&self) -> Vec<String> {
        let mut styles: Vec<String> = self.docs.iter().flat_map(|d| d.train.iter().map(|q| q.style.clone())).collect();
        styles.sort();
        styles.dedup();
        styles
    }
}

/// Validation state: the source (to turn spans into line numbers) and where each normalized
/// question was first seen (to catch a question in two pools).
struct Checker<'a> {
    path: &'a Path,
    source: &'a str,
    seen: HashMap<String, String>,
}

impl Checker<'_> {
    fn line(&self, t: &Text) -> usize {
        let end = t.span().start.min(self.source.len());
        self.source.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn err(&self, at: &Text, what: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Template {
            path: self.path.to_path_buf(),
            location: format!("line {}, {}", self.line(at), what.into()),
            message: message.into(),
        }
    }

    fn general(&self, what: &str, message: String) -> Error {
        Error::Template { path: self.path.to_path_buf(), location: what.to_string(), message }
    }

    /// Checks one question (non-empty, not seen before) and returns it trimmed.
    fn question(&mut self, q: &Text, pool: String) -> Result<String> {
        let text = q.get_ref().trim();
        if text.is_empty() {
            return Err(self.err(q, &pool, "empty question"));
        }
        let key = normalize(text);
        if let Some(first) = self.seen.get(&key) {
            return Err(self.err(
                q,
                &pool,
                format!("question {text:?} is already in {first}; a question may be in only one pool"),
            ));
        }
        self.seen.insert(key, format!("{pool} (line {})", self.line(q)));
        Ok(text.to_string())
    }

    fn check(mut self, raw: RawFile, kb: &Kb) -> Result<Templates> {
        if raw.doc.is_empty() {
            return Err(self.general("[[doc]]", "no [[doc]] entries; add one per KB entry".into()));
        }
        let mut docs: Vec<DocTemplates> = Vec::new();
        let mut topic_lines: HashMap<String, usize> = HashMap::new();
        for d in &raw.doc {
            let topic = d.topic.get_ref().trim().to_string();
            let name = format!("doc {topic:?}");
            if topic.is_empty() || topic.chars().any(char::is_whitespace) {
                return Err(self.err(&d.topic, &name, "topic must be a non-empty name without spaces, e.g. \"vpn\""));
            }
            if let Some(first) = topic_lines.insert(topic.clone(), self.line(&d.topic)) {
                return Err(self.err(&d.topic, &name, format!("duplicate topic (first used on line {first})")));
            }
            let doc_id = d.doc_id.get_ref().trim().to_string();
            if kb.get(&doc_id).is_none() {
                let known: Vec<&str> = kb.entries().iter().map(|e| e.doc_id.as_str()).collect();
                return Err(self.err(
                    &d.doc_id,
                    &name,
                    format!("doc_id {doc_id} is not in the KB {} (known: {})", kb.path().display(), known.join(", ")),
                ));
            }
            if let Some(other) = docs.iter().find(|o| o.doc_id == doc_id) {
                return Err(self.err(
                    &d.doc_id,
                    &name,
                    format!("doc_id {doc_id} is already used by topic {:?}", other.topic),
                ));
            }
            if d.train.is_empty() {
                return Err(self.err(
                    &d.topic,
                    &name,
                    "no training questions; add a [doc.train] table with style = [questions]",
                ));
            }
            let mut train = Vec::new();
            for (style, questions) in &d.train {
                if questions.is_empty() {
                    return Err(self.err(
                        &d.topic,
                        &name,
                        format!("training style {style:?} is empty; add questions or remove it"),
                    ));
                }
                for q in questions {
                    let question = self.question(q, format!("{name} train.{style}"))?;
                    train.push(StyledQuestion { style: style.clone(), question });
                }
            }
            if d.eval.is_empty() {
                return Err(self.err(&d.topic, &name, "no eval questions; add `eval = [...]`"));
            }
            let eval = d.eval.iter().map(|q| self.question(q, format!("{name} eval"))).collect::<Result<_>>()?;
            let augment =
                d.augment.iter().map(|q| self.question(q, format!("{name} augment"))).collect::<Result<_>>()?;
            docs.push(DocTemplates { topic, doc_id, train, eval, augment });
        }
        for (index, entry) in kb.entries().iter().enumerate() {
            if !docs.iter().any(|d| d.doc_id == entry.doc_id) {
                return Err(self.general(
                    "[[doc]]",
                    format!(
                        "KB entry {} (entry {} of {}) has no [[doc]] entry; add its questions",
                        entry.doc_id,
                        index + 1,
                        kb.path().display()
                    ),
                ));
            }
        }
        let kb_index = |id: &str| kb.entries().iter().position(|e| e.doc_id == id);
        docs.sort_by_key(|d| kb_index(&d.doc_id));

        let u = &raw.unanswerable;
        let unanswerable = UnanswerablePools {
            train: self.refusals(&u.train, "unanswerable.train", kb.language())?,
            eval: self.refusals(&u.eval, "unanswerable.eval", kb.language())?,
            augment: self.refusals(&u.augment, "unanswerable.augment", kb.language())?,
        };
        Ok(Templates { path: self.path.to_path_buf(), docs, unanswerable })
    }

    fn refusals(&mut self, pool: &[RawRefusal], name: &str, lang: Language) -> Result<Vec<Unanswerable>> {
        let prefix = lang.refusal_prefix();
        let mut out = Vec::new();
        for (i, r) in pool.iter().enumerate() {
            let entry = format!("{name} entry {}", i + 1);
            let question = self.question(&r.question, entry.clone())?;
            let refusal = r.refusal.get_ref().trim().to_string();
            if !refusal.starts_with(prefix) {
                return Err(self.err(&r.refusal, &entry, format!("refusal {refusal:?} must start with {prefix:?}")));
            }
            out.push(Unanswerable { question, refusal });
        }
        Ok(out)
    }
}
