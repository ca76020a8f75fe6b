//! A tiny random Qwen2 with a small tokenizer, written to a directory for tests.
//!
//! [`write_tiny_model`] writes an HF directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`); [`write_tiny_model_sharded`] the same weights in two shards with an index;
//! [`write_tiny_gguf`] the same weights and tokenizer as an f32 GGUF; [`write_tiny_adapter`] a
//! LoRA adapter for it, and [`poison_adapter`] a broken one. All are seeded and take
//! milliseconds. The tokenizer is a byte-level BPE set up like Qwen2's (NFC, the Qwen2 split
//! regex, ByteLevel) over all 256 bytes plus a few hundred merges (English words, common Chinese
//! characters of the KB), with the ChatML special tokens last, so any NFC text round-trips.
//! [`process`] runs a binary and interrupts it, for the Ctrl-C tests of the binaries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::load::{expected_tensors, hf_to_gguf_name};
use crate::{Config, Error, Result};

pub mod process;

/// The ChatML special tokens, in Qwen2's id order, after the BPE vocabulary.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Qwen2's pre-tokenizer regex (from its `tokenizer.json`).
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Words that get merges, split into the units merged left to right.
const WORDS: &[&str] = &[
    " the",
    " and",
    " to",
    " of",
    " is",
    " in",
    " you",
    " a",
    " it",
    " for",
    " on",
    " with",
    "ing",
    "er",
    "Hello",
    " world",
    "user",
    "assistant",
    "system",
    " are",
    " your",
    " question",
    " answer",
    " company",
    " policy",
    " please",
    " leave",
    " days",
    " not",
    "The",
    "What",
    " how",
    " can",
    "\n\n",
    "  ",
];

/// Chinese characters that become single tokens, and words merged from them.
const HAN_CHARS: &str =
    "依據公司規範抱歉您好請問我們的是不在有這個什麼如何可以年假天員工年資加班費用申請主管核准小時月日內資料";
const HAN_WORDS: &[&str] =
    &["依據", "公司", "規範", "抱歉", "請問", "我們", "員工", "申請", "主管", "核准", "加班", "年假", "可以"];

/// GPT-2's reversible byte → printable-char map used by byte-level BPE.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut map = vec!['\0'; 256];
    for &b in &printable {
        map[b as usize] = char::from_u32(b).unwrap_or('?');
    }
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            map[b as usize] = char::from_u32(256 + n).unwrap_or('?');
            printable.push(b);
            n += 1;
        }
    }
    map
}

fn to_byte_level(s: &str, map: &[char]) -> String {
    s.bytes().map(|b| map[b as usize]).collect()
}

/// The BPE vocabulary (in id order) and merges (in rank order) of the tiny tokenizer.
fn tiny_vocab() -> (Vec<String>, Vec<(String, String)>) {
    let map = byte_chars();
    // Printable bytes first, as GPT-2 and Qwen2 order them.
    let mut order: Vec<u8> = (0..=255u8).collect();
    order.sort_by_key(|&b| (map[b as usize] as u32 >= 256, map[b as usize] as u32));
    let mut vocab: Vec<String> = order.iter().map(|&b| map[b as usize].to_string()).collect();
    let mut known: HashSet<String> = vocab.iter().cloned().collect();
    let mut merges = Vec::new();
    let mut merge = |a: String, b: String, vocab: &mut Vec<String>, merges: &mut Vec<(String, String)>| {
        let ab = format!("{a}{b}");
        if known.insert(ab.clone()) {
            vocab.push(ab);
            merges.push((a, b));
        }
    };
    // A unit (one character of the source text) is merged from its bytes, left to right.
    let mut unit = |u: &str, vocab: &mut Vec<String>, merges: &mut Vec<(String, String)>| -> String {
        let chars: Vec<String> = to_byte_level(u, &map).chars().map(String::from).collect();
        let mut acc = chars[0].clone();
        for c in &chars[1..] {
            merge(acc.clone(), c.clone(), vocab, merges);
            acc.push_str(c);
        }
        acc
    };
    let mut units_of = |units: Vec<String>, vocab: &mut Vec<String>, merges: &mut Vec<(String, String)>| {
        let pieces: Vec<String> = units.iter().map(|u| unit(u, vocab, merges)).collect();
        pieces
    };
    let mut words: Vec<Vec<String>> = Vec::new();
    for w in WORDS {
        words.push(units_of(w.chars().map(String::from).collect(), &mut vocab, &mut merges));
    }
    for c in HAN_CHARS.chars() {
        units_of(vec![c.to_string()], &mut vocab, &mut merges);
    }
    for w in HAN_WORDS {
        words.push(units_of(w.chars().map(String::from).collect(), &mut vocab, &mut merges));
    }
    let mut known: HashSet<String> = vocab.iter().cloned().collect();
    for pieces in words {
        let mut acc = pieces[0].clone();
        for p in &pieces[1..] {
            let ab = format!("{acc}{p}");
            if known.insert(ab.clone()) {
                vocab.push(ab.clone());
                merges.push((acc.clone(), p.clone()));
            }
            acc = ab;
        }
    }
    (vocab, merges)
}

