//! Atomic file and directory writes: readers never see half a file, and a failed or interrupted
//! run leaves the previous version in place.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `contents` to a temp file beside `path`, syncs it, then renames it over `path`.
pub fn write_file_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let err = |e| Error::io(path, e);
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(contents).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Fills a fresh temp directory beside `target` with `fill`, then moves it to `target`, replacing
/// any previous directory there. If `fill` fails, the temp directory is removed and `target` is
/// untouched.
pub fn write_dir_atomic<F>(target: &Path, fill: F) -> Result<PathBuf>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let parent = parent_of(target);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    fill(tmp.path())?;
    let tmp_path = tmp.keep();
    // A directory cannot be renamed over a non-empty one: move the old one aside first, so the
    // target name always points at a complete directory (or briefly at nothing).
    let mut old = None;
    if target.exists() {
        let aside = parent.join(format!(".{name}.old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(target, &aside).map_err(|e| Error::io(target, e))?;
        old = Some(aside);
    }
    if let Err(e) = std::fs::rename(&tmp_path, target) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        if let Some(aside) = &old {
            let _ = std::fs::rename(aside, target);
        }
        return Err(Error::io(target, e));
    }
    if let Some(aside) = old {
        std::fs::remove_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
    }
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_is_replaced_whole_and_failures_leave_it_alone() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("final_model");
        write_dir_atomic(&target, |d| write_file_atomic(&d.join("a"), b"1")).unwrap();
        write_dir_atomic(&target, |d| write_file_atomic(&d.join("b"), b"2")).unwrap();
        assert!(!target.join("a").exists());
        assert_eq!(std::fs::read(target.join("b")).unwrap(), b"2");
        let failed = write_dir_atomic(&target, |_| Err(Error::NoData("boom".into())));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(target.join("b")).unwrap(), b"2");
        // Only the target is left: no temp or aside directories.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
