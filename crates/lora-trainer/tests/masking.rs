//! The loss covers exactly the tokens it should: answer tokens (with the closing `<|im_end|>`),
//! never the prompt or the padding.

mod common;

use candle_core::{D, Device, Tensor};
use candle_nn::ops::log_softmax;
use common::*;
use lora_trainer::LossMode;
use lora_trainer::batch::collate;
use lora_trainer::data::{Example, tokenize_samples};
use lora_trainer::loss::batch_loss;
use qwen_lora::model::Mode;

fn loss_of(model: &qwen_lora::model::Qwen2, examples: &[&Example], pad: u32) -> (f64, usize) {
    let batch = collate(examples, pad);
    let t = batch.to_tensors(&Device::Cpu).unwrap();
    let l = batch_loss(model, &t, Mode::Eval).unwrap().to_scalar::<f32>().unwrap() as f64;
    (l, batch.targets.len())
}

#[test]
fn answer_targets_are_the_answer_and_its_closing_tag() {
    let tok = tokenizer();
    let (q, a) = ("請問年假如何?", "依據公司規範:年假需3天內由主管核准。");
    let p = tokenize_samples(&tok, &[sample(q, a)], 192, LossMode::Answer).unwrap();
    let ex = &p.examples[0];
    let target_ids: Vec<u32> = ex.ids.iter().zip(&ex.is_target).filter(|(_, t)| **t).map(|(i, _)| *i).collect();
    assert_eq!(tok.decode(&target_ids, false).unwrap(), format!("{a}<|im_end|>"));
    // Every prompt token is excluded: the targets are exactly the tokens after the prompt.
    let n_prompt = tok.encode(prompt(q).as_str(), false).unwrap().get_ids().len();
    assert!(ex.is_target[..n_prompt].iter().all(|t| !t));
    assert!(ex.is_target[n_prompt..].iter().all(|t| *t));

    let seq = tokenize_samples(&tok, &[sample(q, a)], 192, LossMode::Sequence).unwrap();
    assert!(seq.examples[0].is_target.iter().all(|t| *t));
}

#[test]
fn truncation_is_counted_and_samples_without_targets_are_dropped() {
    let tok = tokenizer();
    let samples = samples(&qa_pairs(3));
    let n_prompt = tok.encode(prompt("請問年假如何0?").as_str(), false).unwrap().get_ids().len();
    // Cut inside the first answer: truncated but kept.
    let p = tokenize_samples(&tok, &samples, n_prompt + 2, LossMode::Answer).unwrap();
    assert_eq!((p.truncated, p.dropped, p.examples.len()), (3, 0, 3));
    assert!(p.examples.iter().all(|e| e.ids.len() == n_prompt + 2));
    // Cut before any answer token: nothing left to learn.
    let p = tokenize_samples(&tok, &samples, 4, LossMode::Answer).unwrap();
    assert_eq!((p.truncated, p.dropped, p.examples.len()), (3, 3, 0));
}

/// The fixture tokenizer with `\n\n` as one token, as Qwen's own vocabulary has it.
fn tokenizer_merging_blank_lines() -> tokenizers::Tokenizer {
    let mut json: serde_json::Value = serde_json::from_str(&tokenizer().to_string(false).unwrap()).unwrap();
    let model = &mut json["model"];
    let free_id = model["vocab"].as_object().unwrap().len() + 3; // after the 3 special tokens
    model["vocab"]["ĊĊ"] = free_id.into();
    let merges = model["merges"].as_array_mut().unwrap();
    let merge = if merges[0].is_string() { serde_json::json!("Ċ Ċ") } else { serde_json::json!(["Ċ", "Ċ"]) };
    merges.push(merge);
    tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap()
}

#[test]
fn a_token_across_the_prompt_and_the_answer_is_an_error_naming_the_sample() {
    let tok = tokenizer_merging_blank_lines();
    let good = sample("請問年假?", "依據公司規範:年假。");
    assert_eq!(tokenize_samples(&tok, std::slice::from_ref(&good), 192, LossMode::Answer).unwrap().examples.len(), 1);
    // The prompt ends in `\n`; an answer starting with one more makes one `\n\n` token.
    let bad = [good, sample("請問加班?", "\n依據公司規範:加班。")];
    let e = tokenize_samples(&tok, &bad, 192, LossMode::Answer).unwrap_err().to_string();
    assert!(e.contains("sample #2") && e.contains("prefix"), "{e}");
    assert!(tokenize_samples(&tok, &bad, 192, LossMode::Sequence).is_ok());
}

