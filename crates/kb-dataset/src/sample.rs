//! Data-set lines: `{"text": <ChatML>, "doc_id": "doc_…" | null, "style": "..."}`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chatml::{chatml, prompt, split_chatml};
use crate::error::{Error, Result};
use crate::io::{read_lines, to_python_json};
use crate::output::write_atomic;

/// Style of unanswerable samples (training and eval).
pub const STYLE_UNANSWERABLE: &str = "unanswerable";
/// Style of answerable eval samples.
pub const STYLE_EVAL: &str = "eval";

/// One training or eval sample, from the KB to the loss. `doc_id` is `None` for unanswerable
/// questions.
///
/// On disk it is one JSON line `{"text": <ChatML>, "doc_id": …, "style": …}` (the reference
/// pipeline's layout, see [`Sample::text`]); [`read_jsonl`] and [`write_jsonl`] convert, so no
/// other code writes or parses ChatML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "Line")]
pub struct Sample {
    /// The user turn.
    pub question: String,
    /// The assistant turn the model must learn (without the closing `<|im_end|>`).
    pub answer: String,
    pub doc_id: Option<String>,
    /// Question style (`short`, `full`, `formal`, `mixed`, `eval`, `unanswerable`, ...).
    pub style: String,
}

impl Sample {
    /// Builds a sample from a question and its reply.
    pub fn new(question: &str, answer: &str, doc_id: Option<&str>, style: &str) -> Sample {
        Sample {
            question: question.to_string(),
            answer: answer.to_string(),
            doc_id: doc_id.map(str::to_string),
            style: style.to_string(),
        }
    }

    /// The whole sample as ChatML: [`Sample::prompt`] followed by the answer and `<|im_end|>`.
    pub fn text(&self) -> String {
        chatml(&self.question, &self.answer)
    }

    /// The generation prompt: ChatML up to where the assistant's reply starts; a prefix of
    /// [`Sample::text`].
    pub fn prompt(&self) -> String {
        prompt(&self.question)
    }

    /// Whether the sample is about no KB entry.
    pub fn is_unanswerable(&self) -> bool {
        self.doc_id.is_none()
    }
}

/// A data-set line as written; field order is the file's.
#[derive(Serialize)]
struct Line {
    text: String,
    doc_id: Option<String>,
    style: Option<String>,
}

impl From<Sample> for Line {
    fn from(s: Sample) -> Line {
        Line { text: s.text(), doc_id: s.doc_id, style: Some(s.style) }
    }
}

impl TryFrom<Line> for Sample {
    type Error = String;

    fn try_from(line: Line) -> std::result::Result<Sample, String> {
        let (question, answer) = split_chatml(&line.text).ok_or_else(|| {
            "not a ChatML pair; expected \
             `<|im_start|>user\\n…<|im_end|>\\n<|im_start|>assistant\\n…<|im_end|>`"
                .to_string()
        })?;
        Ok(Sample {
            question: question.to_string(),
            answer: answer.to_string(),
            doc_id: line.doc_id,
            style: line.style.unwrap_or_default(),
        })
    }
}

/// A line as read, written by us or by the reference pipeline (which may omit `doc_id`/`style`).
#[derive(Deserialize)]
struct RawSample {
    text: Option<String>,
    #[serde(default)]
    doc_id: Option<String>,
    #[serde(default)]
    style: Option<String>,
}

/// Reads a JSONL data set; every error names the file and line.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<Sample>> {
    let path = path.as_ref();
    let mut samples = Vec::new();
    for (line, content) in read_lines(path)? {
        let raw: RawSample = serde_json::from_str(&content).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            line,
            message: e.to_string(),
        })?;
        let text = raw.text.ok_or_else(|| Error::MissingField { path: path.to_path_buf(), line, field: "text" })?;
        let sample = Sample::try_from(Line { text, doc_id: raw.doc_id, style: raw.style })
            .map_err(|message| Error::InvalidField { path: path.to_path_buf(), line, field: "text", message })?;
        samples.push(sample);
    }
    Ok(samples)
}

/// Checks that every sample's doc_id names an entry of `kb`; `samples` must be what
/// [`read_jsonl`] read from `path`, so an unknown doc_id is reported with its line.
pub fn check_doc_ids(samples: &[Sample], kb: &crate::Kb, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let Some(bad) = samples.iter().position(|s| s.doc_id.as_deref().is_some_and(|d| kb.get(d).is_none())) else {
        return Ok(());
    };
    let line = read_lines(path).ok().and_then(|l| l.get(bad).map(|(n, _)| *n)).unwrap_or(bad + 1);
    Err(Error::InvalidField {
        path: path.to_path_buf(),
        line,
        field: "doc_id",
        message: format!(
            "unknown doc_id `{}`: no such entry in {}; regenerate the set with gen-eval-set from this KB",
            samples[bad].doc_id.as_deref().unwrap_or_default(),
            kb.path().display()
        ),
    })
}

