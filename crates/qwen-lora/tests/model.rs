//! The decoder against candle-transformers' Qwen2, batching, the KV cache and LoRA invariants.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_transformers::models::qwen2;
use common::*;
use qwen_lora::fixture::{tiny_config, tiny_tensors};
use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::model::{KvCache, Mode};

/// The tiny fixture's hyper-parameters as candle-transformers' Qwen2 config.
fn reference_config() -> qwen2::Config {
    let cfg = tiny_config();
    let json = serde_json::json!({
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
        "max_position_embeddings": cfg.max_position_embeddings, "sliding_window": 4096,
        "max_window_layers": 2, "tie_word_embeddings": false, "rope_theta": cfg.rope_theta,
        "rms_norm_eps": cfg.rms_norm_eps, "use_sliding_window": false, "hidden_act": "silu"
    });
    serde_json::from_value(json).unwrap()
}

fn reference_model() -> qwen2::ModelForCausalLM {
    qwen2::ModelForCausalLM::new(&reference_config(), tiny_vb(7, DType::F32)).unwrap()
}

fn reference_base() -> qwen2::Model {
    qwen2::Model::new(&reference_config(), tiny_vb(7, DType::F32)).unwrap()
}

#[test]
fn logits_match_candle_transformers_on_a_padded_batch() {
    let model = tiny_model(7, DType::F32);
    let lm_head: Tensor = tiny_tensors(7).unwrap().into_iter().find(|(n, _)| n == "lm_head.weight").unwrap().1;
    let lens = [9usize, 5, 7];
    let t = 9;
    let mut flat = Vec::new();
    let mut mask = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        let mut row = ids(i as u64, l);
        row.resize(t, 0); // right padding
        flat.extend(row);
        mask.extend((0..t).map(|p| (p < l) as u32));
    }
    let ids_t = Tensor::from_vec(flat.clone(), (3, t), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask, (3, t), &Device::Cpu).unwrap();
    let hidden = model.forward_hidden(&ids_t, &mask_t, Mode::Eval).unwrap(); // (3, t, h)
    let mut reference = reference_base();
    for (i, &l) in lens.iter().enumerate() {
        reference.clear_kv_cache();
        let row = Tensor::from_vec(flat[i * t..i * t + l].to_vec(), (1, l), &Device::Cpu).unwrap();
        let want = reference.forward(&row, 0, None).unwrap().squeeze(0).unwrap(); // (l, h)
        let got = hidden.i((i, ..l)).unwrap();
        let want_logits = want.matmul(&lm_head.t().unwrap()).unwrap();
        let got_logits = model.logits(&got).unwrap();
        let d = max_abs_diff(&got_logits, &want_logits);
        assert!(d < 1e-4, "row {i}: logits differ by {d}");
    }
}

fn reference_greedy(prompt: &[u32], n: usize) -> Vec<u32> {
    let mut m = reference_model();
    let mut out = Vec::new();
    let mut input = prompt.to_vec();
    let mut offset = 0;
    for _ in 0..n {
        let x = Tensor::from_vec(input.clone(), (1, input.len()), &Device::Cpu).unwrap();
        let logits = m.forward(&x, offset).unwrap().squeeze(0).unwrap().squeeze(0).unwrap();
        offset += input.len();
        let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        out.push(next);
        input = vec![next];
    }
    out
}

fn greedy(n: usize, batch_size: usize) -> GenerationConfig {
    GenerationConfig { max_new_tokens: n, batch_size, ..Default::default() }
}

#[test]
fn greedy_generation_matches_candle_transformers() {
    let model = tiny_model(7, DType::F32);
    for seed in 0..3 {
        let prompt = ids(seed, 6 + seed as usize);
        let ours = generate(&model, std::slice::from_ref(&prompt), &[], &greedy(12, 1), |_| {}).unwrap();
        assert_eq!(ours[0], reference_greedy(&prompt, 12), "prompt {seed}");
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    let model = tiny_model(3, DType::F32);
    let prompts: Vec<Vec<u32>> = (0..5).map(|i| ids(i, 3 + 2 * i as usize)).collect();
    // Stop on a token some rows hit early, so rows leave the batch at different steps.
    let one_by_one: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| generate(&model, std::slice::from_ref(p), &[], &greedy(10, 1), |_| {}).unwrap().remove(0))
        .collect();
    let stop = vec![one_by_one[1][3]];
    let single: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| generate(&model, std::slice::from_ref(p), &stop, &greedy(10, 1), |_| {}).unwrap().remove(0))
        .collect();
    assert!(single.iter().any(|s| s.len() < 10), "some row should stop early");
    // Batch 8 holds every prompt; batches 2 and 3 refill as rows finish (continuous batching), so
    // rows join a batch whose cache is longer than their prompt.
    for size in [8, 3, 2] {
        let mut finished = Vec::new();
        let batched = generate(&model, &prompts, &stop, &greedy(10, size), |n| finished.push(n)).unwrap();
        assert_eq!(batched, single, "batch size {size}");
        assert_eq!(finished, (1..=prompts.len()).collect::<Vec<_>>(), "batch size {size}");
    }
    let none = generate(&model, &prompts, &stop, &greedy(0, 2), |_| {}).unwrap();
    assert!(none.len() == prompts.len() && none.iter().all(Vec::is_empty));
}

