//! A local Hugging Face model directory: config, tokenizer and (sharded) safetensors, validated
//! before the weights are memory-mapped.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::{check_config, expected_tensors};
use crate::{Config, Error, Result};

const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// Reads and checks everything in `dir`, then maps the weights.
pub(super) fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<(Config, VarBuilder<'static>, Tokenizer)> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "model directory not found (it should hold config.json, tokenizer.json and model.safetensors or model.safetensors.index.json)",
        ));
    }
    let config = read_config(&dir.join("config.json"))?;
    let tokenizer = read_tokenizer(&dir.join("tokenizer.json"))?;
    let files = weight_files(dir)?;
    check_weights(&config, &files)?;
    let paths: Vec<&PathBuf> = files.keys().collect();
    // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on nobody
    // truncating them while the model is alive. Their headers and sizes were checked just above.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&paths, dtype, device) }
        .map_err(|e| Error::file(dir, format!("cannot map the safetensors files: {e}")))?;
    Ok((config, vb, tokenizer))
}

/// Parses `config.json` and rejects configs that are not a usable Qwen2.
pub(crate) fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let config: Config =
        serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not a valid model config: {e}")))?;
    check_config(&config).map_err(|m| Error::file(path, m))?;
    Ok(config)
}

fn read_tokenizer(path: &Path) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::file(path, "tokenizer file not found"));
    }
    Tokenizer::from_file(path).map_err(|e| Error::file(path, format!("cannot read the tokenizer: {e}")))
}

#[derive(Deserialize)]
struct Index {
    weight_map: HashMap<String, String>,
}

/// The safetensors files of `dir` with the header of each, from the index when there is one.
/// For an index, each header is also checked to hold the tensors the index assigns to it.
fn weight_files(dir: &Path) -> Result<HashMap<PathBuf, HashMap<String, TensorHeader>>> {
    let index_path = dir.join(INDEX);
    let mut out = HashMap::new();
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| Error::file(&index_path, format!("not a valid safetensors index: {e}")))?;
        let names: BTreeSet<&String> = index.weight_map.values().collect();
        for name in names {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(Error::file(&path, format!("shard listed in {INDEX} is missing")));
            }
            let header = read_header(&path)?;
            out.insert(path, header);
        }
        for (tensor, file) in &index.weight_map {
            let path = dir.join(file);
            if !out.get(&path).is_some_and(|h| h.contains_key(tensor)) {
                return Err(Error::file(
                    &path,
                    format!("{INDEX} places tensor `{tensor}` in this file, but it is not there"),
                ));
            }
        }
    } else {
        let path = dir.join(SINGLE);
        if !path.is_file() {
            return Err(Error::file(dir, format!("no {SINGLE} and no {INDEX} in the model directory")));
        }
        let header = read_header(&path)?;
        out.insert(path, header);
    }
    Ok(out)
}

/// Every tensor the config needs must be present with its shape, in a float dtype.
fn check_weights(cfg: &Config, files: &HashMap<PathBuf, HashMap<String, TensorHeader>>) -> Result<()> {
    let mut found: HashMap<&str, (&PathBuf, &TensorHeader)> = HashMap::new();
    for (path, header) in files {
        for (name, h) in header {
            found.insert(name.as_str(), (path, h));
        }
    }
    let any_file = files.keys().min().cloned().unwrap_or_default();
    for (name, shape) in expected_tensors(cfg) {
        let Some((path, h)) = found.get(name.as_str()) else {
            let where_ = if files.len() == 1 { any_file.clone() } else { any_file.with_file_name(INDEX) };
            return Err(Error::file(where_, format!("tensor `{name}` is missing (expected shape {shape:?})")));
        };
        if h.shape != shape {
            return Err(Error::file(
                *path,
                format!("tensor `{name}` has shape {:?}, but config.json implies {shape:?}", h.shape),
            ));
        }
        if !matches!(h.dtype.as_str(), "BF16" | "F16" | "F32" | "F64") {
            return Err(Error::file(
                *path,
                format!("tensor `{name}` has dtype {}; expected BF16, F16 or F32", h.dtype),
            ));
        }
    }
    Ok(())
}

/// One entry of a safetensors header.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TensorHeader {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data_offsets: [u64; 2],
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Reads the header of a safetensors file and checks it against the file's size, so a truncated
/// or corrupt file is reported here (naming the file and tensor) rather than inside the mmap.
pub(crate) fn read_header(path: &Path) -> Result<HashMap<String, TensorHeader>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let corrupt = |m: String| Error::file(path, format!("corrupt or truncated safetensors file: {m}"));
    if len < 8 {
        return Err(corrupt(format!("only {len} bytes, too short for a header")));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return Err(corrupt(format!("the header claims {n} bytes but the file has {len}")));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    let raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&buf).map_err(|e| corrupt(format!("header is not valid JSON: {e}")))?;
    let data_len = len - 8 - n;
    let mut out = HashMap::new();
    let mut end = 0;
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let h: TensorHeader =
            serde_json::from_value(v).map_err(|e| corrupt(format!("bad header entry for tensor `{name}`: {e}")))?;
        let size =
            dtype_size(&h.dtype).ok_or_else(|| corrupt(format!("tensor `{name}` has unknown dtype {}", h.dtype)))?;
        let [a, b] = h.data_offsets;
        let need = h.shape.iter().map(|&d| d as u64).product::<u64>() * size;
        if b < a || b - a != need {
            return Err(corrupt(format!(
                "tensor `{name}` ({} {:?}) needs {need} bytes but its data_offsets span {}",
                h.dtype,
                h.shape,
                b.saturating_sub(a)
            )));
        }
        if b > data_len {
            return Err(corrupt(format!(
                "tensor `{name}` ends at byte {b} of the data, but the file holds only {data_len} data bytes"
            )));
        }
        end = end.max(b);
        out.insert(name, h);
    }
    if end != data_len {
        return Err(corrupt(format!("the tensors cover {end} data bytes but the file holds {data_len}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, header: &str, data: usize) {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data));
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn header_is_checked_against_the_file_size() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.safetensors");
        let header = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        write(&p, header, 24);
        let h = read_header(&p).unwrap();
        assert_eq!(h["w"].shape, vec![2, 3]);
        write(&p, header, 20);
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("a.safetensors") && e.contains("`w`"), "{e}");
        write(&p, r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#, 20);
        assert!(read_header(&p).unwrap_err().to_string().contains("needs 24 bytes"));
        std::fs::write(&p, [1u8, 2, 3]).unwrap();
        assert!(read_header(&p).unwrap_err().to_string().contains("too short"));
        write(&p, "{not json", 0);
        assert!(read_header(&p).unwrap_err().to_string().contains("not valid JSON"));
    }
}
