//! The training objective: mean cross-entropy over the positions whose next token carries loss.
//! Only those rows go through the vocabulary projection — the largest matmul per token.

use candle_core::Tensor;
use qwen_lora::model::{Mode, Qwen2};
use qwen_lora::ops::cross_entropy;

use crate::batch::BatchTensors;
use crate::error::{Error, Result};

/// Scalar mean loss of one micro-batch (f32).
pub fn batch_loss(model: &Qwen2, batch: &BatchTensors, mode: Mode) -> Result<Tensor> {
    let (b, t) = batch.ids.dims2()?;
    if batch.positions.dim(0)? == 0 {
        return Err(Error::NoData("a micro-batch has no token that carries loss".into()));
    }
    let hidden = model.forward_hidden(&batch.ids, &batch.attention_mask, mode)?; // (b, t, h)
    let h = hidden.dim(2)?;
    let picked = hidden.reshape((b * t, h))?.index_select(&batch.positions, 0)?; // (n, h)
    let logits = model.logits(&picked)?; // (n, vocab) f32
    Ok(cross_entropy(&logits, &batch.targets)?)
}
