//! From typed samples to token ids with per-token loss flags.
//!
//! A sample is tokenized as its ChatML text ([`Sample::text`]); its prompt ([`Sample::prompt`],
//! the text up to where the assistant's answer starts) is tokenized too, and the tokens after
//! the prompt's are the answer's. In [`LossMode::Answer`] only those carry loss, closing
//! `<|im_end|>` included, so the tuned model learns to stop by itself; in [`LossMode::Sequence`]
//! every token does.

use kb_dataset::Sample;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::config::LossMode;
use crate::error::{Error, Result};

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

/// The padding id: `<|endoftext|>` if the tokenizer has it, else 0.
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer.token_to_id(PAD_TOKEN).unwrap_or(0)
}

/// Tokenizes every sample, flags loss tokens, truncates to `max_length` and warns once with
/// counts.
pub fn tokenize_samples(
    tokenizer: &Tokenizer,
    samples: &[Sample],
    max_length: usize,
    mode: LossMode,
) -> Result<Prepared> {
    let im_end = tokenizer
        .token_to_id(IM_END)
        .ok_or_else(|| Error::NoData(format!("the tokenizer has no `{IM_END}` token; use a Qwen2.5 chat tokenizer")))?;
    let mut out = Prepared { examples: Vec::with_capacity(samples.len()), truncated: 0, dropped: 0 };
    for (index, sample) in samples.iter().enumerate() {
        let sample_err = |message: String| Error::Sample { number: index + 1, message };
        let encode = |text: String| {
            tokenizer
                .encode(text, false)
                .map(|enc| enc.get_ids().to_vec())
                .map_err(|e| sample_err(format!("tokenizer failed: {e}")))
        };
        let mut ids = encode(sample.text())?;
        let mut is_target: Vec<bool> = match mode {
            LossMode::Sequence => vec![true; ids.len()],
            LossMode::Answer => {
                let prompt = encode(sample.prompt())?;
                if !ids.starts_with(&prompt) {
                    return Err(sample_err(
                        "the prompt's tokens are not a prefix of the sample's: a token spans the start of the \
                         answer; remove the whitespace the answer starts with"
                            .into(),
                    ));
                }
                if ids.last() != Some(&im_end) {
                    return Err(sample_err(format!(
                        "the answer's last token is not `{IM_END}`; the tokenizer must treat it as one special token"
                    )));
                }
                (0..ids.len()).map(|i| i >= prompt.len()).collect()
            }
        };
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
            samples.len(),
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

    #[test]
    fn example_counts_targets_after_the_first_token() {
        let ex = Example { ids: vec![1, 2, 3], is_target: vec![true, false, true] };
        assert_eq!(ex.n_targets(), 1);
        let other = Example { ids: vec![1, 2, 4], ..ex.clone() };
        assert_ne!(fingerprint(std::slice::from_ref(&ex)), fingerprint(&[other]));
        assert_eq!(fingerprint(std::slice::from_ref(&ex)), fingerprint(&[ex]));
    }
}
