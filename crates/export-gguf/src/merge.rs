//! A GGUF base + a LoRA adapter → a complete model GGUF with the adapter merged.
//!
//! Tensors the adapter does not touch are copied byte for byte. Each adapted projection is
//! dequantized to f32, merged (`W + scale·B·A`) and quantized again to the chosen type. All
//! metadata is kept; `general.name` notes the adapter.

use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use qwen_lora::Config;
use qwen_lora::adapter::{AdapterWeights, read_adapter};
use qwen_lora::load::hf_to_gguf_name;
use qwen_lora::lora::merge_weight;
use qwen_lora::model::module_path;

use crate::error::{Error, Result};
use crate::types::{OutType, fit, type_name};
use crate::write::{AtomicOut, read_header, sorted_metadata};

/// One merged projection: its types and how much of the adapter's update survived requantizing.
#[derive(Debug, Clone)]
pub struct MergedTensor {
    pub name: String,
    pub from: GgmlDType,
    pub to: GgmlDType,
    /// ‖scale·B·A‖ (Frobenius).
    pub delta_norm: f64,
    /// ‖Q(W + δ) − (W + δ)‖: the error the stored type adds to the merged weight.
    pub error_norm: f64,
}

/// What [`export_merged`] wrote.
#[derive(Debug, Clone)]
pub struct MergeReport {
    pub out: PathBuf,
    pub bytes: u64,
    pub tensors: usize,
    pub merged: Vec<MergedTensor>,
    /// Tensors written as F16 because the requested type's blocks do not tile their rows.
    pub fallbacks: Vec<String>,
    pub name: String,
}

impl MergeReport {
    /// ‖Q(W+δ) − (W+δ)‖ / ‖δ‖ over all merged tensors: 0 is exact, ≥ 1 means the stored type's
    /// rounding is as large as the adapter's whole update.
    pub fn requant_error(&self) -> f64 {
        let e: f64 = self.merged.iter().map(|m| m.error_norm.powi(2)).sum();
        let d: f64 = self.merged.iter().map(|m| m.delta_norm.powi(2)).sum();
        if d == 0.0 { 0.0 } else { (e / d).sqrt() }
    }

    /// A warning when the stored type's rounding eats more than half of the adapter's update
    /// ([`requant_error`](Self::requant_error) above 0.5).
    pub fn requant_warning(&self) -> Option<String> {
        let err = self.requant_error();
        (err > 0.5).then(|| {
            format!(
                "storing the merged weights as {} loses much of the adapter: the rounding is {:.0}% of the adapter's update; --type q8_0 or f16 keeps it",
                self.type_summary(),
                100.0 * err
            )
        })
    }

    /// How the merged tensors' types changed, e.g. `72 Q5_0 -> Q5_0, 24 Q8_0 -> Q8_0`.
    pub fn type_summary(&self) -> String {
        let mut counts: Vec<((GgmlDType, GgmlDType), usize)> = Vec::new();
        for m in &self.merged {
            match counts.iter_mut().find(|(k, _)| *k == (m.from, m.to)) {
                Some((_, n)) => *n += 1,
                None => counts.push(((m.from, m.to), 1)),
            }
        }
        counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let parts: Vec<String> =
            counts.iter().map(|((f, t), n)| format!("{n} {} -> {}", type_name(*f), type_name(*t))).collect();
        parts.join(", ")
    }
}

/// The GGUF names of the adapted weights, each with its (A, B) and checked against the header.
fn adapted_tensors(
    ad: &AdapterWeights,
    ct: &gguf_file::Content,
    base: &Path,
) -> Result<Vec<(String, (Tensor, Tensor))>> {
    let mut out = Vec::new();
    for ((layer, module), pair) in &ad.pairs {
        let hf = format!("{}.weight", module_path(*layer, module));
        let name = hf_to_gguf_name(&hf).ok_or_else(|| Error::Msg(format!("internal: no GGUF name for {hf}")))?;
        let info = ct.tensor_infos.get(&name).ok_or_else(|| {
            Error::file(base, format!("the adapter changes {hf}, but tensor `{name}` is not in the base GGUF"))
        })?;
        let want = [pair.1.dim(0)?, pair.0.dim(1)?];
        if info.shape.dims() != want {
            return Err(Error::file(
                base,
                format!(
                    "tensor `{name}` has shape {:?}, but the adapter's B·A for {hf} is {want:?}: the adapter was made for another model",
                    info.shape.dims()
                ),
            ));
        }
        out.push((name, pair.clone()));
    }
    Ok(out)
}

/// `W + scale·B·A` requantized to `to`, with the update's norm and the error the type adds.
fn merge_one(q: &QTensor, a: &Tensor, b: &Tensor, scale: f64, to: GgmlDType) -> Result<(QTensor, f64, f64)> {
    let w = q.dequantize(&Device::Cpu)?; // (out, in) f32
    let m = merge_weight(&w, a, b, scale)?; // the same bits as the model's own merge
    let (merged, delta) = (m.weight, m.delta);
    let stored = QTensor::quantize(&merged, to)?;
    let norm = |t: &Tensor| -> Result<f64> { Ok(t.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64) };
    let error = norm(&(stored.dequantize(&Device::Cpu)? - &merged)?)?;
    Ok((stored, norm(&delta)?, error))
}