#[test]
fn appended_cache_rows_decode_like_their_own_cache() {
    // Two caches of different lengths, joined (the shorter left-padded), then one decode step for
    // both rows at once must give each row's logits from its own cache.
    let model = tiny_model(11, DType::F32);
    let (a, b) = (ids(1, 7), ids(2, 4));
    let prefill = |seq: &[u32], cache: &mut KvCache| {
        let x = Tensor::from_vec(seq.to_vec(), (1, seq.len()), &Device::Cpu).unwrap();
        let positions: Vec<u32> = (0..seq.len() as u32).collect();
        model.forward_cached(&x, &positions, vec![1; seq.len()], cache).unwrap();
    };
    let step = |tok: u32, pos: usize, valid: Vec<u8>, cache: &mut KvCache, rows: usize| {
        let x = Tensor::from_vec(vec![tok; rows], (rows, 1), &Device::Cpu).unwrap();
        let h = model.forward_cached(&x, &vec![pos as u32; rows], valid, cache).unwrap();
        model.last_logits(&h).unwrap()
    };
    let (mut ca, mut cb) = (KvCache::default(), KvCache::default());
    prefill(&a, &mut ca);
    prefill(&b, &mut cb);
    let alone_a = step(9, a.len(), vec![1; a.len() + 1], &mut ca.clone(), 1);
    let alone_b = step(9, b.len(), vec![1; b.len() + 1], &mut cb.clone(), 1);
    for (first, second, first_len, second_len) in [(&ca, &cb, a.len(), b.len()), (&cb, &ca, b.len(), a.len())] {
        let mut joined = first.clone();
        joined.append_rows(second.clone()).unwrap();
        let t = a.len();
        assert_eq!(joined.len(), t);
        let valid = |len: usize| [vec![0u8; t - len], vec![1; len + 1]].concat();
        let x = Tensor::from_vec(vec![9u32, 9], (2, 1), &Device::Cpu).unwrap();
        let h = model
            .forward_cached(
                &x,
                &[first_len as u32, second_len as u32],
                [valid(first_len), valid(second_len)].concat(),
                &mut joined,
            )
            .unwrap();
        let both = model.last_logits(&h).unwrap();
        let (want_first, want_second) = if first_len == a.len() { (&alone_a, &alone_b) } else { (&alone_b, &alone_a) };
        assert!(max_abs_diff(&both.i(0..1).unwrap(), want_first) < 1e-5);
        assert!(max_abs_diff(&both.i(1..2).unwrap(), want_second) < 1e-5);
        // Once the long row has left, the padding in front of the short one can go, changing nothing.
        let short_row = if first_len < second_len { 0u32 } else { 1 };
        joined.select_rows(&Tensor::new(&[short_row], &Device::Cpu).unwrap()).unwrap();
        joined.drop_leading(t - b.len()).unwrap();
        assert_eq!(joined.len(), b.len() + 1);
        let next = step(5, b.len() + 1, vec![1; b.len() + 2], &mut joined, 1);
        let mut alone = cb.clone();
        step(9, b.len(), vec![1; b.len() + 1], &mut alone, 1);
        let want = step(5, b.len() + 1, vec![1; b.len() + 2], &mut alone, 1);
        assert!(max_abs_diff(&next, &want) < 1e-5);
        assert!(joined.drop_leading(joined.len() + 1).is_err());
    }
}

#[test]
fn kv_cache_decoding_equals_recomputing_the_prefix() {
    let model = tiny_model(11, DType::F32);
    let seq = ids(5, 12);
    let mut cache = KvCache::default();
    let first = 5;
    let x = Tensor::from_vec(seq[..first].to_vec(), (1, first), &Device::Cpu).unwrap();
    let positions: Vec<u32> = (0..first as u32).collect();
    let mut h = model.forward_cached(&x, &positions, vec![1; first], &mut cache).unwrap();
    for p in first..seq.len() {
        let cached = model.last_logits(&h).unwrap();
        let full_ids = Tensor::from_vec(seq[..p].to_vec(), (1, p), &Device::Cpu).unwrap();
        let full = model.forward_hidden(&full_ids, &full_ids.ones_like().unwrap(), Mode::Eval).unwrap();
        let d = max_abs_diff(&cached, &model.last_logits(&full).unwrap());
        assert!(d < 1e-5, "position {p}: cached logits differ by {d}");
        let x = Tensor::from_vec(vec![seq[p]], (1, 1), &Device::Cpu).unwrap();
        h = model.forward_cached(&x, &[p as u32], vec![1; p + 1], &mut cache).unwrap();
    }
}

