//! An HF base (hub id or directory), optionally with an adapter merged, → a model GGUF that
//! llama.cpp, Ollama and our own `--gguf` loader read.
//!
//! The metadata follows llama.cpp's `convert_hf_to_gguf.py` for Qwen2: `qwen2.*` hyper-parameters,
//! a `gpt2` (byte-level BPE) tokenizer with `pre = qwen2`, tokens in id order (ids the tokenizer
//! lacks up to the embedding's row count become `[PAD{id}]`, type unused), token types (1 normal,
//! 3 control for special added tokens, 4 user-defined for other added tokens, 5 unused), merges
//! as `"a b"`, bos/eos/padding ids and the chat template from `tokenizer_config.json`. Norms and
//! biases stay F32; weight matrices get the chosen type.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file::Value};
use qwen_lora::Config;
use qwen_lora::adapter::load_adapter;
use qwen_lora::load::{ModelSource, SourceInfo, hf_to_gguf_name, load_base};
use serde_json::Value as Json;

use crate::error::{Error, Result, io};
use crate::merge::adapter_label;
use crate::types::{file_type, fit};
use crate::write::{AtomicOut, sorted_metadata};

/// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// What [`export_from_hf`] wrote.
#[derive(Debug, Clone)]
pub struct HfReport {
    pub out: PathBuf,
    pub bytes: u64,
    pub tensors: usize,
    pub name: String,
    /// Tensors written as F16 because the requested type's blocks do not tile their rows.
    pub fallbacks: Vec<String>,
}

/// Converts the HF model at `src` (with `adapter` merged when given) to a GGUF at `out`, weight
/// matrices as `dtype` (F16, Q8_0 or F32).
pub fn export_from_hf(src: &ModelSource, adapter: Option<&Path>, out: &Path, dtype: GgmlDType) -> Result<HfReport> {
    if !matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::Q8_0) {
        return Err(Error::Msg("--model converts to f16 (default), q8_0 or f32; --type same needs --gguf".into()));
    }
    let target = AtomicOut::create(out)?;
    let mut base = load_base(src, &Device::Cpu, candle_core::DType::F32)?;
    let dir = match &base.source {
        SourceInfo::Dir { dir } | SourceInfo::Hub { dir, .. } => dir.clone(),
        SourceInfo::Gguf { path } => {
            return Err(Error::file(path, "is a GGUF file; use --gguf for a GGUF base"));
        }
    };
    let mut model = base.take_model()?;
    let mut name = match src {
        ModelSource::Hub { id, .. } => id.clone(),
        _ => dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    if let Some(a) = adapter {
        let cfg = load_adapter(&mut model, a)?;
        model.merge_lora()?;
        name = format!("{name} + LoRA {} (r {}, alpha {})", adapter_label(a), cfg.r, cfg.lora_alpha);
    }

    let mut metadata = model_metadata(&base.config, &name, dtype);
    metadata.extend(tokenizer_metadata(&dir, &base.config)?);
    let mut tensors = Vec::new();
    let mut fallbacks = Vec::new();
    for (hf, t) in model.named_weights()? {
        let g = hf_to_gguf_name(&hf).ok_or_else(|| Error::Msg(format!("internal: no GGUF name for {hf}")))?;
        let ty = if t.rank() == 1 {
            GgmlDType::F32
        } else {
            let (ty, note) = fit(&g, t.dims(), dtype);
            fallbacks.extend(note);
            ty
        };
        tensors.push((g, QTensor::quantize(&t, ty)?));
    }
    let n = tensors.len();
    let bytes = target.write_gguf(&sorted_metadata(metadata), &tensors)?;
    Ok(HfReport { out: out.to_path_buf(), bytes, tensors: n, name, fallbacks })
}

/// `general.*` and `qwen2.*` keys.
fn model_metadata(cfg: &Config, name: &str, dtype: GgmlDType) -> Vec<(String, Value)> {
    let mut md = cfg.to_gguf_metadata();
    md.extend([
        ("general.type".to_string(), Value::String("model".into())),
        ("general.name".to_string(), Value::String(name.into())),
        ("general.file_type".to_string(), Value::U32(file_type(dtype))),
    ]);
    if dtype == GgmlDType::Q8_0 {
        md.push(("general.quantization_version".to_string(), Value::U32(2)));
    }
    md
}

fn read_json(path: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not valid JSON: {e}")))
}

/// A special token in `tokenizer_config.json`: a string or `{"content": ...}`.
fn token_text(v: &Json) -> Option<&str> {
    v.as_str().or_else(|| v.get("content").and_then(Json::as_str))
}