/// Writes `out`: the GGUF `base` with the adapter in `adapter_dir` merged, adapted tensors stored
/// as `ty`.
pub fn export_merged(base: &Path, adapter_dir: &Path, out: &Path, ty: OutType) -> Result<MergeReport> {
    if kb_dataset::same_file(base, out) {
        return Err(Error::file(out, "is the base GGUF itself; write the tuned model to another file"));
    }
    let target = AtomicOut::create(out)?;
    let (mut file, ct) = read_header(base)?;
    let config = Config::from_gguf(&ct).map_err(|e| Error::file(base, e.to_string()))?;
    let ad = read_adapter(adapter_dir)?;
    ad.check_base(&config)?;
    let adapted = adapted_tensors(&ad, &ct, base)?;
    let scale = ad.lora.scale();

    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = ct.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    let mut tensors = Vec::with_capacity(infos.len());
    let (mut merged, mut fallbacks) = (Vec::new(), Vec::new());
    for (name, info) in infos {
        let q = info
            .read(&mut file, ct.tensor_data_offset, &Device::Cpu)
            .map_err(|e| Error::file(base, format!("tensor `{name}`: {e}")))?;
        let Some((_, (a, b))) = adapted.iter().find(|(n, _)| n == name) else {
            tensors.push((name.clone(), q));
            continue;
        };
        let from = info.ggml_dtype;
        let want = ty.ggml(Some(from)).unwrap_or(from);
        let (to, note) = fit(name, info.shape.dims(), want);
        fallbacks.extend(note);
        let (stored, delta_norm, error_norm) = merge_one(&q, a, b, scale, to).map_err(|e| {
            Error::Msg(format!(
                "tensor `{name}` of {}: cannot store the merged weight as {}: {e}; choose --type q8_0, f16 or f32",
                base.display(),
                type_name(to)
            ))
        })?;
        tracing::debug!(tensor = name.as_str(), from = type_name(from), to = type_name(to), delta_norm, error_norm);
        merged.push(MergedTensor { name: name.clone(), from, to, delta_norm, error_norm });
        tensors.push((name.clone(), stored));
    }

    let base_name = match ct.metadata.get("general.name") {
        Some(gguf_file::Value::String(s)) => s.clone(),
        _ => base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let adapter_name = adapter_label(adapter_dir);
    let name = format!("{base_name} + LoRA {adapter_name} (r {}, alpha {})", ad.lora.r, ad.lora.lora_alpha);
    let mut metadata = ct.metadata.clone();
    metadata.insert("general.name".into(), gguf_file::Value::String(name.clone()));
    let metadata = sorted_metadata(metadata);
    let n = tensors.len();
    let bytes = target.write_gguf(&metadata, &tensors)?;
    Ok(MergeReport { out: out.to_path_buf(), bytes, tensors: n, merged, fallbacks, name })
}

/// A short name for the adapter: its directory, with the parent when that is a generic
/// `final_model` or `checkpoint-*`.
pub(crate) fn adapter_label(dir: &Path) -> String {
    let name = |p: &Path| p.file_name().map(|s| s.to_string_lossy().into_owned());
    let own = name(dir).unwrap_or_else(|| dir.display().to_string());
    match dir.parent().and_then(name) {
        Some(parent) if own == "final_model" || own.starts_with("checkpoint") => format!("{parent}/{own}"),
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_labels_name_the_run_for_generic_directories() {
        assert_eq!(adapter_label(Path::new("/x/kb-run/final_model")), "kb-run/final_model");
        assert_eq!(adapter_label(Path::new("out/checkpoint-200")), "out/checkpoint-200");
        assert_eq!(adapter_label(Path::new("/tmp/my-adapter")), "my-adapter");
    }

    #[test]
    fn requant_error_is_zero_when_exact_and_relative_to_the_update() {
        let t = |e: f64, d: f64| MergedTensor {
            name: "w".into(),
            from: GgmlDType::F32,
            to: GgmlDType::F32,
            delta_norm: d,
            error_norm: e,
        };
        let mut r = MergeReport {
            out: "x".into(),
            bytes: 0,
            tensors: 2,
            merged: vec![t(0.0, 1.0), t(0.0, 2.0)],
            fallbacks: vec![],
            name: String::new(),
        };
        assert_eq!(r.requant_error(), 0.0);
        r.merged = vec![t(3.0, 3.0), t(4.0, 4.0)];
        assert!((r.requant_error() - 1.0).abs() < 1e-12);
        r.merged[1].from = GgmlDType::Q8_0;
        r.merged.push(t(0.0, 1.0));
        assert_eq!(r.type_summary(), "2 F32 -> F32, 1 Q8_0 -> F32");
    }
}