#[test]
fn an_untrained_adapter_changes_nothing_and_a_trained_one_does() {
    let base = tiny_model(5, DType::F32);
    let mut lora = tiny_model(5, DType::F32);
    lora.attach_lora(&all_modules(), 9).unwrap();
    let x = Tensor::from_vec(ids(1, 8), (1, 8), &Device::Cpu).unwrap();
    let m = x.ones_like().unwrap();
    let h0 = base.forward_hidden(&x, &m, Mode::Eval).unwrap();
    let h1 = lora.forward_hidden(&x, &m, Mode::Eval).unwrap();
    assert_eq!(max_abs_diff(&h0, &h1), 0.0, "B = 0 must leave the output unchanged");
    randomize_b(&lora, 3);
    let h2 = lora.forward_hidden(&x, &m, Mode::Eval).unwrap();
    assert!(max_abs_diff(&h0, &h2) > 1e-3);
}

#[test]
fn merged_weights_give_the_same_logits_as_the_adapter() {
    let mut model = tiny_lora_model(4, DType::F32, &all_modules());
    let x = Tensor::from_vec(ids(2, 10), (1, 10), &Device::Cpu).unwrap();
    let m = x.ones_like().unwrap();
    let before = model.logits(&model.forward_hidden(&x, &m, Mode::Eval).unwrap().squeeze(0).unwrap()).unwrap();
    model.merge_lora().unwrap();
    assert!(model.lora_vars().is_empty());
    // A merged weight is a plain tensor: a recorded graph back to the adapter's variables would
    // keep the replaced weight and the delta alive (3× the memory of every merged projection).
    for (name, w) in model.named_weights().unwrap() {
        assert!(!w.track_op(), "{name} still records the ops that merged it");
    }
    let after = model.logits(&model.forward_hidden(&x, &m, Mode::Eval).unwrap().squeeze(0).unwrap()).unwrap();
    let d = max_abs_diff(&before, &after);
    assert!(d < 1e-4, "merged logits differ by {d}");
}

#[test]
fn dropout_is_seeded_and_only_active_in_training() {
    let mut cfg = all_modules();
    cfg.lora_dropout = 0.3;
    let model = tiny_lora_model(4, DType::F32, &cfg);
    let x = Tensor::from_vec(ids(2, 6), (1, 6), &Device::Cpu).unwrap();
    let m = x.ones_like().unwrap();
    let e1 = model.forward_hidden(&x, &m, Mode::Eval).unwrap();
    let e2 = model.forward_hidden(&x, &m, Mode::Eval).unwrap();
    let a = model.forward_hidden(&x, &m, Mode::Train { dropout_seed: 1 }).unwrap();
    let a2 = model.forward_hidden(&x, &m, Mode::Train { dropout_seed: 1 }).unwrap();
    let b = model.forward_hidden(&x, &m, Mode::Train { dropout_seed: 2 }).unwrap();
    assert_eq!(max_abs_diff(&e1, &e2), 0.0);
    assert_eq!(max_abs_diff(&a, &a2), 0.0, "same seed, same masks");
    assert!(max_abs_diff(&a, &b) > 1e-6, "another seed, other masks");
    assert!(max_abs_diff(&a, &e1) > 1e-6, "training applies dropout");
}

#[test]
fn half_weights_for_decoding_stay_close_to_f32() {
    let exact = tiny_model(11, DType::F32);
    let mut half = tiny_model(11, DType::F32);
    half.use_half_weights_for_decoding().unwrap();
    let seq = ids(5, 8);
    let x = Tensor::from_vec(seq.clone(), (1, seq.len()), &Device::Cpu).unwrap();
    let positions: Vec<u32> = (0..seq.len() as u32).collect();
    let logits = |m: &qwen_lora::model::Qwen2| {
        let h = m.forward_cached(&x, &positions, vec![1; seq.len()], &mut KvCache::default()).unwrap();
        m.last_logits(&h).unwrap()
    };
    let d = max_abs_diff(&logits(&exact), &logits(&half));
    // f16 keeps 11 significant bits: the logits move, but only by rounding.
    assert!(d > 0.0, "the f16 copies were not used");
    assert!(d < 1e-2, "f16 decoding weights moved the logits by {d}");
    // Prefill-sized inputs (more rows than a decoding step) still use the f32 weights.
    let long = ids(3, 40);
    let x = Tensor::from_vec(long.clone(), (1, long.len()), &Device::Cpu).unwrap();
    let h = |m: &qwen_lora::model::Qwen2| m.forward_hidden(&x, &x.ones_like().unwrap(), Mode::Eval).unwrap();
    assert_eq!(max_abs_diff(&h(&exact), &h(&half)), 0.0);
}
