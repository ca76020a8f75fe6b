//! What the export tests share: the binary and its usual arguments.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;

use assert_cmd::Command;

pub fn export() -> Command {
    Command::cargo_bin("export-gguf").unwrap()
}

/// `--gguf BASE --adapter A --out O`: a merged export.
pub fn merged_args<'a>(base: &'a Path, adapter: &'a Path, out: &'a Path) -> [&'a OsStr; 6] {
    ["--gguf".as_ref(), base.as_os_str(), "--adapter".as_ref(), adapter.as_os_str(), "--out".as_ref(), out.as_os_str()]
}
