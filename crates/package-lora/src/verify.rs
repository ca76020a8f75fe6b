//! Checking a package against its own manifest: every file present, nothing extra, every hash
//! and size equal, and every member a plain file at the top level.
//!
//! The manifest travels inside the archive, so anyone can write one that lists `../../x` with
//! its true hash: member names and types are checked on their own, whatever the manifest says.
//! A member that is absolute, has a `..` or any directory part, or is a link, device or FIFO
//! fails verification. Nothing is ever extracted, so nothing can land outside a folder.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{Error, Result, read_err};
use crate::manifest::{FORMAT_VERSION, FileHash, MANIFEST_NAME, Manifest, sha256_reader};
use crate::pack::ADAPTER_CONFIG;

/// Reads the whole archive, hashing each entry, and compares with `manifest.json`. Every
/// problem is collected so one run names all bad files; any problem is an [`Error::Verify`].
pub fn verify(path: &Path) -> Result<Manifest> {
    let file = std::fs::File::open(path).map_err(read_err(path))?;
    let corrupt = |e: std::io::Error| Error::Invalid {
        path: path.to_path_buf(),
        message: format!("not a readable tar.gz ({e}); the file is corrupt or not a package"),
    };
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut actual: BTreeMap<String, FileHash> = BTreeMap::new();
    let mut manifest_bytes = None;
    let mut problems = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        // The name as stored (GNU and PAX long names included), checked before anything else.
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(why) = unsafe_name(&name) {
            problems.push(format!("{name}: {why}; a package holds plain top-level file names only"));
            continue;
        }
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            problems
                .push(format!("{name}: not a regular file ({}); a package holds regular files only", kind_name(kind)));
            continue;
        }
        if name == MANIFEST_NAME {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(corrupt)?;
            if manifest_bytes.replace(bytes).is_some() {
                problems.push(format!("{MANIFEST_NAME}: appears twice"));
            }
            continue;
        }
        let (sha256, size) = sha256_reader(&mut entry).map_err(corrupt)?;
        if actual.insert(name.clone(), FileHash { sha256, size }).is_some() {
            problems.push(format!("{name}: appears twice"));
        }
    }
    let Some(bytes) = manifest_bytes else {
        return Err(Error::Verify {
            path: path.to_path_buf(),
            problems: vec![format!("{MANIFEST_NAME}: missing; this is not a package-lora archive")],
        });
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Verify {
        path: path.to_path_buf(),
        problems: vec![format!("{MANIFEST_NAME}: unreadable ({e})")],
    })?;
    if manifest.format_version > FORMAT_VERSION {
        problems.push(format!(
            "{MANIFEST_NAME}: format_version {} is newer than this tool understands ({FORMAT_VERSION}); upgrade package-lora",
            manifest.format_version
        ));
    }
    let mut listed = manifest.files.clone();
    listed.retain(|name, _| match unsafe_name(name) {
        Some(why) => {
            problems.push(format!("{MANIFEST_NAME}: lists `{name}`, which {why}"));
            false
        }
        None => true,
    });
    problems.extend(compare(&listed, &actual));
    if !manifest.files.contains_key(ADAPTER_CONFIG) {
        problems.push(format!("{ADAPTER_CONFIG}: not listed in the manifest"));
    }
    if problems.is_empty() { Ok(manifest) } else { Err(Error::Verify { path: path.to_path_buf(), problems }) }
}

/// Why a member name could reach outside the folder it is unpacked in, or is not one of ours.
fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("has an empty name");
    }
    if name.starts_with('/') || name.starts_with('\\') || name.as_bytes().get(1) == Some(&b':') {
        return Some("is an absolute path");
    }
    let parts: Vec<&str> = name.split(['/', '\\']).collect();
    if parts.contains(&"..") {
        return Some("has a `..` component");
    }
    if parts.len() > 1 {
        return Some("is in a directory");
    }
    if name == "." {
        return Some("is not a file name");
    }
    None
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char | tar::EntryType::Block => "a device",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::Directory => "a directory",
        _ => "a special entry",
    }
}

/// One line per missing, extra or altered file.
fn compare(expected: &BTreeMap<String, FileHash>, actual: &BTreeMap<String, FileHash>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, want) in expected {
        match actual.get(name) {
            None => problems.push(format!("{name}: missing from the archive")),
            Some(got) if got.sha256 != want.sha256 || got.size != want.size => problems.push(format!(
                "{name}: content changed (manifest sha256 {} / {} bytes, archive sha256 {} / {} bytes)",
                want.sha256, want.size, got.sha256, got.size
            )),
            Some(_) => {}
        }
    }
    for name in actual.keys().filter(|n| !expected.contains_key(*n)) {
        problems.push(format!("{name}: extra file, not listed in the manifest"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str, size: u64) -> FileHash {
        FileHash { sha256: s.into(), size }
    }

    #[test]
    fn only_plain_top_level_names_are_safe() {
        for name in ["adapter_config.json", "README.md", "a..b"] {
            assert_eq!(unsafe_name(name), None, "{name}");
        }
        for (name, why) in [
            ("../../x", "`..`"),
            ("/abs/path", "absolute"),
            ("sub/../../x", "`..`"),
            ("sub/x", "directory"),
            ("..\\x", "`..`"),
            ("C:x", "absolute"),
            ("", "empty"),
        ] {
            assert!(unsafe_name(name).is_some_and(|w| w.contains(why)), "{name}: {:?}", unsafe_name(name));
        }
    }

    #[test]
    fn compare_names_missing_extra_and_changed() {
        let want = BTreeMap::from([("a".to_string(), h("1", 1)), ("b".to_string(), h("2", 2))]);
        assert!(compare(&want, &want).is_empty());
        let got = BTreeMap::from([("a".to_string(), h("9", 1)), ("c".to_string(), h("3", 3))]);
        let p = compare(&want, &got);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("a: content changed"), "{p:?}");
        assert!(p[1].starts_with("b: missing"), "{p:?}");
        assert!(p[2].starts_with("c: extra"), "{p:?}");
        // Same hash but different size is a change too.
        let got = BTreeMap::from([("a".to_string(), h("1", 5)), ("b".to_string(), h("2", 2))]);
        assert_eq!(compare(&want, &got).len(), 1);
    }
}