/// The tiny model's config: 2 layers, hidden 64, 4 heads of 16, 2 KV heads, untied head.
pub fn tiny_config() -> Config {
    let vocab_size = tiny_vocab().0.len() + SPECIAL_TOKENS.len();
    Config {
        model_type: "qwen2".into(),
        vocab_size,
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 4096,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        bos_token_id: Some((vocab_size - 3) as u32),
        eos_token_id: Some((vocab_size - 1) as u32),
    }
}

/// The tiny byte-level BPE tokenizer with the ChatML special tokens.
pub fn tiny_tokenizer() -> Result<Tokenizer> {
    let (tokens, merges) = tiny_vocab();
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::msg(format!("tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let split = Split::new(SplitPattern::Regex(QWEN2_SPLIT.into()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| Error::msg(format!("tiny tokenizer regex: {e}")))?;
    tok.with_normalizer(Some(NFC)).map_err(|e| Error::msg(format!("tiny tokenizer: {e}")))?;
    tok.with_pre_tokenizer(Some(Sequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()])));
    tok.with_decoder(Some(ByteLevelDecoder::new(false, false, false)));
    tok.with_post_processor(Some(ByteLevelProcessor::new(false, false, false)));
    tok.add_special_tokens(SPECIAL_TOKENS.map(|s| AddedToken::from(s, true)))
        .map_err(|e| Error::msg(format!("tiny tokenizer: {e}")))?;
    Ok(tok)
}

/// The tiny model's weights under HF names, in checkpoint order: f32 on the CPU, normal with
/// std 0.1 (biases 0.05; norm weights around 1), from a seeded `StdRng`.
pub fn tiny_tensors(seed: u64) -> Result<Vec<(String, Tensor)>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = move || -> f32 {
        // Box–Muller; 1 - u keeps the log's argument in (0, 1].
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let mut out = Vec::new();
    for (name, shape) in expected_tensors(&tiny_config()) {
        let n: usize = shape.iter().product();
        let (base, std) = if name.ends_with("norm.weight") {
            (1.0, 0.1)
        } else if name.ends_with(".bias") {
            (0.0, 0.05)
        } else {
            (0.0, 0.1)
        };
        let data: Vec<f32> = (0..n).map(|_| base + std * normal()).collect();
        out.push((name, Tensor::from_vec(data, shape, &Device::Cpu)?));
    }
    Ok(out)
}

fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| Error::msg(format!("serializing safetensors: {e}")))
}

fn write_config_and_tokenizer(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cfg = serde_json::to_string_pretty(&tiny_config()).map_err(|e| Error::msg(e.to_string()))?;
    kb_dataset::write_atomic(&dir.join("config.json"), cfg.as_bytes())?;
    let tok = tiny_tokenizer()?.to_string(true).map_err(|e| Error::msg(format!("tiny tokenizer: {e}")))?;
    Ok(kb_dataset::write_atomic(&dir.join("tokenizer.json"), tok.as_bytes())?)
}

/// Writes the tiny model as an HF directory with a single `model.safetensors` (f32).
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    write_config_and_tokenizer(dir)?;
    Ok(kb_dataset::write_atomic(&dir.join("model.safetensors"), &safetensors_bytes(&tiny_tensors(seed)?)?)?)
}

/// Writes the tiny model with its weights in two shards and `model.safetensors.index.json`:
/// the embedding and layer 0 in the first, the rest in the second.
pub fn write_tiny_model_sharded(dir: &Path, seed: u64) -> Result<()> {
    write_config_and_tokenizer(dir)?;
    let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let (first, second): (Vec<_>, Vec<_>) = tiny_tensors(seed)?
        .into_iter()
        .partition(|(n, _)| n == "model.embed_tokens.weight" || n.starts_with("model.layers.0."));
    let mut weight_map = BTreeMap::new();
    let mut total = 0;
    for (file, part) in names.iter().zip([first, second]) {
        for (n, t) in &part {
            weight_map.insert(n.clone(), file.to_string());
            total += t.elem_count() * 4;
        }
        kb_dataset::write_atomic(&dir.join(file), &safetensors_bytes(&part)?)?;
    }
    let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    Ok(kb_dataset::write_atomic(&dir.join("model.safetensors.index.json"), index.to_string().as_bytes())?)
}

