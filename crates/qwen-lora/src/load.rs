//! Loading a base model from the hub, a local HF directory or a GGUF file.
//!
//! [`load_base`] is the one entry point every binary uses (through [`crate::spec::ModelSpec::load`]). It
//! returns a [`BaseModel`]: the [`Config`], a [`VarBuilder`] serving Hugging Face tensor names
//! (`model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, …, `lm_head.weight`
//! unless tied) in the requested dtype and device, the tokenizer, and a [`SourceInfo`] saying what
//! was loaded.
//!
//! - Local directory (`dir`): `config.json`, `tokenizer.json`, `model.safetensors` or shards listed
//!   in `model.safetensors.index.json`; headers and every expected tensor's shape are checked
//!   before the weights are memory-mapped.
//! - Hub id (`hub`): the Hugging Face cache first (no network needed when cached), then hf-hub.
//! - GGUF (`gguf`): dequantized to the compute dtype, names mapped to HF names, tokenizer built
//!   from the metadata.

mod dir;
mod gguf;
mod hub;

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::model::Qwen2;
use crate::{Config, Error, Result};

pub use gguf::{gguf_to_hf_name, hf_to_gguf_name};
pub use hub::HubOptions;

/// Where the base model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A Hugging Face hub repository, read from the local cache or downloaded.
    Hub { id: String, revision: Option<String> },
    /// A local directory in HF layout.
    Dir(PathBuf),
    /// A GGUF checkpoint.
    Gguf(PathBuf),
}

impl ModelSource {
    /// Decides what `--model`, `--revision` and `--gguf` name: `gguf` wins; then an existing
    /// directory (or an existing `.gguf` file) given as `model`; anything else is a hub id.
    pub fn resolve(model: &str, revision: Option<&str>, gguf: Option<&Path>) -> Self {
        if let Some(g) = gguf {
            return Self::Gguf(g.to_path_buf());
        }
        let p = Path::new(model);
        if p.is_dir() {
            Self::Dir(p.to_path_buf())
        } else if p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            Self::Gguf(p.to_path_buf())
        } else {
            Self::Hub { id: model.to_string(), revision: revision.map(str::to_string) }
        }
    }
}

/// What was actually loaded; serializable so manifests can record the base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceInfo {
    /// A hub model: the id, the revision asked for, the commit it resolved to (the snapshot
    /// directory's name) and that directory.
    Hub { id: String, revision: String, commit: Option<String>, dir: PathBuf },
    /// A local HF directory.
    Dir { dir: PathBuf },
    /// A GGUF file; its hash is computed only on request, with [`gguf_sha256`] (by
    /// [`crate::BaseModelId::of`], for the adapter's `revision`).
    Gguf { path: PathBuf },
}

impl SourceInfo {
    /// One line for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Hub { id, revision, commit, .. } => match commit {
                Some(c) if c != revision => format!("hub {id}@{revision} ({c})"),
                _ => format!("hub {id}@{revision}"),
            },
            Self::Dir { dir } => format!("directory {}", dir.display()),
            Self::Gguf { path } => format!("GGUF {}", path.display()),
        }
    }
}

/// A loaded base model, ready for `model::Qwen2::new(&base.config, base.vb.clone(), ..)`.
pub struct BaseModel {
    pub config: Config,
    /// Serves HF tensor names in the requested dtype, on the requested device.
    pub vb: VarBuilder<'static>,
    pub tokenizer: Tokenizer,
    pub source: SourceInfo,
}

impl BaseModel {
    /// Builds the model (no adapter) from these weights, moving them out and leaving an empty
    /// builder: the model then holds the only reference to each tensor, so what it replaces
    /// (merging an adapter) or releases (bf16 training) is freed. Config, tokenizer and source stay.
    pub fn take_model(&mut self) -> Result<Qwen2> {
        let empty = VarBuilder::zeros(self.vb.dtype(), &self.vb.device().clone());
        Qwen2::new(&self.config, std::mem::replace(&mut self.vb, empty), None)
    }