/// Serializes samples as JSON lines (Python `json.dumps(..., ensure_ascii=False)` layout).
pub fn to_jsonl(samples: &[Sample]) -> String {
    let mut out = String::new();
    for s in samples {
        out.push_str(&to_python_json(s));
        out.push('\n');
    }
    out
}

/// Writes samples to `path` atomically.
pub fn write_jsonl(path: impl AsRef<Path>, samples: &[Sample]) -> Result<()> {
    write_atomic(path.as_ref(), to_jsonl(samples).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, body: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join("train.jsonl");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn unknown_doc_ids_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let kb = crate::Kb::from_entries("kb.jsonl", vec![crate::KbEntry::from_text("VPN 規範")]);
        let known = kb.entries()[0].doc_id.clone();
        let samples = vec![
            Sample::new("q1", "依據公司規範:VPN 規範", Some(&known), "eval"),
            Sample::new("q2", "抱歉", None, STYLE_UNANSWERABLE),
            Sample::new("q3", "依據公司規範:x", Some("doc_gone"), "eval"),
        ];
        let p = dir.path().join("eval.jsonl");
        let text = to_jsonl(&samples);
        std::fs::write(&p, text.replacen('\n', "\n\n", 1)).unwrap(); // a blank line 2
        let samples = read_jsonl(&p).unwrap();
        let e = check_doc_ids(&samples, &kb, &p).unwrap_err().to_string();
        assert!(e.contains("eval.jsonl:4") && e.contains("doc_gone"), "{e}");
        assert!(check_doc_ids(&samples[..2], &kb, &p).is_ok());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let samples = vec![
            Sample::new("VPN 怎麼連", "依據公司規範:x", Some("doc_12345678"), "short"),
            Sample::new("薪水何時發", "抱歉,請洽 HR。", None, STYLE_UNANSWERABLE),
        ];
        let p = dir.path().join("out.jsonl");
        write_jsonl(&p, &samples).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(
            "{\"text\": \"<|im_start|>user\\nVPN 怎麼連<|im_end|>\\n<|im_start|>assistant\\n依據公司規範:x<|im_end|>\", \"doc_id\": \"doc_12345678\", \"style\": \"short\"}\n"
        ), "{text}");
        assert!(text.contains("\"doc_id\": null"));
        let back = read_jsonl(&p).unwrap();
        assert_eq!(back, samples);
        assert_eq!(back[0].question, "VPN 怎麼連");
        assert_eq!(back[1].answer, "抱歉,請洽 HR。");
        assert_eq!(back[0].text(), chatml("VPN 怎麼連", "依據公司規範:x"));
        assert!(back[0].text().starts_with(&back[0].prompt()));
        assert!(back[1].is_unanswerable() && !back[0].is_unanswerable());
    }

    #[test]
    fn reads_reference_lines_without_doc_id_or_style() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::json!({"text": chatml("q", "a")}).to_string();
        let p = file(&dir, line.as_bytes());
        let s = read_jsonl(&p).unwrap();
        assert_eq!(s[0].doc_id, None);
        assert_eq!(s[0].style, "");
    }

    fn err(body: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, body);
        read_jsonl(&p).unwrap_err().to_string()
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let good = serde_json::json!({"text": chatml("q", "a")}).to_string();
        let e = err(format!("{good}\n{{\"text\": \n").as_bytes());
        assert!(e.contains("train.jsonl:2: malformed JSON"), "{e}");
    }

    #[test]
    fn missing_text_names_file_line_and_field() {
        let e = err(b"{\"doc_id\": null, \"style\": \"x\"}\n");
        assert!(e.contains("train.jsonl:1: missing field `text`"), "{e}");
    }

    #[test]
    fn text_without_markers_is_rejected() {
        let e = err(b"\n{\"text\": \"hello\"}\n");
        assert!(e.contains("train.jsonl:2: field `text`"), "{e}");
        assert!(e.contains("ChatML"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_file_and_line() {
        let e = err(b"{\"text\": \"\xff\"}\n");
        assert!(e.contains("train.jsonl:1: not valid UTF-8"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let e = read_jsonl("/nonexistent/dir/x.jsonl").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/dir/x.jsonl"), "{e}");
    }
}
