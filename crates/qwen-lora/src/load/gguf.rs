//! GGUF checkpoints (llama.cpp's format): config from the `qwen2.*` metadata, every tensor
//! dequantized to the compute dtype under its Hugging Face name, tokenizer from the
//! `tokenizer.ggml.*` metadata.
//!
//! Layout: ggml lists dimensions fastest-first (`ne = [in, out]`); candle's reader reverses them,
//! so a dequantized projection is `[out, in]` exactly like the HF weight, with no transpose, and
//! candle's writer reverses them back. Qwen2 uses NeoX-style (rotate-half) RoPE in llama.cpp, the
//! same as HF, so q/k weights are stored unpermuted.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use tokenizers::Tokenizer;

use super::{check_config, expected_tensors};
use crate::{Config, Error, Result};

/// GGUF block names and their HF module paths inside `model.layers.N`.
const LAYER_PARTS: [(&str, &str); 9] = [
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
];

/// Tensors outside the blocks.
const TOP: [(&str, &str); 3] =
    [("token_embd", "model.embed_tokens"), ("output_norm", "model.norm"), ("output", "lm_head")];

/// The HF name of a GGUF tensor (`blk.3.attn_q.bias` → `model.layers.3.self_attn.q_proj.bias`);
/// `None` for tensors a Qwen2 model does not use.
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    let (stem, suffix) = name.rsplit_once('.')?;
    if !matches!(suffix, "weight" | "bias") {
        return None;
    }
    if let Some((_, hf)) = TOP.iter().find(|(g, _)| *g == stem) {
        return Some(format!("{hf}.{suffix}"));
    }
    let (layer, part) = stem.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (_, hf) = LAYER_PARTS.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// The GGUF name of an HF tensor, the inverse of [`gguf_to_hf_name`] (for writing GGUF files).
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    let (stem, suffix) = name.rsplit_once('.')?;
    if !matches!(suffix, "weight" | "bias") {
        return None;
    }
    if let Some((g, _)) = TOP.iter().find(|(_, hf)| *hf == stem) {
        return Some(format!("{g}.{suffix}"));
    }
    let (layer, part) = stem.strip_prefix("model.layers.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (g, _) = LAYER_PARTS.iter().find(|(_, hf)| *hf == part)?;
    Some(format!("blk.{layer}.{g}.{suffix}"))
}

/// Bytes a tensor occupies in the file.
fn byte_len(info: &TensorInfo) -> Result<u64> {
    let (elems, block) = (info.shape.elem_count(), info.ggml_dtype.block_size());
    if elems % block != 0 {
        return Err(Error::msg(format!("{elems} elements are not a whole number of {:?} blocks", info.ggml_dtype)));
    }
    Ok((elems / block * info.ggml_dtype.type_size()) as u64)
}

/// Reads a GGUF file: config, HF-named tensors in `dtype` on `device`, tokenizer.
pub(super) fn load_gguf(
    path: &Path,
    device: &Device,
    dtype: DType,
) -> Result<(Config, HashMap<String, Tensor>, Tokenizer)> {
    let start = std::time::Instant::now();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let ct = Content::read(&mut BufReader::new(file))
        .map_err(|e| Error::file(path, format!("not a readable GGUF file (corrupt or truncated?): {e}")))?;
    let config = Config::from_gguf(&ct).map_err(|e| Error::file(path, e.to_string()))?;
    check_config(&config).map_err(|m| Error::file(path, m))?;

    // Name mapping and every check on the header, before any tensor data is read.
    let mut wanted: Vec<(String, &String, &TensorInfo)> = Vec::new();
    for (name, info) in &ct.tensor_infos {
        let Some(hf) = gguf_to_hf_name(name) else {
            tracing::debug!(tensor = name.as_str(), "ignoring a GGUF tensor Qwen2 does not use");
            continue;
        };
        let len = byte_len(info).map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))?;
        let end = ct.tensor_data_offset + info.offset + len;
        if end > file_len {
            return Err(Error::file(
                path,
                format!(
                    "file is truncated: tensor `{name}` needs bytes up to {end}, but the file has {file_len} bytes"
                ),
            ));
        }
        wanted.push((hf, name, info));
    }
    for (hf, shape) in expected_tensors(&config) {
        let gguf = hf_to_gguf_name(&hf).unwrap_or_default();
        match wanted.iter().find(|(n, ..)| *n == hf) {
            None => {
                return Err(Error::file(path, format!("tensor `{gguf}` ({hf}) is missing (expected shape {shape:?})")));
            }
            Some((.., info)) if info.shape.dims() != shape.as_slice() => {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor `{gguf}` ({hf}) has shape {:?}, but the metadata implies {shape:?}",
                        info.shape.dims()
                    ),
                ));
            }
            Some(_) => {}
        }
    }

    let header_secs = start.elapsed().as_secs_f64();
    let tokenizer = Tokenizer::from_gguf(&ct)
        .map_err(|e| Error::file(path, format!("cannot build the tokenizer from the GGUF metadata: {e}")))?;
    let tokenizer_secs = start.elapsed().as_secs_f64() - header_secs;

    // Largest first so the big embedding matrices do not end up last on one thread.
    wanted.sort_by_key(|(.., info)| std::cmp::Reverse(info.shape.elem_count()));
    let tensors = wanted
        .par_iter()
        .map(|(hf, name, info)| {
            let read = || -> candle_core::Result<Tensor> {
                let mut f = File::open(path)?;
                let q = info.read(&mut f, ct.tensor_data_offset, &Device::Cpu)?;
                q.dequantize(&Device::Cpu)?.to_dtype(dtype)?.to_device(device)
            };
            read().map(|t| (hf.clone(), t)).map_err(|e| Error::file(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    tracing::debug!(
        header_secs,
        tokenizer_secs,
        tensors_secs = start.elapsed().as_secs_f64() - header_secs - tokenizer_secs,
        threads = rayon::current_num_threads(),
        "read GGUF"
    );
    Ok((config, tensors, tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"),
            ("blk.12.attn_output.weight", "model.layers.12.self_attn.o_proj.weight"),
            ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"),
            ("blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"),
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
        ];
        for (g, h) in pairs {
            assert_eq!(gguf_to_hf_name(g).as_deref(), Some(h), "{g}");
            assert_eq!(hf_to_gguf_name(h).as_deref(), Some(g), "{h}");
        }
        for bad in ["rope_freqs.weight", "blk.x.attn_q.weight", "blk.1.attn_qq.weight", "token_embd.scale"] {
            assert_eq!(gguf_to_hf_name(bad), None, "{bad}");
        }
    }
}
