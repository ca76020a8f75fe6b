//! Micro-batches: grouped by length, each sample cut after the position that predicts its last loss
//! token and padded only to the longest such input of its batch, with the flat positions whose next
//! token carries loss, so the vocabulary projection runs only there.

use candle_core::{Device, Tensor};
use qwen_lora::SplitMix64;

use crate::data::Example;
use crate::error::Result;

/// One padded micro-batch, still on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub batch_size: usize,
    pub seq_len: usize,
    /// (b * t) token ids, right-padded.
    pub ids: Vec<u32>,
    /// (b * t), 1 on tokens, 0 on padding.
    pub attention_mask: Vec<u32>,
    /// Flat indices b * t + p of positions p whose next token p + 1 carries loss (causal shift).
    pub positions: Vec<u32>,
    /// The token each of `positions` must predict.
    pub targets: Vec<u32>,
    /// The samples' tokens, for throughput figures (those after the last loss position included,
    /// although they are not fed: see [`Example::input_len`]).
    pub real_tokens: usize,
}

/// A batch on the device: ids (b, t) u32, attention_mask (b, t) u32, positions (n,) u32, targets (n,) u32.
pub struct BatchTensors {
    pub ids: Tensor,
    pub attention_mask: Tensor,
    pub positions: Tensor,
    pub targets: Tensor,
}

/// Pads `examples`, each cut to its [`Example::input_len`], on the right to the longest of them.
pub fn collate(examples: &[&Example], pad_id: u32) -> Batch {
    let b = examples.len();
    let t = examples.iter().map(|e| e.input_len()).max().unwrap_or(0);
    let mut batch = Batch {
        batch_size: b,
        seq_len: t,
        ids: vec![pad_id; b * t],
        attention_mask: vec![0; b * t],
        positions: Vec::new(),
        targets: Vec::new(),
        real_tokens: 0,
    };
    for (row, ex) in examples.iter().enumerate() {
        let (base, n) = (row * t, ex.input_len());
        batch.ids[base..base + n].copy_from_slice(&ex.ids[..n]);
        batch.attention_mask[base..base + n].fill(1);
        batch.real_tokens += ex.ids.len();
        for p in 0..n.min(ex.ids.len().saturating_sub(1)) {
            if ex.is_target[p + 1] {
                batch.positions.push((base + p) as u32);
                batch.targets.push(ex.ids[p + 1]);
            }
        }
    }
    batch
}

impl Batch {
    /// Copies the batch to `device`.
    pub fn to_tensors(&self, device: &Device) -> Result<BatchTensors> {
        let (b, t, n) = (self.batch_size, self.seq_len, self.positions.len());
        Ok(BatchTensors {
            ids: Tensor::from_slice(&self.ids, (b, t), device)?,
            attention_mask: Tensor::from_slice(&self.attention_mask, (b, t), device)?,
            positions: Tensor::from_slice(&self.positions, n, device)?,
            targets: Tensor::from_slice(&self.targets, n, device)?,
        })
    }
}

/// Sample indices grouped into micro-batches of similar length: sorted by length (ties by index,
/// so the grouping is deterministic), then cut into chunks of `micro_batch`.
pub fn length_grouped_batches(examples: &[Example], micro_batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| (examples[i].ids.len(), i));
    order.chunks(micro_batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// The shuffle seed of one epoch, derived from the run seed.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    SplitMix64(seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// The order in which an epoch visits the `n` micro-batches (Fisher–Yates with the epoch's seed).
pub fn epoch_order(n: usize, epoch_seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(epoch_seed);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// The dropout seed of one micro-step: a function of (run seed, epoch, micro-step in the epoch)
/// only, so a resumed run draws the same masks.
pub fn dropout_seed(seed: u64, epoch: usize, micro_step: usize) -> u64 {
    let mut rng = SplitMix64(epoch_seed(seed, epoch) ^ (micro_step as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], targets: &[bool]) -> Example {
        Example { ids: ids.to_vec(), is_target: targets.to_vec() }
    }

    #[test]
    fn collate_pads_right_and_shifts_targets() {
        let a = ex(&[10, 11, 12, 13], &[false, false, true, true]);
        let b = ex(&[20, 21], &[false, true]);
        let batch = collate(&[&a, &b], 99);
        // Each row stops at the position that predicts its last target: 13 and 21 are never fed.
        assert_eq!((batch.batch_size, batch.seq_len), (2, 3));
        assert_eq!(batch.ids, [10, 11, 12, 20, 99, 99]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 0, 0]);
        // Row 0: positions 1 and 2 predict tokens 12 and 13; row 1: position 0 (flat 3) predicts 21.
        assert_eq!(batch.positions, [1, 2, 3]);
        assert_eq!(batch.targets, [12, 13, 21]);
        assert_eq!(batch.real_tokens, 6);
        let t = batch.to_tensors(&Device::Cpu).unwrap();
        assert_eq!(t.ids.dims(), [2, 3]);
        assert_eq!(t.positions.to_vec1::<u32>().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn input_stops_where_the_last_target_is_predicted() {
        // Loss on the last token: everything but it is read.
        assert_eq!(ex(&[1, 2, 3, 4], &[false, true, true, true]).input_len(), 3);
        // Tokens after the last target are not read either.
        assert_eq!(ex(&[1, 2, 3, 4, 5], &[false, true, false, false, false]).input_len(), 1);
        // No target at all (the first token never is one): the sample is read whole.
        assert_eq!(ex(&[1, 2, 3], &[true, false, false]).input_len(), 3);
        assert_eq!(ex(&[], &[]).input_len(), 0);
        assert!(collate(&[&ex(&[], &[])], 0).positions.is_empty());
    }

    #[test]
    fn batches_group_by_length() {
        let lens = [5, 1, 4, 2, 3, 6, 1];
        let exs: Vec<Example> = lens.iter().map(|&n| ex(&vec![1; n], &vec![true; n])).collect();
        let batches = length_grouped_batches(&exs, 3);
        assert_eq!(batches, vec![vec![1, 6, 3], vec![4, 2, 0], vec![5]]);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, epoch_seed(42, 0));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, epoch_seed(42, 0)));
        assert_ne!(a, epoch_order(50, epoch_seed(42, 1)));
        assert_ne!(a, epoch_order(50, epoch_seed(43, 0)));
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        assert_ne!(dropout_seed(42, 0, 1), dropout_seed(42, 0, 2));
        assert_ne!(dropout_seed(42, 0, 1), dropout_seed(42, 1, 1));
    }
}
