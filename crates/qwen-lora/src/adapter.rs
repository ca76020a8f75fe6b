//! Adapter files in exactly PEFT's format, so adapters move between kb-lora, Python PEFT, vLLM
//! and llama.cpp's converter unchanged.
//!
//! A directory with `adapter_config.json` and `adapter_model.safetensors`, whose keys read
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (r, in) and `…lora_B.weight`
//! (out, r), f32.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::lora::{LoraConfig, MODULES};
use crate::model::{Qwen2, module_path};
use crate::{Error, Result};

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
    pub fn new(lora: &LoraConfig, base_model: &str) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: lora.r,
            lora_alpha: lora.lora_alpha,
            lora_dropout: lora.lora_dropout,
            target_modules: TargetModules::List(lora.target_modules.clone()),
            bias: "none".into(),
            use_rslora: lora.use_rslora,
            base_model_name_or_path: Some(base_model.to_string()),
            revision: None,
            fan_in_fan_out: false,
            inference_mode: true,
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

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` for the model's adapter.
pub fn save_adapter(model: &Qwen2, dir: &Path, base_model: &str) -> Result<()> {
    let lora = model.lora_config().ok_or_else(|| Error::msg("the model has no adapter to save"))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors: HashMap<String, Tensor> = model
        .lora_vars()
        .into_iter()
        .map(|(k, v)| Ok((k, v.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let weights = dir.join(WEIGHTS_FILE);
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::serialize(tensors.iter().map(|(k, t)| (k.clone(), SafeView(t))), Some(meta))
        .map_err(|e| Error::file(&weights, e.to_string()))?;
    write_atomic(&weights, &bytes)?;
    let cfg = AdapterConfig::new(lora, base_model);
    let json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&dir.join(CONFIG_FILE), json.as_bytes())
}

/// Reads an adapter directory (ours or Python PEFT's) and installs it on `model`, replacing any
/// adapter it had. Rejects adapters that do not fit the base.
pub fn load_adapter(model: &mut Qwen2, dir: &Path) -> Result<AdapterConfig> {
    let cfg_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: AdapterConfig =
        serde_json::from_str(&text).map_err(|e| Error::file(&cfg_path, format!("not a PEFT adapter config: {e}")))?;
    let lora = cfg.lora_config(&cfg_path)?;
    let weights = dir.join(WEIGHTS_FILE);
    let tensors =
        candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| Error::file(&weights, e.to_string()))?;
    let pairs = group_by_module(&tensors, model.num_layers(), &lora, &weights)?;
    model
        .set_adapters(&lora, |l, m| pairs.get(&(l, m.to_string())).cloned())
        .map_err(|e| Error::file(&weights, e.to_string()))?;
    Ok(cfg)
}

/// Maps PEFT keys to (layer, module) → (A, B), accepting keys with or without the adapter name
/// (`lora_A.weight` and `lora_A.default.weight`).
fn group_by_module(
    tensors: &HashMap<String, Tensor>,
    n_layers: usize,
    lora: &LoraConfig,
    path: &Path,
) -> Result<BTreeMap<(usize, String), (Tensor, Tensor)>> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    for (key, t) in tensors {
        let parsed = parse_key(key).ok_or_else(|| {
            Error::file(path, format!("unexpected tensor '{key}': not a LoRA weight of a Qwen2 projection"))
        })?;
        let (layer, module, is_a) = parsed;
        if layer >= n_layers {
            return Err(Error::file(
                path,
                format!("tensor '{key}' is for layer {layer}, but the base model has {n_layers} layers"),
            ));
        }
        if !lora.target_modules.iter().any(|m| m == &module) {
            return Err(Error::file(
                path,
                format!("tensor '{key}' targets {module}, which adapter_config.json does not list"),
            ));
        }
        let rank = if is_a { t.dim(0)? } else { t.dim(1)? };
        if rank != lora.r {
            return Err(Error::file(
                path,
                format!("tensor '{key}' has rank {rank}, adapter_config.json says r = {}", lora.r),
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

/// A candle tensor seen as a safetensors view (f32 only; adapters are saved in f32).
struct SafeView<'a>(&'a Tensor);

impl safetensors::View for SafeView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.dims()
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let v: Vec<f32> = self.0.flatten_all().and_then(|t| t.to_vec1()).unwrap_or_default();
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.elem_count() * 4
    }
}
