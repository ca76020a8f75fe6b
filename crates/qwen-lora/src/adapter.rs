//! Adapter files in exactly PEFT's format, so adapters move between kb-lora, Python PEFT, vLLM
//! and llama.cpp's converter unchanged.
//!
//! A directory with `adapter_config.json` and `adapter_model.safetensors`, whose keys read
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (r, in) and `…lora_B.weight`
//! (out, r), f32.
//!
//! - [`save_adapter`] / [`load_adapter`]: a model's adapter to disk and back (atomic writes).
//! - [`read_adapter`] → [`AdapterWeights`]: the pairs without a model (for export tools), with
//!   [`AdapterWeights::check_base`] against a base config. Every mismatch (layer count, shapes,
//!   module names, rank, missing files, DoRA or per-module ranks) is an error naming the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::load::expected_tensors;
use crate::lora::{LoraConfig, MODULES};
use crate::model::{Qwen2, module_path};
use crate::{BaseModelId, Config, Error, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `adapter_config.json`: the fields PEFT writes for a LoRA adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: TargetModules,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    /// DoRA (weight-decomposed LoRA) needs magnitude vectors this tool does not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_dora: bool,
    /// Per-module ranks overriding `r` (PEFT writes `{}` when unused); not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_pattern: Option<BTreeMap<String, serde_json::Value>>,
    /// Per-module alphas overriding `lora_alpha`; not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_pattern: Option<BTreeMap<String, serde_json::Value>>,
}

fn none() -> String {
    "none".into()
}

/// PEFT stores target modules as a list, or as one name/regex string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    One(String),
}