/// The mask is the prompt's token count; before, it was every token whose bytes overlap the
/// answer's (from the end of the prompt to the end of the text). On the shipped data sets both
/// give the same tokens and the same flags, so the loss and the checkpoints' data fingerprint
/// are unchanged.
#[test]
fn answer_mask_equals_the_byte_offset_mask_on_the_shipped_data() {
    let tok = tokenizer();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    for name in ["train_qwen_v1.jsonl", "eval_qwen_v1.jsonl"] {
        let samples = kb_dataset::read_jsonl(root.join(name)).unwrap();
        let p = tokenize_samples(&tok, &samples, usize::MAX, LossMode::Answer).unwrap();
        assert_eq!((p.examples.len(), p.truncated, p.dropped), (samples.len(), 0, 0), "{name}");
        for (s, ex) in samples.iter().zip(&p.examples) {
            let text = s.text();
            let start = s.prompt().len();
            let enc = tok.encode(text.as_str(), false).unwrap();
            let by_offsets: Vec<bool> = enc.get_offsets().iter().map(|&(a, e)| e > start && a < text.len()).collect();
            assert_eq!(ex.ids, enc.get_ids(), "{name}: {}", s.question);
            assert_eq!(ex.is_target, by_offsets, "{name}: {}", s.question);
            assert!(ex.is_target.iter().any(|t| !t) && ex.n_targets() > 0, "{name}: {}", s.question);
        }
    }
}

#[test]
fn loss_matches_full_logits_over_answer_positions_only() {
    let tok = tokenizer();
    let model = tiny_model(&small_config().lora, 3);
    let (q, a) = ("請問加班如何?", "依據公司規範:加班需主管核准。");
    let ex = tokenize_samples(&tok, &[sample(q, a)], 192, LossMode::Answer).unwrap().examples.remove(0);
    let (loss, n) = loss_of(&model, &[&ex], 0);

    // Independent computation: logits at every position, NLL of the next token where it is an
    // answer token (position of the prompt's end and after).
    let n_prompt = tok.encode(prompt(q).as_str(), false).unwrap().get_ids().len();
    let len = ex.ids.len();
    let ids = Tensor::new(ex.ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let mask = Tensor::ones((1, len), candle_core::DType::U32, &Device::Cpu).unwrap();
    let hidden = model.forward_hidden(&ids, &mask, Mode::Eval).unwrap().squeeze(0).unwrap();
    let logp = log_softmax(&model.logits(&hidden).unwrap(), D::Minus1).unwrap().to_vec2::<f32>().unwrap();
    let nll: Vec<f64> = (n_prompt - 1..len - 1).map(|p| -logp[p][ex.ids[p + 1] as usize] as f64).collect();
    assert_eq!(n, nll.len());
    let want = nll.iter().sum::<f64>() / nll.len() as f64;
    assert!((loss - want).abs() < 1e-4, "{loss} vs {want}");
    // The whole-sequence mean is different, so the check above can tell them apart.
    let all: Vec<f64> = (0..len - 1).map(|p| -logp[p][ex.ids[p + 1] as usize] as f64).collect();
    let seq = all.iter().sum::<f64>() / all.len() as f64;
    assert!((seq - want).abs() > 1e-3);
}

#[test]
fn padding_and_its_token_ids_do_not_change_the_loss() {
    let tok = tokenizer();
    let model = tiny_model(&small_config().lora, 3);
    let pairs = [
        ("請問年假?".to_string(), "依據公司規範:年假。".to_string()),
        (
            "請問員工年資如何計算,加班費用如何申請?".to_string(),
            "依據公司規範:員工年資按月計算,加班費用需主管核准。".to_string(),
        ),
    ];
    let p = tokenize_samples(&tok, &samples(&pairs), 192, LossMode::Answer).unwrap();
    let (short, long) = (&p.examples[0], &p.examples[1]);
    assert!(short.ids.len() < long.ids.len());
    let (l_short, n_short) = loss_of(&model, &[short], 0);
    let (l_long, n_long) = loss_of(&model, &[long], 0);
    let alone = (l_short * n_short as f64 + l_long * n_long as f64) / (n_short + n_long) as f64;
    for pad in [0u32, 5, 123] {
        // The short sample is right-padded to the long one's input length here.
        let (l_batch, n) = loss_of(&model, &[short, long], pad);
        assert_eq!(n, n_short + n_long);
        assert!((l_batch - alone).abs() < 1e-5, "pad {pad}: {l_batch} vs {alone}");
    }
}
