//! The KV cache of cached decoding: every layer's keys and values for the tokens seen so far,
//! with the row surgery continuous batching needs (drop finished rows, append joining ones,
//! drop positions no row can attend to).

use candle_core::Tensor;

use crate::{Error, Result};

/// Keys and values of every layer for the tokens seen so far: (b, kv_heads, t, head_dim) each.
#[derive(Default, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `idx` (u32), e.g. when some rows have finished generating.
    pub fn select_rows(&mut self, idx: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(idx, 0)?;
            *v = v.index_select(idx, 0)?;
        }
        Ok(())
    }

    /// Appends `other`'s rows below this cache's. The shorter of the two is left-padded with zero
    /// keys and values to the longer one's length; the caller marks those positions invalid.
    pub fn append_rows(&mut self, other: KvCache) -> Result<()> {
        if self.is_empty() {
            *self = other;
            return Ok(());
        }
        let t = self.len().max(other.len());
        let pad_front = |x: &Tensor| -> Result<Tensor> {
            let (b, h, tx, d) = x.dims4()?; // (b, n_kv, t_x, head_dim)
            if tx == t {
                return Ok(x.clone());
            }
            let zeros = Tensor::zeros((b, h, t - tx, d), x.dtype(), x.device())?;
            Ok(Tensor::cat(&[&zeros, x], 2)?)
        };
        if self.layers.len() != other.layers.len() {
            return Err(Error::msg("KvCache::append_rows: the caches hold different numbers of layers"));
        }
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            match (mine.as_mut(), theirs) {
                (Some((k, v)), Some((k2, v2))) => {
                    *k = Tensor::cat(&[pad_front(k)?, pad_front(&k2)?], 0)?;
                    *v = Tensor::cat(&[pad_front(v)?, pad_front(&v2)?], 0)?;
                }
                (None, None) => {}
                _ => return Err(Error::msg("KvCache::append_rows: a layer is cached in one cache only")),
            }
        }
        Ok(())
    }

    /// Makes room for a model of `n_layers` layers (an empty cache has none).
    pub(crate) fn resize(&mut self, n_layers: usize) {
        self.layers.resize_with(n_layers, || None);
    }

    /// Layer `l`'s keys and values, `None` before the first step.
    pub(crate) fn layer_mut(&mut self, l: usize) -> &mut Option<(Tensor, Tensor)> {
        &mut self.layers[l]
    }

    /// Drops the first `n` cached positions of every row (positions no row can attend to).
    pub fn drop_leading(&mut self, n: usize) -> Result<()> {
        let t = self.len();
        if n > t {
            return Err(Error::msg(format!("KvCache::drop_leading: {n} positions asked, {t} cached")));
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.narrow(2, n, t - n)?;
            *v = v.narrow(2, n, t - n)?;
        }
        Ok(())
    }
}