/// `tokenizer.*` keys from `tokenizer.json` (+ `tokenizer_config.json` / `chat_template.jinja`).
pub fn tokenizer_metadata(dir: &Path, cfg: &Config) -> Result<Vec<(String, Value)>> {
    let path = dir.join("tokenizer.json");
    let tok = read_json(&path)?;
    let bad = |msg: String| Error::file(&path, msg);
    let model = &tok["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(bad(format!("model.type is {}, but Qwen2 uses a byte-level BPE", model["type"])));
    }
    let n = cfg.vocab_size;
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; n];
    let mut put = |id: u64, text: &str, ty: i32| -> Result<()> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            bad(format!("token `{text}` has id {id}, beyond the model's vocab_size {n} (embedding rows)"))
        })?;
        *slot = Some((text.to_string(), ty));
        Ok(())
    };
    let vocab = model["vocab"].as_object().ok_or_else(|| bad("model.vocab is not an object".into()))?;
    for (text, id) in vocab {
        let id = id.as_u64().ok_or_else(|| bad(format!("model.vocab[`{text}`] is not an id")))?;
        put(id, text, NORMAL)?;
    }
    for added in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(text)) = (added["id"].as_u64(), added["content"].as_str()) else {
            return Err(bad(format!("added_tokens entry without id/content: {added}")));
        };
        let looks_special = text.starts_with("<|") && text.ends_with("|>");
        let special = added["special"].as_bool().unwrap_or(false) || looks_special;
        // A tokenizer converted from a GGUF carries llama.cpp's padding entries as added tokens.
        let ty = if text == format!("[PAD{id}]") {
            UNUSED
        } else if special {
            CONTROL
        } else {
            USER_DEFINED
        };
        put(id, text, ty)?;
    }
    let (texts, types): (Vec<Value>, Vec<Value>) = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| match t {
            Some((text, ty)) => (Value::String(text), Value::I32(ty)),
            None => (Value::String(format!("[PAD{id}]")), Value::I32(UNUSED)),
        })
        .unzip();
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| bad("model.merges is missing".into()))?
        .iter()
        .map(|m| match (m.as_str(), m.as_array().map(Vec::as_slice)) {
            (Some(s), _) => Ok(Value::String(s.to_string())),
            (None, Some([a, b])) => match (a.as_str(), b.as_str()) {
                (Some(a), Some(b)) => Ok(Value::String(format!("{a} {b}"))),
                _ => Err(bad(format!("merge {m} is not a pair of strings"))),
            },
            _ => Err(bad(format!("merge {m} is neither \"a b\" nor [a, b]"))),
        })
        .collect::<Result<Vec<_>>>()?;

    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.is_file() { read_json(&tc_path)? } else { Json::Null };
    let by_text: HashMap<&str, u32> = texts
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Value::String(s) => Some((s.as_str(), i as u32)),
            _ => None,
        })
        .collect();
    let special = |key: &str| tc.get(key).and_then(token_text).and_then(|t| by_text.get(t).copied());
    let bos = special("bos_token").or(cfg.bos_token_id);
    let eos = special("eos_token").or(cfg.eos_token_id);
    let pad = special("pad_token");
    let template = match tc.get("chat_template") {
        Some(Json::String(s)) => Some(s.clone()),
        // Several named templates: take the default one.
        Some(Json::Array(list)) => {
            list.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_string)
        }
        _ => {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() { Some(std::fs::read_to_string(&jinja).map_err(io(&jinja))?) } else { None }
        }
    };

    let mut md = vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens", Value::Array(texts)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(merges)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(tc["add_bos_token"].as_bool().unwrap_or(false))),
    ];
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", bos),
        ("tokenizer.ggml.eos_token_id", eos),
        ("tokenizer.ggml.padding_token_id", pad),
    ] {
        if let Some(id) = id {
            md.push((key, Value::U32(id)));
        }
    }
    if let Some(t) = template {
        md.push(("tokenizer.chat_template", Value::String(t)));
    }
    Ok(md.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qwen_lora::fixture::tiny_config;

    fn meta(md: &[(String, Value)], key: &str) -> String {
        md.iter().find(|(k, _)| k == key).map(|(_, v)| format!("{v:?}")).unwrap_or_else(|| "missing".into())
    }

    #[test]
    fn tokenizer_json_becomes_llama_cpp_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let tok = serde_json::json!({
            "model": { "type": "BPE", "vocab": { "a": 0, "b": 1, "ab": 2 }, "merges": ["a b", ["ab", "b"]] },
            "added_tokens": [
                { "id": 3, "content": "<|x|>", "special": true },
                { "id": 4, "content": "<tool>", "special": false },
                { "id": 5, "content": "[PAD5]", "special": true }
            ]
        });
        std::fs::write(tmp.path().join("tokenizer.json"), tok.to_string()).unwrap();
        let tc = serde_json::json!({
            "eos_token": { "content": "<|x|>" },
            "pad_token": "<tool>",
            "chat_template": [{ "name": "tool_use", "template": "T" }, { "name": "default", "template": "D" }]
        });
        std::fs::write(tmp.path().join("tokenizer_config.json"), tc.to_string()).unwrap();
        let mut cfg = tiny_config();
        cfg.vocab_size = 7;
        cfg.bos_token_id = Some(0);
        let md = tokenizer_metadata(tmp.path(), &cfg).unwrap();
        let tokens = meta(&md, "tokenizer.ggml.tokens");
        assert!(tokens.contains(r#"String("<tool>"), String("[PAD5]"), String("[PAD6]")"#), "{tokens}");
        assert_eq!(
            meta(&md, "tokenizer.ggml.token_type"),
            "Array([I32(1), I32(1), I32(1), I32(3), I32(4), I32(5), I32(5)])"
        );
        assert_eq!(meta(&md, "tokenizer.ggml.merges"), r#"Array([String("a b"), String("ab b")])"#);
        assert_eq!(meta(&md, "tokenizer.ggml.eos_token_id"), "U32(3)");
        assert_eq!(meta(&md, "tokenizer.ggml.padding_token_id"), "U32(4)");
        assert_eq!(meta(&md, "tokenizer.ggml.bos_token_id"), "U32(0)");
        assert_eq!(meta(&md, "tokenizer.chat_template"), r#"String("D")"#);

        cfg.vocab_size = 4;
        let e = tokenizer_metadata(tmp.path(), &cfg).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json") && e.contains("id 4") && e.contains("vocab_size 4"), "{e}");
    }
}