    /// Token ids that end generation: `<|im_end|>`, `<|endoftext|>` and the config's eos, when
    /// present, without duplicates.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut ids = Vec::new();
        let named = ["<|im_end|>", "<|endoftext|>"].into_iter().filter_map(|t| self.tokenizer.token_to_id(t));
        for id in named.chain(self.config.eos_token_id) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// Loads a base model, taking hub settings from the environment (`HF_HOME`, `HF_HUB_CACHE`,
/// `HF_ENDPOINT`, `HF_HUB_OFFLINE`).
pub fn load_base(src: &ModelSource, device: &Device, dtype: DType) -> Result<BaseModel> {
    load_base_with(src, device, dtype, &HubOptions::from_env())
}

/// [`load_base`] with explicit hub settings (tests point them at a temporary cache).
pub fn load_base_with(src: &ModelSource, device: &Device, dtype: DType, hub: &HubOptions) -> Result<BaseModel> {
    match src {
        ModelSource::Dir(d) => {
            let (config, vb, tokenizer) = dir::load_dir(d, device, dtype)?;
            Ok(BaseModel { config, vb, tokenizer, source: SourceInfo::Dir { dir: d.clone() } })
        }
        ModelSource::Hub { id, revision } => {
            let snap = hub::resolve_hub(id, revision.as_deref(), hub)?;
            let (config, vb, tokenizer) = dir::load_dir(&snap.dir, device, dtype)?;
            let source =
                SourceInfo::Hub { id: id.clone(), revision: snap.revision, commit: snap.commit, dir: snap.dir };
            Ok(BaseModel { config, vb, tokenizer, source })
        }
        ModelSource::Gguf(path) => {
            let (config, tensors, tokenizer) = gguf::load_gguf(path, device, dtype)?;
            let vb = VarBuilder::from_tensors(tensors, dtype, device);
            Ok(BaseModel { config, vb, tokenizer, source: SourceInfo::Gguf { path: path.clone() } })
        }
    }
}

/// Every tensor a Qwen2 checkpoint with this config must hold, with its HF name and shape
/// (`[out, in]` for projections), in checkpoint order. `lm_head.weight` is listed only when the
/// embeddings are not tied.
pub fn expected_tensors(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let q = cfg.num_attention_heads * cfg.head_dim();
    let kv = cfg.num_key_value_heads * cfg.head_dim();
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let layer: [(&str, Vec<usize>); 12] = [
            ("input_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![q, h]),
            ("self_attn.q_proj.bias", vec![q]),
            ("self_attn.k_proj.weight", vec![kv, h]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, h]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![h, q]),
            ("post_attention_layernorm.weight", vec![h]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ];
        out.extend(layer.into_iter().map(|(n, s)| (format!("{p}.{n}"), s)));
    }
    out.push(("model.norm.weight".to_string(), vec![h]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![v, h]));
    }
    out
}

/// Checks the values of a config that would otherwise fail deep inside the model.
fn check_config(cfg: &Config) -> std::result::Result<(), String> {
    if cfg.model_type != "qwen2" {
        return Err(format!(
            "model_type is '{}', but only Qwen2 / Qwen2.5 models (model_type 'qwen2') are supported",
            cfg.model_type
        ));
    }
    let dims = [
        ("vocab_size", cfg.vocab_size),
        ("hidden_size", cfg.hidden_size),
        ("intermediate_size", cfg.intermediate_size),
        ("num_hidden_layers", cfg.num_hidden_layers),
        ("num_attention_heads", cfg.num_attention_heads),
        ("num_key_value_heads", cfg.num_key_value_heads),
    ];
    if let Some((name, _)) = dims.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{name} is 0"));
    }
    if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) || !cfg.head_dim().is_multiple_of(2) {
        return Err(format!(
            "hidden_size {} must be num_attention_heads {} times an even head size",
            cfg.hidden_size, cfg.num_attention_heads
        ));
    }
    if !cfg.num_attention_heads.is_multiple_of(cfg.num_key_value_heads) {
        return Err(format!(
            "num_attention_heads {} is not a multiple of num_key_value_heads {}",
            cfg.num_attention_heads, cfg.num_key_value_heads
        ));
    }
    Ok(())
}

/// The lowercase hex sha256 of a file (a GGUF checkpoint, for manifests), streamed.
pub fn gguf_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::tiny_config;

    #[test]
    fn resolve_prefers_gguf_then_dir_then_hub() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_str().unwrap();
        let g = Path::new("x.gguf");
        assert_eq!(ModelSource::resolve(d, None, Some(g)), ModelSource::Gguf(g.into()));
        assert_eq!(ModelSource::resolve(d, Some("v1"), None), ModelSource::Dir(tmp.path().into()));
        let gguf_file = tmp.path().join("m.GGUF");
        std::fs::write(&gguf_file, b"").unwrap();
        let s = gguf_file.to_str().unwrap();
        assert_eq!(ModelSource::resolve(s, None, None), ModelSource::Gguf(gguf_file.clone()));
        assert_eq!(
            ModelSource::resolve("Qwen/Qwen2.5-0.5B-Instruct", Some("main"), None),
            ModelSource::Hub { id: "Qwen/Qwen2.5-0.5B-Instruct".into(), revision: Some("main".into()) }
        );
    }

    #[test]
    fn expected_tensors_follow_the_config() {
        let mut cfg = tiny_config();
        let untied = expected_tensors(&cfg);
        assert_eq!(untied.len(), 1 + 12 * cfg.num_hidden_layers + 2);
        let kv = cfg.num_key_value_heads * cfg.head_dim();
        let k = untied.iter().find(|(n, _)| n == "model.layers.1.self_attn.k_proj.weight").unwrap();
        assert_eq!(k.1, vec![kv, cfg.hidden_size]);
        cfg.tie_word_embeddings = true;
        let tied = expected_tensors(&cfg);
        assert_eq!(tied.len(), untied.len() - 1);
        assert!(tied.iter().all(|(n, _)| n != "lm_head.weight"));
    }

    #[test]
    fn check_config_rejects_bad_values() {
        assert!(check_config(&tiny_config()).is_ok());
        let mut c = tiny_config();
        c.model_type = "llama".into();
        assert!(check_config(&c).unwrap_err().contains("'llama'"));
        let mut c = tiny_config();
        c.num_key_value_heads = 3;
        assert!(check_config(&c).unwrap_err().contains("num_key_value_heads"));
        let mut c = tiny_config();
        c.hidden_size = 0;
        assert!(check_config(&c).unwrap_err().contains("hidden_size is 0"));
    }

    #[test]
    fn sha256_of_a_known_string() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(gguf_sha256(&p).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(matches!(gguf_sha256(&tmp.path().join("missing")), Err(Error::Io { .. })));
    }
}
