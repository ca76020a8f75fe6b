//! Writing a GGUF file atomically, through the workspace's one writer
//! ([`kb_dataset::AtomicFile`]): into a temporary file beside the target, renamed over it only
//! once complete, so a failed or interrupted export never leaves a half-written model behind.

use std::io::{BufWriter, Write};
use std::path::Path;

use candle_core::quantized::{QTensor, gguf_file};
use kb_dataset::AtomicFile;

use crate::error::{Error, Result};

/// An output file reserved before the (slow) export starts, so an unwritable `--out` fails at once.
pub struct AtomicOut {
    out: AtomicFile,
}

impl AtomicOut {
    /// Creates the temporary file in `path`'s directory, which must exist and be writable;
    /// `path` must be a regular file or a new name (a symlink's target is written).
    pub fn create(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::file(path, "is a directory; --out names the .gguf file to write"));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(Error::file(path, format!("cannot write here: directory {} does not exist", dir.display())));
        }
        Ok(Self { out: AtomicFile::create(path)? })
    }

    pub fn path(&self) -> &Path {
        self.out.path()
    }

    /// Writes the GGUF (v2, 32-byte alignment) and renames it into place; returns its size.
    pub fn write_gguf(mut self, metadata: &[(String, gguf_file::Value)], tensors: &[(String, QTensor)]) -> Result<u64> {
        let md: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
        let path = self.out.path().to_path_buf();
        {
            let mut w = BufWriter::with_capacity(1 << 20, self.out.file());
            gguf_file::write(&mut w, &md, &ts)
                .map_err(|e| Error::file(&path, format!("writing the GGUF failed: {e}")))?;
            w.flush().map_err(|e| Error::io(&path, e))?;
        }
        let size = self.out.file().metadata().map_err(|e| Error::io(&path, e))?.len();
        self.out.commit()?;
        Ok(size)
    }
}

/// Reads a GGUF header, saying which file failed and why.
pub(crate) fn read_header(path: &Path) -> Result<(std::fs::File, gguf_file::Content)> {
    let mut f = std::fs::File::open(path).map_err(crate::error::io(path))?;
    let ct = gguf_file::Content::read(&mut f).map_err(|e| {
        Error::file(
            path,
            format!(
                "not a GGUF file this tool can read: {e} (supported tensor types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)"
            ),
        )
    })?;
    Ok((f, ct))
}

/// The metadata sorted by key (`general.*` first, then the architecture's keys, then the
/// tokenizer's), without `general.alignment` unless it is the 32 bytes candle's writer uses.
pub(crate) fn sorted_metadata(
    metadata: impl IntoIterator<Item = (String, gguf_file::Value)>,
) -> Vec<(String, gguf_file::Value)> {
    let mut out: Vec<(String, gguf_file::Value)> =
        metadata.into_iter().filter(|(k, v)| k != "general.alignment" || v.to_u32().is_ok_and(|a| a == 32)).collect();
    out.sort_by(|a, b| {
        let rank = |k: &str| if k == "general.architecture" { 0 } else { 1 };
        (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Tensor};

    #[test]
    fn unwritable_outputs_fail_before_any_work() {
        let tmp = tempfile::tempdir().unwrap();
        let e = AtomicOut::create(&tmp.path().join("missing/x.gguf")).err().unwrap().to_string();
        assert!(e.contains("does not exist") && e.contains("x.gguf"), "{e}");
        let e = AtomicOut::create(tmp.path()).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_written_file_reads_back_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.gguf");
        std::fs::write(&path, b"old").unwrap();
        let out = AtomicOut::create(&path).unwrap();
        let t = Tensor::arange(0f32, 64., &Device::Cpu).unwrap().reshape((2, 32)).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        let md = sorted_metadata([
            ("z.key".to_string(), gguf_file::Value::U32(1)),
            ("general.architecture".to_string(), gguf_file::Value::String("qwen2".into())),
            ("general.alignment".to_string(), gguf_file::Value::U32(64)),
        ]);
        assert_eq!(md.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["general.architecture", "z.key"]);
        let size = out.write_gguf(&md, &[("w".to_string(), q)]).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        let (_, ct) = read_header(&path).unwrap();
        assert_eq!(ct.tensor_infos["w"].ggml_dtype, GgmlDType::Q8_0);
        assert_eq!(ct.tensor_infos["w"].shape.dims(), [2, 32]);
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = read_header(&tmp.path().join("nope.gguf")).err().unwrap().to_string();
        assert!(e.contains("nope.gguf"), "{e}");
    }
}
