//! AdamW over the LoRA variables only (decoupled weight decay and bias correction, as
//! `torch.optim.AdamW`), gradient accumulation across micro-steps and global-norm clipping, all
//! with candle tensor ops on the gradients that `loss.backward()` returns.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};

/// AdamW hyper-parameters other than the learning rate (which the schedule supplies per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// The optimizer: named variables and their first/second moment estimates.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    cfg: AdamWConfig,
}

impl AdamW {
    /// Fresh state (zero moments, step 0) for `params`.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        let m = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<Vec<_>>>()?;
        let v = params.iter().map(|(_, p)| zeros(p)).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { params, m, v, step: 0, cfg })
    }

    /// The variables being optimized, in order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with gradients `grads` (same order as `params`) and learning rate `lr`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        assert_eq!(grads.len(), self.params.len(), "one gradient per parameter");
        self.step += 1;
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.cfg;
        let t = self.step as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for (i, ((_, var), g)) in self.params.iter().zip(grads).enumerate() {
            // Detached: the update itself must not become part of the next step's graph.
            let mut p = var.as_tensor().detach();
            if weight_decay != 0.0 {
                p = p.affine(1.0 - lr * weight_decay, 0.0)?;
            }
            let m = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            // torch: denom = sqrt(v) / sqrt(1 - beta2^t) + eps; p -= lr / (1 - beta1^t) * m / denom.
            let denom = ((v.sqrt()? / bias2_sqrt)? + eps)?;
            let p = (p - ((&m / denom)? * (lr / bias1))?)?;
            var.set(&p)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Saves the moments and the step count as safetensors (`exp_avg.<name>`, `exp_avg_sq.<name>`,
    /// `step`), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            map.insert(format!("exp_avg.{name}"), self.m[i].clone());
            map.insert(format!("exp_avg_sq.{name}"), self.v[i].clone());
        }
        map.insert("step".to_string(), Tensor::new(&[self.step as i64], &Device::Cpu)?);
        // Serialized in memory (twice the adapter's size) and written by the workspace's atomic
        // writer, which gives the file the umask's mode and cleans up after an interrupt.
        let bytes = safetensors::serialize(&map, None).map_err(|e| Error::checkpoint(path, e.to_string()))?;
        Ok(kb_dataset::write_atomic(path, &bytes)?)
    }

    /// Restores a state saved by [`AdamW::save`] for the same parameters (names and shapes).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self.params.first().map(|(_, p)| p.device().clone()).unwrap_or(Device::Cpu);
        let mut map = crate::fsutil::load_tensors(path, &device)?;
        let bad = |message: String| Error::checkpoint(path, message);
        let step = map.remove("step").ok_or_else(|| bad("no `step` tensor".into()))?;
        let step = step.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
        let step = step.first().copied().filter(|s| *s >= 0).ok_or_else(|| bad("bad `step` tensor".into()))?;
        for (i, (name, var)) in self.params.iter().enumerate() {
            for (key, slot) in
                [(format!("exp_avg.{name}"), &mut self.m[i]), (format!("exp_avg_sq.{name}"), &mut self.v[i])]
            {
                let t = map
                    .remove(&key)
                    .ok_or_else(|| bad(format!("no `{key}` tensor; the checkpoint is for another adapter shape")))?;
                if t.dims() != var.dims() {
                    return Err(bad(format!("`{key}` has shape {:?}, the adapter needs {:?}", t.dims(), var.dims())));
                }
                *slot = t.to_dtype(var.dtype())?;
            }
        }
        if let Some(extra) = map.keys().next() {
            return Err(bad(format!("unexpected tensor `{extra}`; the checkpoint is for another adapter")));
        }
        self.step = step as u64;
        Ok(())
    }
}

/// Sums gradients over the micro-steps of one optimizer step (candle's `backward` returns a fresh
/// `GradStore` per call).
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
}

impl GradAccumulator {
    pub fn new(n_params: usize) -> Self {
        Self { sums: vec![None; n_params] }
    }

    /// Adds this micro-step's gradient of each parameter (a parameter without one got zero).
    pub fn add(&mut self, params: &[(String, Var)], grads: &GradStore) -> Result<()> {
        for (slot, (_, var)) in self.sums.iter_mut().zip(params) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = g.detach();
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + g)?,
                    None => g,
                });
            }
        }
        Ok(())
    }

    /// The summed gradients, zeros where a parameter never received one.
    pub fn finish(self, params: &[(String, Var)]) -> Result<Vec<Tensor>> {
        self.sums
            .into_iter()
            .zip(params)
            .map(|(g, (_, var))| {
                Ok(match g {
                    Some(g) => g,
                    None => var.as_tensor().zeros_like()?,
                })
            })
            .collect()
    }
}

/// The global L2 norm of all gradients.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    if grads.is_empty() {
        return Ok(0.0);
    }
    let sums =
        grads.iter().map(|g| g.to_dtype(DType::F32)?.sqr()?.sum_all()).collect::<candle_core::Result<Vec<_>>>()?;
    // One host sync for all tensors.
    let total = Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f32>()?;
    Ok((total as f64).sqrt())
}

