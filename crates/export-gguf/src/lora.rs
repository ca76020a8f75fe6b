//! A PEFT adapter → a llama.cpp LoRA adapter GGUF (`llama-cli -m BASE.gguf --lora adapter.gguf`).
//!
//! The layout of llama.cpp's own `convert_lora_to_gguf.py`: metadata `general.architecture`
//! (`qwen2`), `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (f32); for
//! each adapted weight `blk.N.attn_q.weight` two tensors `blk.N.attn_q.weight.lora_a` holding A
//! as PEFT stores it, (r, in) — ggml `ne = [in, r]` — and `….lora_b` holding B, (out, r) — ggml
//! `ne = [r, out]`. llama.cpp checks `a.ne[0] == W.ne[0]`, `b.ne[1] == W.ne[1]`,
//! `a.ne[1] == b.ne[0]` and scales by `alpha / r` with `r = b.ne[0]`.

use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file::Value};
use qwen_lora::Config;
use qwen_lora::adapter::read_adapter;
use qwen_lora::load::hf_to_gguf_name;
use qwen_lora::model::module_path;

use crate::error::{Error, Result};
use crate::merge::adapter_label;
use crate::types::{file_type, type_name};
use crate::write::{AtomicOut, sorted_metadata};

/// The config of the base an adapter is meant for, to check it against: from a GGUF header or
/// an HF directory's `config.json` (`None` for a hub id, which is not read).
pub fn base_config(gguf: Option<&Path>, model: Option<&str>) -> Result<Option<Config>> {
    if let Some(path) = gguf {
        let (_, ct) = crate::write::read_header(path)?;
        return Ok(Some(Config::from_gguf(&ct).map_err(|e| Error::file(path, e.to_string()))?));
    }
    match model.map(Path::new).filter(|p| p.is_dir()) {
        Some(dir) => {
            let path = dir.join("config.json");
            let text = std::fs::read_to_string(&path).map_err(crate::error::io(&path))?;
            let cfg = serde_json::from_str(&text)
                .map_err(|e| Error::file(&path, format!("not a valid model config: {e}")))?;
            Ok(Some(cfg))
        }
        None => Ok(None),
    }
}

/// What [`export_lora_only`] wrote.
#[derive(Debug, Clone)]
pub struct LoraReport {
    pub out: PathBuf,
    pub bytes: u64,
    /// Adapted weights (each has a `lora_a` and a `lora_b` tensor).
    pub pairs: usize,
    pub r: usize,
    /// `adapter.lora.alpha` as written: `scale · r`, so llama.cpp's `alpha / r` is our scale
    /// (equal to `lora_alpha`, except for rsLoRA adapters).
    pub alpha: f32,
    pub dtype: GgmlDType,
}

/// Writes the adapter in `adapter_dir` as a llama.cpp LoRA GGUF at `out`, tensors as `dtype`
/// (F32 as llama.cpp's converter writes by default, or F16). `base`, when given, is checked
/// against the adapter first.
pub fn export_lora_only(adapter_dir: &Path, out: &Path, dtype: GgmlDType, base: Option<&Config>) -> Result<LoraReport> {
    if !matches!(dtype, GgmlDType::F32 | GgmlDType::F16) {
        return Err(Error::Msg(format!(
            "--lora-only writes the adapter as f32 (default) or f16, not {}: the rank-sized rows of lora_b do not fit quantized blocks",
            type_name(dtype)
        )));
    }
    let target = AtomicOut::create(out)?;
    let ad = read_adapter(adapter_dir)?;
    if let Some(cfg) = base {
        ad.check_base(cfg)?;
    }
    let r = ad.lora.r;
    let alpha = (ad.lora.scale() * r as f64) as f32;
    if ad.lora.use_rslora {
        tracing::info!(
            lora_alpha = ad.lora.lora_alpha,
            alpha,
            "rsLoRA: writing alpha = (alpha / √r) · r so llama.cpp's alpha / r is the adapter's scale"
        );
    }
    let mut tensors = Vec::with_capacity(2 * ad.pairs.len());
    for ((layer, module), (a, b)) in &ad.pairs {
        let hf = format!("{}.weight", module_path(*layer, module));
        let name = hf_to_gguf_name(&hf).ok_or_else(|| Error::Msg(format!("internal: no GGUF name for {hf}")))?;
        tensors.push((format!("{name}.lora_a"), QTensor::quantize(a, dtype)?)); // (r, in)
        tensors.push((format!("{name}.lora_b"), QTensor::quantize(b, dtype)?)); // (out, r)
    }
    let metadata = sorted_metadata([
        ("general.architecture".to_string(), Value::String("qwen2".into())),
        ("general.type".to_string(), Value::String("adapter".into())),
        ("general.name".to_string(), Value::String(format!("LoRA {}", adapter_label(adapter_dir)))),
        ("general.file_type".to_string(), Value::U32(file_type(dtype))),
        ("adapter.type".to_string(), Value::String("lora".into())),
        ("adapter.lora.alpha".to_string(), Value::F32(alpha)),
    ]);
    let bytes = target.write_gguf(&metadata, &tensors)?;
    Ok(LoraReport { out: out.to_path_buf(), bytes, pairs: ad.pairs.len(), r, alpha, dtype })
}
