//! The model's hyper-parameters, read from Hugging Face `config.json` or from GGUF metadata.

use candle_core::quantized::gguf_file;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// Qwen2 hyper-parameters; field names are those of HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Some configs list several eos ids; the first is kept (the loader adds the ChatML ones).
    #[serde(default, deserialize_with = "one_or_first")]
    pub eos_token_id: Option<u32>,
}

/// Accepts `null`, a number or a list of numbers (taking the first).
fn one_or_first<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(u32),
        Many(Vec<u32>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(v)) => Some(v),
        Some(OneOrMany::Many(v)) => v.first().copied(),
    })
}

fn default_model_type() -> String {
    "qwen2".into()
}
fn default_max_pos() -> usize {
    32768
}
fn default_rope_theta() -> f64 {
    1_000_000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}

impl Config {
    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Reads a GGUF metadata value as an unsigned integer, whatever integer type the writer chose.
fn gguf_uint(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    use gguf_file::Value as V;
    let v = ct.metadata.get(key).ok_or_else(|| Error::msg(format!("missing GGUF metadata key `{key}`")))?;
    let n: i128 = match v {
        V::U8(x) => *x as i128,
        V::I8(x) => *x as i128,
        V::U16(x) => *x as i128,
        V::I16(x) => *x as i128,
        V::U32(x) => *x as i128,
        V::I32(x) => *x as i128,
        V::U64(x) => *x as i128,
        V::I64(x) => *x as i128,
        other => {
            return Err(Error::msg(format!("GGUF metadata `{key}` should be an integer, found {other:?}")));
        }
    };
    usize::try_from(n).map_err(|_| Error::msg(format!("GGUF metadata `{key}` is out of range: {n}")))
}

/// Reads a GGUF metadata float. An f32 goes through its shortest decimal form so `1e-6` stored as
/// f32 reads back as the f64 `1e-6`, and a GGUF config equals the `config.json` it came from.
fn gguf_float(ct: &gguf_file::Content, key: &str) -> Result<Option<f64>> {
    use gguf_file::Value as V;
    Ok(match ct.metadata.get(key) {
        None => None,
        Some(V::F32(x)) => Some(x.to_string().parse::<f64>().unwrap_or(*x as f64)),
        Some(V::F64(x)) => Some(*x),
        Some(_) => Some(gguf_uint(ct, key)? as f64),
    })
}

impl Config {
    /// The `general.architecture` and `qwen2.*` GGUF metadata that [`Config::from_gguf`] reads back
    /// (the vocabulary size comes from `token_embd.weight`'s shape, not from metadata).
    pub fn to_gguf_metadata(&self) -> Vec<(String, gguf_file::Value)> {
        use gguf_file::Value as V;
        let u = |v: usize| V::U32(v as u32);
        [
            ("general.architecture", V::String("qwen2".into())),
            ("qwen2.block_count", u(self.num_hidden_layers)),
            ("qwen2.context_length", u(self.max_position_embeddings)),
            ("qwen2.embedding_length", u(self.hidden_size)),
            ("qwen2.feed_forward_length", u(self.intermediate_size)),
            ("qwen2.attention.head_count", u(self.num_attention_heads)),
            ("qwen2.attention.head_count_kv", u(self.num_key_value_heads)),
            ("qwen2.rope.freq_base", V::F32(self.rope_theta as f32)),
            ("qwen2.attention.layer_norm_rms_epsilon", V::F32(self.rms_norm_eps as f32)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The config of a GGUF checkpoint, from its `general.architecture` and `qwen2.*` metadata.
    /// `vocab_size` is the row count of `token_embd.weight`; embeddings are tied when the file
    /// has no `output.weight`.
    pub fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let arch = match ct.metadata.get("general.architecture") {
            Some(gguf_file::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::msg(format!("GGUF metadata `general.architecture` is not a string: {other:?}")));
            }
            None => {
                return Err(Error::msg("missing GGUF metadata key `general.architecture`"));
            }
        };
        if arch != "qwen2" {
            return Err(Error::msg(format!(
                "general.architecture is '{arch}', but only Qwen2 / Qwen2.5 checkpoints ('qwen2') are supported"
            )));
        }
        let embd = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| Error::msg("tensor `token_embd.weight` is missing"))?;
        let vocab_size = *embd.shape.dims().first().unwrap_or(&0);
        let key = |k: &str| format!("{arch}.{k}");
        let optional_id = |k: &str| gguf_uint(ct, k).ok().and_then(|v| u32::try_from(v).ok());
        Ok(Self {
            model_type: arch.clone(),
            vocab_size,
            hidden_size: gguf_uint(ct, &key("embedding_length"))?,
            intermediate_size: gguf_uint(ct, &key("feed_forward_length"))?,
            num_hidden_layers: gguf_uint(ct, &key("block_count"))?,
            num_attention_heads: gguf_uint(ct, &key("attention.head_count"))?,
            num_key_value_heads: gguf_uint(ct, &key("attention.head_count_kv"))?,
            max_position_embeddings: gguf_uint(ct, &key("context_length")).unwrap_or_else(|_| default_max_pos()),
            rope_theta: gguf_float(ct, &key("rope.freq_base"))?.unwrap_or_else(default_rope_theta),
            rms_norm_eps: gguf_float(ct, &key("attention.layer_norm_rms_epsilon"))?.unwrap_or_else(default_rms_eps),
            tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
            bos_token_id: optional_id("tokenizer.ggml.bos_token_id"),
            eos_token_id: optional_id("tokenizer.ggml.eos_token_id"),
        })
    }
}