impl AdapterConfig {
    pub fn new(lora: &LoraConfig, base_model: &BaseModelId) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: lora.r,
            lora_alpha: lora.lora_alpha,
            lora_dropout: lora.lora_dropout,
            target_modules: TargetModules::List(lora.target_modules.clone()),
            bias: "none".into(),
            use_rslora: lora.use_rslora,
            base_model_name_or_path: Some(base_model.name_or_path.clone()),
            revision: base_model.revision.clone(),
            fan_in_fan_out: false,
            inference_mode: true,
            use_dora: false,
            rank_pattern: None,
            alpha_pattern: None,
        }
    }

    /// The LoRA settings, rejecting what this tool cannot apply.
    pub fn lora_config(&self, path: &Path) -> Result<LoraConfig> {
        let bad = |msg: String| Error::file(path, msg);
        if self.peft_type != "LORA" {
            return Err(bad(format!("peft_type is '{}', only LORA adapters are supported", self.peft_type)));
        }
        if self.bias != "none" {
            return Err(bad(format!("bias is '{}', only 'none' is supported", self.bias)));
        }
        if self.fan_in_fan_out {
            return Err(bad("fan_in_fan_out is true; Qwen2 projections are not Conv1D, expected false".into()));
        }
        if self.use_dora {
            return Err(bad("use_dora is true: DoRA adapters are not supported, only plain LoRA".into()));
        }
        for (field, pattern) in [("rank_pattern", &self.rank_pattern), ("alpha_pattern", &self.alpha_pattern)] {
            if let Some(p) = pattern.as_ref().filter(|p| !p.is_empty()) {
                let keys: Vec<&str> = p.keys().map(String::as_str).collect();
                return Err(bad(format!(
                    "{field} sets per-module values ({}); only one r and lora_alpha for all modules are supported",
                    keys.join(", ")
                )));
            }
        }
        let target_modules = match &self.target_modules {
            TargetModules::List(l) => l.clone(),
            TargetModules::One(s) if MODULES.contains(&s.as_str()) => vec![s.clone()],
            TargetModules::One(s) => {
                return Err(bad(format!("target_modules is the pattern '{s}'; list the module names instead")));
            }
        };
        let cfg = LoraConfig {
            r: self.r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules,
            use_rslora: self.use_rslora,
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` for the model's adapter.
pub fn save_adapter(model: &Qwen2, dir: &Path, base_model: &BaseModelId) -> Result<()> {
    let lora = model.lora_config().ok_or_else(|| Error::msg("the model has no adapter to save"))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors: Vec<(String, Tensor)> = model
        .lora_vars()
        .into_iter()
        .map(|(k, v)| Ok((k, v.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let weights = dir.join(WEIGHTS_FILE);
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .map_err(|e| Error::file(&weights, e.to_string()))?;
    kb_dataset::write_atomic(&weights, &bytes)?;
    let cfg = AdapterConfig::new(lora, base_model);
    let json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::msg(e.to_string()))?;
    Ok(kb_dataset::write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())?)
}

/// An adapter read from its directory and checked on its own, not yet matched to a base model.
pub struct AdapterWeights {
    pub config: AdapterConfig,
    pub lora: LoraConfig,
    /// (layer, module) → (A (r, in), B (out, r)), as stored (usually f32), on the CPU.
    pub pairs: BTreeMap<(usize, String), (Tensor, Tensor)>,
    /// The weights file, for error messages.
    pub weights_path: PathBuf,
}

impl AdapterWeights {
    /// Checks that every adapter pair fits a base model with this config: the layer exists and
    /// A is (r, in), B is (out, r) for that projection's (out, in).
    pub fn check_base(&self, cfg: &Config) -> Result<()> {
        let shapes: HashMap<String, Vec<usize>> = expected_tensors(cfg).into_iter().collect();
        for ((layer, module), (a, b)) in &self.pairs {
            if *layer >= cfg.num_hidden_layers {
                return Err(Error::file(
                    &self.weights_path,
                    format!(
                        "{} is for layer {layer}, but the base model has {} layers (0..={}): the adapter was trained for another model",
                        module_path(*layer, module),
                        cfg.num_hidden_layers,
                        cfg.num_hidden_layers.saturating_sub(1)
                    ),
                ));
            }
            let name = format!("{}.weight", module_path(*layer, module));
            let (out, inp) = match shapes.get(&name).map(Vec::as_slice) {
                Some(&[o, i]) => (o, i),
                _ => return Err(Error::msg(format!("internal: no expected shape for {name}"))),
            };
            let r = self.lora.r;
            if a.dims() != [r, inp] || b.dims() != [out, r] {
                return Err(Error::file(
                    &self.weights_path,
                    format!(
                        "{}: lora_A {:?} / lora_B {:?} do not fit the base weight ({out}, {inp}) with r = {r}; expected lora_A [{r}, {inp}] and lora_B [{out}, {r}]: the adapter was trained for another model",
                        module_path(*layer, module),
                        a.dims(),
                        b.dims()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads an adapter directory (ours or Python PEFT's) without a model: the config, and every
/// LoRA pair grouped by (layer, module), with names, ranks and pairing checked.
pub fn read_adapter(dir: &Path) -> Result<AdapterWeights> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            format!("adapter directory not found (it should hold {CONFIG_FILE} and {WEIGHTS_FILE})"),
        ));
    }
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Err(Error::file(
            &cfg_path,
            format!(
                "missing: an adapter directory holds {CONFIG_FILE} and {WEIGHTS_FILE}, as PEFT's save_pretrained writes them"
            ),
        ));
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let config: AdapterConfig =
        serde_json::from_str(&text).map_err(|e| Error::file(&cfg_path, format!("not a PEFT adapter config: {e}")))?;
    let lora = config.lora_config(&cfg_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        let hint = if dir.join("adapter_model.bin").is_file() {
            "; only adapter_model.bin (pickle) is there: re-save the adapter with safe_serialization=True"
        } else {
            ""
        };
        return Err(Error::file(&weights, format!("missing: the adapter's weights file is not there{hint}")));
    }
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| Error::file(&weights, format!("not a readable safetensors file: {e}")))?;
    let pairs = group_by_module(&tensors, &lora, &weights)?;
    Ok(AdapterWeights { config, lora, pairs, weights_path: weights })
}

/// Reads an adapter directory (ours or Python PEFT's) and installs it on `model`, replacing any
/// adapter it had. Rejects adapters that do not fit the base.
pub fn load_adapter(model: &mut Qwen2, dir: &Path) -> Result<AdapterConfig> {
    let adapter = read_adapter(dir)?;
    adapter.check_base(model.config())?;
    let AdapterWeights { config, lora, pairs, weights_path } = adapter;
    model
        .set_adapters(&lora, |l, m| pairs.get(&(l, m.to_string())).cloned())
        .map_err(|e| Error::file(&weights_path, e.to_string()))?;
    Ok(config)
}

/// Maps PEFT keys to (layer, module) → (A, B), accepting keys with or without the adapter name
/// (`lora_A.weight` and `lora_A.default.weight`).
fn group_by_module(
    tensors: &HashMap<String, Tensor>,
    lora: &LoraConfig,
    path: &Path,
) -> Result<BTreeMap<(usize, String), (Tensor, Tensor)>> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    for key in keys {
        let t = &tensors[key];
        let (layer, module, is_a) = parse_key(key).ok_or_else(|| {
            Error::file(
                path,
                format!(
                    "unexpected tensor '{key}': expected LoRA weights named like \
                     base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (modules: {})",
                    MODULES.join(", ")
                ),
            )
        })?;
        if !lora.target_modules.iter().any(|m| m == &module) {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{key}' targets {module}, which target_modules in {CONFIG_FILE} does not list ({})",
                    lora.target_modules.join(", ")
                ),
            ));
        }
        let &[d0, d1] = t.dims() else {
            return Err(Error::file(path, format!("tensor '{key}' has shape {:?}; LoRA weights are 2-D", t.dims())));
        };
        let rank = if is_a { d0 } else { d1 };
        if rank != lora.r {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{key}' has shape [{d0}, {d1}], i.e. rank {rank}, but {CONFIG_FILE} says r = {}",
                    lora.r
                ),
            ));
        }
        // A diverged run saves NaN or infinite weights; merged, they turn every answer into one
        // repeated token, so they are refused here, where the tensor can still be named.
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{key}' holds {value} (at flat index {index} of {}); the adapter is broken, as after a \
                     diverged training run: retrain it (e.g. with a lower learning rate) or use an earlier checkpoint",
                    values.len()
                ),
            ));
        }
        let map = if is_a { &mut a } else { &mut b };
        map.insert((layer, module), t.clone());
    }
    let mut out = BTreeMap::new();
    for (k, ta) in a {
        let tb = b
            .remove(&k)
            .ok_or_else(|| Error::file(path, format!("{} has lora_A but no lora_B", module_path(k.0, &k.1))))?;
        out.insert(k, (ta, tb));
    }
    if let Some((k, _)) = b.into_iter().next() {
        return Err(Error::file(path, format!("{} has lora_B but no lora_A", module_path(k.0, &k.1))));
    }
    if out.is_empty() {
        return Err(Error::file(path, "no LoRA tensors found"));
    }
    Ok(out)
}

fn parse_key(key: &str) -> Option<(usize, String, bool)> {
    let rest = key.strip_prefix("base_model.model.")?;
    let rest = rest.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (group, rest) = rest.split_once('.')?;
    let (module, rest) = rest.split_once('.')?;
    let expected_group = if ["gate_proj", "up_proj", "down_proj"].contains(&module) { "mlp" } else { "self_attn" };
    if group != expected_group || !MODULES.contains(&module) {
        return None;
    }
    let is_a = match rest {
        "lora_A.weight" | "lora_A.default.weight" => true,
        "lora_B.weight" | "lora_B.default.weight" => false,
        _ => return None,
    };
    Some((layer, module.to_string(), is_a))
}
