//! File plumbing shared by the KB and the data sets: line-numbered UTF-8 reading and Python-style
//! JSON lines (writes go through [`crate::output`]).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Reads `path` and returns its non-blank lines with their 1-based line numbers.
///
/// UTF-8 is checked line by line (not for the whole file) so the error can say which line is bad.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let mut lines = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text = std::str::from_utf8(raw).map_err(|e| Error::InvalidUtf8 {
            path: path.to_path_buf(),
            line,
            byte: e.valid_up_to() + 1,
        })?;
        // A UTF-8 BOM (Windows editors) and CRLF endings are not content.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if !text.trim().is_empty() {
            lines.push((line, text.to_string()));
        }
    }
    Ok(lines)
}

/// Reads a whole UTF-8 text file, naming the line of the first invalid byte.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = &e.as_bytes()[..valid];
        let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = prefix.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        Error::InvalidUtf8 { path: path.to_path_buf(), line, byte: valid - line_start + 1 }
    })
}

/// Serializes like Python's `json.dumps(obj, ensure_ascii=False)`: `", "` and `": "` separators,
/// non-ASCII kept as is. Files we write then look like the reference pipeline's.
pub(crate) fn to_python_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Our types are plain structs of strings and numbers; serializing them cannot fail.
    value.serialize(&mut ser).expect("serializing a plain struct to JSON cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        text: String,
        doc_id: Option<String>,
        n: Vec<u32>,
    }

    #[test]
    fn python_json_matches_json_dumps_layout() {
        let row = Row { text: "依據\n\"x\"".into(), doc_id: None, n: vec![1, 2] };
        assert_eq!(to_python_json(&row), r#"{"text": "依據\n\"x\"", "doc_id": null, "n": [1, 2]}"#);
    }

    #[test]
    fn read_lines_skips_blanks_and_reports_bad_utf8_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, b"\xef\xbb\xbfone\r\n\n  \nfour").unwrap();
        let lines = read_lines(&p).unwrap();
        assert_eq!(lines, vec![(1, "one".to_string()), (4, "four".to_string())]);

        std::fs::write(&p, b"ok\nab\xffc\n").unwrap();
        match read_lines(&p) {
            Err(Error::InvalidUtf8 { line, byte, .. }) => assert_eq!((line, byte), (2, 3)),
            other => panic!("expected InvalidUtf8, got {other:?}"),
        }
    }

    #[test]
    fn read_text_reports_line_of_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.toml");
        std::fs::write(&p, b"a = 1\nb = \"\xfe\"\n").unwrap();
        let e = read_text(&p).unwrap_err();
        assert!(matches!(e, Error::InvalidUtf8 { line: 2, byte: 6, .. }), "{e:?}");
        assert!(e.to_string().contains("q.toml:2"), "{e}");
    }
}
