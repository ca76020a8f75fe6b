//! Merges a LoRA adapter into its base model and writes the result as a Hugging Face model
//! directory that `qwen-generate --model DIR` and Python transformers load like any checkpoint.
//!
//! - [`merge_into_dir`]: a loaded base (hub, HF directory or GGUF) + an adapter directory →
//!   `config.json`, `tokenizer.json`, `model.safetensors` and, when the base has them,
//!   `tokenizer_config.json` (chat template), `generation_config.json` and the other tokenizer
//!   files. Everything is written into a temporary directory beside the target, then renamed
//!   into place ([`kb_dataset::AtomicDir`]), so a failed or interrupted run leaves nothing
//!   half-written.
//! - [`Merged`]: what was written; [`Error`]: what can go wrong, naming the file.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use qwen_lora::load::{BaseModel, SourceInfo};
use qwen_lora::merge::merge_adapter;
use serde_json::{Value, json};

/// The crate's error type: `qwen-lora`'s, whose messages name the file involved.
pub use qwen_lora::{Error, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::io(path, source)
}

/// Tokenizer and generation files copied unchanged from an HF base, when present.
const SIDE_FILES: [&str; 6] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
];

/// The merged directory that was written.
#[derive(Debug, Clone)]
pub struct Merged {
    pub out: PathBuf,
    /// Files written, in the order written.
    pub files: Vec<String>,
    /// Tensors in `model.safetensors`.
    pub tensors: usize,
    /// Size of `model.safetensors` in bytes.
    pub weights_bytes: u64,
}

/// Loads the adapter in `adapter` onto `base`, folds it into the weights (`W + scale·B·A`) and
/// writes the merged model to `out` in HF layout with weights in `dtype`. `out` must not exist,
/// or be an empty directory. The model takes `base`'s weights (so merging frees the ones it
/// replaces); `base` keeps its config, tokenizer and source.
pub fn merge_into_dir(base: &mut BaseModel, adapter: &Path, out: &Path, dtype: DType) -> Result<Merged> {
    check_out(out)?;
    let mut model = base.take_model()?;
    let cfg = merge_adapter(&mut model, adapter)?;
    tracing::info!(adapter = %adapter.display(), r = cfg.r, alpha = cfg.lora_alpha, "merged adapter");

    let tmp = kb_dataset::AtomicDir::create(out)?;
    let mut files = Vec::new();
    let source_dir = match &base.source {
        SourceInfo::Dir { dir } | SourceInfo::Hub { dir, .. } => Some(dir.as_path()),
        SourceInfo::Gguf { .. } => None,
    };

    let config = config_json(base, source_dir, dtype)?;
    write_json(&tmp.path().join("config.json"), &config)?;
    files.push("config.json".to_string());

    let tok_path = tmp.path().join("tokenizer.json");
    match source_dir.map(|d| d.join("tokenizer.json")).filter(|p| p.is_file()) {
        Some(src) => {
            std::fs::copy(&src, &tok_path).map_err(io(&src))?;
        }
        None => {
            let text = base.tokenizer.to_string(false).map_err(|e| Error::File {
                path: tok_path.clone(),
                msg: format!("cannot serialize the tokenizer: {e}"),
            })?;
            std::fs::write(&tok_path, text).map_err(io(&tok_path))?;
        }
    }
    files.push("tokenizer.json".to_string());

    match (&base.source, source_dir) {
        (_, Some(dir)) => {
            for name in SIDE_FILES {
                let src = dir.join(name);
                if src.is_file() {
                    std::fs::copy(&src, tmp.path().join(name)).map_err(io(&src))?;
                    files.push(name.to_string());
                }
            }
        }
        (SourceInfo::Gguf { path }, None) => {
            for (name, value) in gguf_side_files(base, path)? {
                write_json(&tmp.path().join(name), &value)?;
                files.push(name.to_string());
            }
        }
        _ => {}
    }

    let weights = tmp.path().join("model.safetensors");
    let tensors = model
        .named_weights()?
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(dtype)?.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<Vec<(String, Tensor)>>>()?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta), &weights)
        .map_err(|e| Error::File { path: weights.clone(), msg: format!("cannot write the weights: {e}") })?;
    files.push("model.safetensors".to_string());
    let weights_bytes = std::fs::metadata(&weights).map_err(io(&weights))?.len();

    // Replaces an empty target directory, or creates it; the files get the umask's mode.
    tmp.commit()?;
    Ok(Merged { out: out.to_path_buf(), files, tensors: tensors.len(), weights_bytes })
}

