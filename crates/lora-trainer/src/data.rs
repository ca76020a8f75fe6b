//! From ChatML sample texts to token ids with per-token loss flags.
//!
//! A sample's text is `<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>`.
//! In [`LossMode::Answer`] only the answer tokens carry loss, closing `<|im_end|>` included, so the
//! tuned model learns to stop by itself; in [`LossMode::Sequence`] every token does.

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::config::LossMode;
use crate::error::{Error, Result};

/// Opens the assistant's turn; the answer starts right after it.
pub const ASSISTANT_MARKER: &str = "<|im_start|>assistant\n";
/// Closes a turn; the answer's closing one carries loss.
pub const IM_END: &str = "<|im_end|>";
/// Qwen's padding token; any id works since padding is masked, this one keeps dumps readable.
pub const PAD_TOKEN: &str = "<|endoftext|>";

/// One tokenized sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    /// `is_target[i]`: token i is predicted with loss (from position i - 1).
    pub is_target: Vec<bool>,
}

impl Example {
    /// Number of tokens that carry loss (the first token never can: nothing precedes it).
    pub fn n_targets(&self) -> usize {
        self.is_target.iter().skip(1).filter(|&&t| t).count()
    }

    /// Tokens the model must read: up to the position that predicts the last loss token. Later
    /// tokens (the closing `<|im_end|>` itself) predict nothing, and causal attention keeps them
    /// out of every earlier position, so feeding them would only cost FLOPs.
    pub fn input_len(&self) -> usize {
        match self.is_target.iter().skip(1).rposition(|&t| t) {
            Some(i) => i + 1,
            None => self.ids.len(),
        }
    }
}

/// The tokenized data set with what was cut.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub examples: Vec<Example>,
    /// Samples longer than max_length, cut to it.
    pub truncated: usize,
    /// Samples left without any loss token after truncation, hence skipped.
    pub dropped: usize,
}

/// Byte range of the answer in a ChatML text: from after the last assistant marker up to and
/// including the `<|im_end|>` that closes it.
pub fn answer_span(text: &str) -> std::result::Result<(usize, usize), String> {
    let start = text.rfind(ASSISTANT_MARKER).ok_or_else(|| {
        format!("no `{}` turn; the text must be ChatML with an assistant answer", ASSISTANT_MARKER.trim_end())
    })? + ASSISTANT_MARKER.len();
    let len = text[start..].find(IM_END).ok_or_else(|| format!("the assistant answer does not end with `{IM_END}`"))?;
    Ok((start, start + len + IM_END.len()))
}

/// The padding id: `<|endoftext|>` if the tokenizer has it, else 0.
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer.token_to_id(PAD_TOKEN).unwrap_or(0)
}

/// Tokenizes every text, flags loss tokens, truncates to `max_length` and warns once with counts.
pub fn tokenize_samples(
    tokenizer: &Tokenizer,
    texts: &[String],
    max_length: usize,
    mode: LossMode,
) -> Result<Prepared> {
    let im_end = tokenizer
        .token_to_id(IM_END)
        .ok_or_else(|| Error::NoData(format!("the tokenizer has no `{IM_END}` token; use a Qwen2.5 chat tokenizer")))?;
    let mut out = Prepared { examples: Vec::with_capacity(texts.len()), truncated: 0, dropped: 0 };
    for (index, text) in texts.iter().enumerate() {
        let sample_err = |message: String| Error::Sample { number: index + 1, message };
        let (start, end) = answer_span(text).map_err(sample_err)?;
        let enc = tokenizer.encode(text.as_str(), false).map_err(|e| sample_err(format!("tokenizer failed: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        let mut is_target: Vec<bool> = match mode {
            LossMode::Sequence => vec![true; ids.len()],
            // A token belongs to the answer if its bytes overlap the answer span.
            LossMode::Answer => enc.get_offsets().iter().map(|&(s, e)| e > start && s < end).collect(),
        };
        if mode == LossMode::Answer {
            let last = ids.iter().zip(&is_target).rev().find(|(_, t)| **t).map(|(id, _)| *id);
            if last != Some(im_end) {
                return Err(sample_err(format!(
                    "the answer's last token is not `{IM_END}`; the tokenizer must treat it as one special token"
                )));
            }
        }
        if ids.len() > max_length {
            out.truncated += 1;
            ids.truncate(max_length);
            is_target.truncate(max_length);
        }
        let example = Example { ids, is_target };
        if example.n_targets() == 0 {
            out.dropped += 1;
        } else {
            out.examples.push(example);
        }
    }
    if out.truncated > 0 {
        tracing::warn!(
            "{} of {} samples are longer than max_length = {max_length} tokens and were truncated ({} lost all loss tokens and are skipped); raise max_length to keep them whole",
            out.truncated,
            texts.len(),
            out.dropped
        );
    }
    Ok(out)
}

/// A digest of the tokenized data, stored in checkpoints so a resume on different data is refused.
pub fn fingerprint(examples: &[Example]) -> String {
    let mut h = Sha256::new();
    for ex in examples {
        h.update((ex.ids.len() as u64).to_le_bytes());
        for (&id, &t) in ex.ids.iter().zip(&ex.is_target) {
            h.update(id.to_le_bytes());
            h.update([t as u8]);
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn chatml(q: &str, a: &str) -> String {
        format!("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>")
    }

    #[test]
    fn answer_span_covers_answer_and_closing_tag() {
        let t = chatml("Q?", "依據公司規範:A");
        let (s, e) = answer_span(&t).unwrap();
        assert_eq!(&t[s..e], "依據公司規範:A<|im_end|>");
        assert!(answer_span("<|im_start|>user\nq<|im_end|>").unwrap_err().contains("assistant"));
        assert!(answer_span("<|im_start|>assistant\nno end").unwrap_err().contains(IM_END));
    }

    #[test]
    fn example_counts_targets_after_the_first_token() {
        let ex = Example { ids: vec![1, 2, 3], is_target: vec![true, false, true] };
        assert_eq!(ex.n_targets(), 1);
        let other = Example { ids: vec![1, 2, 4], ..ex.clone() };
        assert_ne!(fingerprint(std::slice::from_ref(&ex)), fingerprint(&[other]));
        assert_eq!(fingerprint(std::slice::from_ref(&ex)), fingerprint(&[ex]));
    }
}
