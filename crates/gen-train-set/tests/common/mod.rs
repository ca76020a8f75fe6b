//! What the `gen-train-set` tests share: the repository's data and the binary run in a temp dir.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub fn repo_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// A temp dir with `data/kb.jsonl` and `data/questions.toml` copied from the repository.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for f in ["kb.jsonl", "questions.toml"] {
        std::fs::copy(repo_data().join(f), dir.path().join("data").join(f)).unwrap();
    }
    dir
}

pub fn cmd(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("gen-train-set").unwrap();
    c.current_dir(dir);
    c
}
