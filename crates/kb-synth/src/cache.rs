//! Generated text kept on disk, so an interrupted or repeated run only generates what is new.
//!
//! One JSON object a line, `{"key": <sha256 of the request>, "output": <text>}`, appended and
//! flushed as each batch finishes. The key covers the generator's identity, the prompt, the
//! seed and the decoding settings, so editing one KB entry regenerates only that entry's
//! questions, and another model or seed never reuses an answer.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::generator::Request;

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    output: String,
}

/// The cache file and what it holds.
#[derive(Debug)]
pub struct Cache {
    path: Option<PathBuf>,
    entries: HashMap<String, String>,
    file: Option<File>,
}

impl Cache {
    /// A cache that keeps nothing.
    pub fn none() -> Cache {
        Cache { path: None, entries: HashMap::new(), file: None }
    }

    /// Opens (or starts) the cache at `path`. A last line cut short by an interrupted run is
    /// ignored; any other unreadable line is an error naming the line.
    pub fn open(path: &Path) -> Result<Cache> {
        let mut entries = HashMap::new();
        if path.exists() {
            let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .collect::<std::io::Result<_>>()
                .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
            let last = lines.len();
            for (i, line) in lines.iter().enumerate() {
                match serde_json::from_str::<Line>(line) {
                    Ok(l) => {
                        entries.insert(l.key, l.output);
                    }
                    Err(_) if i + 1 == last => tracing::warn!("{}: ignoring a cut-off last line", path.display()),
                    Err(e) => {
                        return Err(Error::Cache { path: path.to_path_buf(), line: i + 1, message: e.to_string() });
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Cache { path: Some(path.to_path_buf()), entries, file: Some(file) })
    }

    /// How many answers it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Records answers and flushes them to disk.
    pub fn put(&mut self, answers: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        for (key, output) in answers {
            if let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) {
                let line = serde_json::to_string(&Line { key: key.clone(), output: output.clone() })
                    .expect("a string pair always serializes");
                writeln!(file, "{line}").map_err(|source| Error::Io { path: path.clone(), source })?;
            }
            self.entries.insert(key, output);
        }
        if let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_ref()) {
            file.flush().map_err(|source| Error::Io { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// The cache key of a request to the generator named `identity`.
pub fn key(identity: &str, request: &Request) -> String {
    let mut h = Sha256::new();
    for part in [identity, &request.system, &request.user] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(request.seed.to_le_bytes());
    h.update(request.temperature.to_le_bytes());
    h.update((request.max_new_tokens as u64).to_le_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, seed: u64) -> Request {
        Request { system: "s".into(), user: user.into(), seed, temperature: 0.8, max_new_tokens: 10 }
    }

    #[test]
    fn keys_change_with_every_part() {
        let k = key("m", &req("u", 1));
        assert_eq!(k, key("m", &req("u", 1)));
        assert_ne!(k, key("m2", &req("u", 1)));
        assert_ne!(k, key("m", &req("u2", 1)));
        assert_ne!(k, key("m", &req("u", 2)));
    }

    #[test]
    fn answers_survive_reopening_and_a_cut_off_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = Cache::open(&path).unwrap();
        c.put([("a".to_string(), "one".to_string()), ("b".to_string(), "二".to_string())]).unwrap();
        drop(c);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"key\": \"c\", \"outp").unwrap();
        let c = Cache::open(&path).unwrap();
        assert_eq!((c.get("a"), c.get("b"), c.get("c")), (Some("one"), Some("二"), None));
    }

    #[test]
    fn a_broken_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        std::fs::write(&path, "not json\n{\"key\":\"a\",\"output\":\"x\"}\n").unwrap();
        let err = Cache::open(&path).unwrap_err().to_string();
        assert!(err.contains("cache.jsonl") && err.contains(":1:"), "{err}");
    }
}