/// Writes the tiny model's weights and tokenizer as an f32 GGUF with `qwen2` metadata, under
/// GGUF tensor names, as llama.cpp's converter would.
pub fn write_tiny_gguf(path: &Path, seed: u64) -> Result<()> {
    use gguf_file::Value as V;
    let cfg = tiny_config();
    let (vocab, merges) = tiny_vocab();
    let mut tokens: Vec<V> = vocab.iter().map(|t| V::String(t.clone())).collect();
    tokens.extend(SPECIAL_TOKENS.map(|s| V::String(s.to_string())));
    // llama.cpp token types: 1 normal, 3 control.
    let types: Vec<V> = (0..tokens.len()).map(|i| V::I32(if i < vocab.len() { 1 } else { 3 })).collect();
    let merges: Vec<V> = merges.iter().map(|(a, b)| V::String(format!("{a} {b}"))).collect();
    let (bos, eos) = (vocab.len() as u32, vocab.len() as u32 + 2);
    let mut metadata = cfg.to_gguf_metadata();
    let tokenizer: Vec<(&str, V)> = vec![
        ("general.name", V::String("tiny-qwen2".into())),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("qwen2".into())),
        ("tokenizer.ggml.tokens", V::Array(tokens)),
        ("tokenizer.ggml.token_type", V::Array(types)),
        ("tokenizer.ggml.merges", V::Array(merges)),
        ("tokenizer.ggml.bos_token_id", V::U32(bos)),
        ("tokenizer.ggml.eos_token_id", V::U32(eos)),
        ("tokenizer.ggml.padding_token_id", V::U32(bos)),
        ("tokenizer.ggml.add_bos_token", V::Bool(false)),
    ];
    metadata.extend(tokenizer.into_iter().map(|(k, v)| (k.to_string(), v)));
    let mut qtensors = Vec::new();
    for (name, t) in tiny_tensors(seed)? {
        let g = hf_to_gguf_name(&name).ok_or_else(|| Error::msg(format!("no GGUF name for {name}")))?;
        qtensors.push((g, QTensor::quantize(&t, GgmlDType::F32)?));
    }
    let md: Vec<(&str, &V)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &md, &ts)?;
    Ok(kb_dataset::write_atomic(path, buf.get_ref())?)
}

/// Writes a LoRA adapter for the tiny model in `model_dir` to `adapter_dir` (r 4 on q_proj and
/// v_proj, B drawn from `seed` rather than zero, so the adapter changes what the model says).
pub fn write_tiny_adapter(model_dir: &Path, adapter_dir: &Path, seed: u64) -> Result<()> {
    let base = crate::load::load_base(
        &crate::load::ModelSource::Dir(model_dir.to_path_buf()),
        &Device::Cpu,
        candle_core::DType::F32,
    )?;
    let mut model = crate::model::Qwen2::new(&base.config, base.vb.clone(), None)?;
    let cfg = crate::lora::LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
        use_rslora: false,
    };
    model.attach_lora(&cfg, seed)?;
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, var) in model.lora_vars() {
        if name.contains("lora_B") {
            let v: Vec<f32> = (0..var.elem_count()).map(|_| rng.random_range(-0.05..0.05)).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu)?)?;
        }
    }
    crate::adapter::save_adapter(&model, adapter_dir, &"tiny".into())
}

/// Overwrites the first value of the first tensor (by name) of the adapter in `adapter_dir` with
/// `value` (NaN or an infinity, as a diverged training run leaves them) and returns that
/// tensor's name: a broken adapter for tests.
pub fn poison_adapter(adapter_dir: &Path, value: f32) -> Result<String> {
    let path = adapter_dir.join(crate::adapter::WEIGHTS_FILE);
    let mut tensors: Vec<(String, Tensor)> = candle_core::safetensors::load(&path, &Device::Cpu)?.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let (name, t) = &mut tensors[0];
    let mut v = t.flatten_all()?.to_vec1::<f32>()?;
    v[0] = value;
    *t = Tensor::from_vec(v, t.shape(), &Device::Cpu)?;
    let name = name.clone();
    kb_dataset::write_atomic(&path, &safetensors_bytes(&tensors)?)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_printable_chars() {
        let m = byte_chars();
        let set: HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert!(m.iter().all(|c| !c.is_whitespace() && !c.is_control()));
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn tokenizer_round_trips_mixed_text_and_keeps_chatml_tokens_whole() {
        let tok = tiny_tokenizer().unwrap();
        assert_eq!(tok.get_vocab_size(true), tiny_config().vocab_size);
        let v = tiny_config().vocab_size as u32;
        let text = "<|im_start|>user\n請問年假有幾天?😀 Hello world!<|im_end|>\n<|im_start|>assistant\n依據公司規範:員工 ab\tc\r\n";
        let enc = tok.encode(text, false).unwrap();
        let ids = enc.get_ids();
        assert_eq!(ids[0], v - 2, "<|im_start|> is one token");
        assert!(ids.contains(&(v - 1)));
        assert_eq!(tok.decode(ids, false).unwrap(), text);
        // Merges do fire: the KB's words are single tokens.
        let n = tok.encode("依據公司規範", false).unwrap().get_ids().len();
        assert!(n <= 3, "{n} tokens");
        assert!((300..=600).contains(&v), "vocab {v}");
    }

    #[test]
    fn tensors_are_seeded() {
        let a = tiny_tensors(1).unwrap();
        let b = tiny_tensors(1).unwrap();
        let c = tiny_tensors(2).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&a[1].1), flat(&b[1].1));
        assert_ne!(flat(&a[1].1), flat(&c[1].1));
        let std = {
            let x = flat(&a[0].1);
            (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
        };
        assert!((0.08..0.12).contains(&std), "{std}");
    }
}
