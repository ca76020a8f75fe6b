//! Atomic directory writes through the workspace's one writer ([`kb_dataset::AtomicDir`]; files
//! go through [`kb_dataset::write_atomic`]): readers never see half a directory, a failed or
//! interrupted run leaves the previous version in place, and outputs get the umask's mode; and
//! reading a checkpoint's tensors back.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};

/// Fills a fresh temp directory beside `target` with `fill`, then moves it to `target`, replacing
/// any previous directory there. If `fill` fails, the temp directory is removed and `target` is
/// untouched.
pub fn write_dir_atomic<F>(target: &Path, fill: F) -> Result<PathBuf>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let dir = kb_dataset::AtomicDir::create(target)?;
    fill(dir.path())?;
    Ok(dir.commit()?)
}

/// Reads a checkpoint's safetensors file; a missing or damaged one is named (candle's own
/// errors do not say which file).
pub(crate) fn load_tensors(
    path: &Path,
    device: &Device,
) -> Result<std::collections::HashMap<String, candle_core::Tensor>> {
    if !path.is_file() {
        return Err(Error::checkpoint(
            path,
            "missing: the checkpoint is incomplete; resume from another checkpoint-<step>/ or start over with --overwrite",
        ));
    }
    candle_core::safetensors::load(path, device).map_err(|e| {
        Error::checkpoint(
            path,
            format!(
                "not a readable safetensors file ({e}); the checkpoint is damaged: resume from another \
                 checkpoint-<step>/ or start over with --overwrite"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn dir_is_replaced_whole_and_failures_leave_it_alone() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("final_model");
        write_dir_atomic(&target, |d| Ok(kb_dataset::write_atomic(&d.join("a"), b"1")?)).unwrap();
        write_dir_atomic(&target, |d| Ok(kb_dataset::write_atomic(&d.join("b"), b"2")?)).unwrap();
        assert!(!target.join("a").exists());
        assert_eq!(std::fs::read(target.join("b")).unwrap(), b"2");
        let failed = write_dir_atomic(&target, |_| Err(Error::NoData("boom".into())));
        assert!(failed.is_err());
        assert_eq!(std::fs::read(target.join("b")).unwrap(), b"2");
        // Only the target is left: no temp or aside directories.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