/// Scales all gradients so their global norm is at most `max_norm` (as `torch.nn.utils.clip_grad_norm_`,
/// coefficient max_norm / (norm + 1e-6), never above 1); `max_norm` 0 disables it. Returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 && norm.is_finite() {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(weight_decay: f64) -> AdamWConfig {
        AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
    }

    /// torch.optim.AdamW in plain f64, one scalar parameter.
    fn reference(p0: f64, grads: &[f64], lrs: &[f64], c: AdamWConfig) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (t, (&g, &lr)) in grads.iter().zip(lrs).enumerate() {
            let t = (t + 1) as i32;
            p *= 1.0 - lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let denom = v.sqrt() / (1.0 - c.beta2.powi(t)).sqrt() + c.eps;
            p -= lr / (1.0 - c.beta1.powi(t)) * m / denom;
        }
        p
    }

    #[test]
    fn adamw_matches_hand_computed_updates() {
        let dev = Device::Cpu;
        let p0 = [0.5f32, -1.0, 2.0];
        let var = Var::from_tensor(&Tensor::new(&p0, &dev).unwrap()).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], cfg(0.01)).unwrap();
        let grads = [[0.1f32, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2]];
        let lrs = [1e-2, 5e-3, 2e-2];
        for (g, &lr) in grads.iter().zip(&lrs) {
            opt.step(&[Tensor::new(g, &dev).unwrap()], lr).unwrap();
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        for k in 0..3 {
            let gk: Vec<f64> = grads.iter().map(|g| g[k] as f64).collect();
            let want = reference(p0[k] as f64, &gk, &lrs, cfg(0.01));
            assert!((got[k] as f64 - want).abs() < 1e-6, "param {k}: {} vs {want}", got[k]);
        }
        // The first AdamW step moves each weight by about lr (sign of the gradient), decay aside.
        assert!((got[0] as f64 - p0[0] as f64).abs() > 1e-3);
        assert_eq!(opt.steps(), 3);
    }

    #[test]
    fn state_round_trips_and_continues_identically() {
        let dev = Device::Cpu;
        let make = || Var::from_tensor(&Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &dev).unwrap()).unwrap();
        let g = Tensor::new(&[[0.3f32, -0.1], [0.2, 0.5]], &dev).unwrap();
        let (a, b) = (make(), make());
        let mut oa = AdamW::new(vec![("x".into(), a.clone())], cfg(0.1)).unwrap();
        oa.step(std::slice::from_ref(&g), 0.1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        oa.save(&path).unwrap();
        b.set(a.as_tensor()).unwrap();
        let mut ob = AdamW::new(vec![("x".into(), b.clone())], cfg(0.1)).unwrap();
        ob.load(&path).unwrap();
        assert_eq!(ob.steps(), 1);
        oa.step(std::slice::from_ref(&g), 0.05).unwrap();
        ob.step(&[g], 0.05).unwrap();
        assert_eq!(a.as_tensor().to_vec2::<f32>().unwrap(), b.as_tensor().to_vec2::<f32>().unwrap());

        let other = Var::from_tensor(&Tensor::zeros(3, DType::F32, &dev).unwrap()).unwrap();
        let mut wrong = AdamW::new(vec![("x".into(), other)], cfg(0.1)).unwrap();
        assert!(wrong.load(&path).unwrap_err().to_string().contains("shape"));
    }

    #[test]
    fn clipping_scales_to_max_norm_and_reports_the_raw_norm() {
        let dev = Device::Cpu;
        let mut g = vec![Tensor::new(&[3.0f32], &dev).unwrap(), Tensor::new(&[4.0f32], &dev).unwrap()];
        assert!((clip_grad_norm(&mut g, 1.0).unwrap() - 5.0).abs() < 1e-6);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-5);
        let mut small = vec![Tensor::new(&[0.3f32, 0.4], &dev).unwrap()];
        clip_grad_norm(&mut small, 1.0).unwrap();
        assert_eq!(small[0].to_vec1::<f32>().unwrap(), [0.3, 0.4]);
    }

    #[test]
    fn accumulator_sums_micro_step_gradients() {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &dev).unwrap()).unwrap();
        let unused = Var::from_tensor(&Tensor::new(&[5.0f32], &dev).unwrap()).unwrap();
        let params = vec![("w".to_string(), w.clone()), ("u".to_string(), unused)];
        let mut acc = GradAccumulator::new(2);
        for scale in [1.0, 3.0] {
            // d/dw sum(scale * w^2) = 2 * scale * w
            let loss = (w.as_tensor().sqr().unwrap() * scale).unwrap().sum_all().unwrap();
            acc.add(&params, &loss.backward().unwrap()).unwrap();
        }
        let g = acc.finish(&params).unwrap();
        assert_eq!(g[0].to_vec1::<f32>().unwrap(), [8.0, 16.0]);
        assert_eq!(g[1].to_vec1::<f32>().unwrap(), [0.0]);
    }
}