/// Refuses an `out` that holds something (or is not a directory), and makes sure its parent
/// exists. Returns the parent.
fn check_out(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        let empty = out.is_dir() && std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty {
            return Err(Error::File {
                path: out.to_path_buf(),
                msg: "already exists; choose a new --out or remove it first".into(),
            });
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    Ok(parent)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::File { path: path.to_path_buf(), msg: e.to_string() })?;
    std::fs::write(path, text + "\n").map_err(io(path))
}

/// The HF name of a dtype, as `torch_dtype` in `config.json` writes it.
fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

/// The base's own `config.json` when it has one (keeping every field transformers reads), else
/// one built from the loaded config; `torch_dtype` says what was written.
fn config_json(base: &BaseModel, source_dir: Option<&Path>, dtype: DType) -> Result<Value> {
    let own = source_dir.map(|d| d.join("config.json")).filter(|p| p.is_file());
    let mut v = match own {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            serde_json::from_str(&text).map_err(|e| Error::File { path, msg: format!("not valid JSON: {e}") })?
        }
        None => {
            let mut v = serde_json::to_value(&base.config)
                .map_err(|e| Error::File { path: "config.json".into(), msg: e.to_string() })?;
            v["architectures"] = json!(["Qwen2ForCausalLM"]);
            v["hidden_act"] = json!("silu");
            v["use_sliding_window"] = json!(false);
            v
        }
    };
    v["torch_dtype"] = json!(torch_dtype(dtype));
    Ok(v)
}

/// `tokenizer_config.json` (chat template, special tokens) and `generation_config.json` (stop
/// tokens) for a GGUF base, from what its metadata records.
fn gguf_side_files(base: &BaseModel, path: &Path) -> Result<Vec<(&'static str, Value)>> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let ct = gguf_file::Content::read(&mut f)
        .map_err(|e| Error::File { path: path.to_path_buf(), msg: format!("cannot read the GGUF header: {e}") })?;
    let get_str = |k: &str| match ct.metadata.get(k) {
        Some(gguf_file::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let get_id = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
    let token = |id: Option<u32>| id.and_then(|i| base.tokenizer.id_to_token(i));
    let (bos, eos, pad) = (
        get_id("tokenizer.ggml.bos_token_id"),
        get_id("tokenizer.ggml.eos_token_id"),
        get_id("tokenizer.ggml.padding_token_id"),
    );
    let mut tok_cfg = json!({
        "tokenizer_class": "Qwen2Tokenizer",
        "model_max_length": base.config.max_position_embeddings,
        "eos_token": token(eos),
        "pad_token": token(pad),
        "bos_token": Value::Null,
        "add_bos_token": matches!(ct.metadata.get("tokenizer.ggml.add_bos_token"), Some(gguf_file::Value::Bool(true))),
        "clean_up_tokenization_spaces": false,
        "errors": "replace",
        "split_special_tokens": false,
    });
    if let Some(t) = get_str("tokenizer.chat_template") {
        tok_cfg["chat_template"] = json!(t);
    }
    let gen_cfg = json!({
        "bos_token_id": bos,
        "eos_token_id": base.eos_token_ids(),
        "pad_token_id": pad,
    });
    Ok(vec![("tokenizer_config.json", tok_cfg), ("generation_config.json", gen_cfg)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_must_be_new_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b/merged");
        assert_eq!(check_out(&fresh).unwrap(), tmp.path().join("a/b"));
        assert!(tmp.path().join("a/b").is_dir());
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_out(&empty).is_ok());
        std::fs::write(empty.join("x"), b"1").unwrap();
        let e = check_out(&empty).unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("empty"), "{e}");
        assert_eq!(check_out(Path::new("merged")).unwrap(), PathBuf::from("."));
    }

    #[test]
    fn torch_dtype_names() {
        assert_eq!(torch_dtype(DType::BF16), "bfloat16");
        assert_eq!(torch_dtype(DType::F16), "float16");
        assert_eq!(torch_dtype(DType::F32), "float32");
    }
}
