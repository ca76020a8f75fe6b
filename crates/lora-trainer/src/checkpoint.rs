//! `checkpoint-<step>/`: the adapter (PEFT files), `optimizer.safetensors` and
//! `trainer_state.json` — everything a resumed run needs to continue exactly (same batches, same
//! dropout masks, same optimizer state). Only the latest checkpoint is kept.

use std::path::{Path, PathBuf};

use candle_core::{Device, Var};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::fsutil::{load_tensors, write_dir_atomic};
use crate::metrics::MetricRecord;
use crate::optim::AdamW;

pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The PEFT weights file written by `Qwen2::save_adapter`; a resume reads the adapter back from it.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Where the loop stands after an optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub global_step: usize,
    /// 0-based epoch the next micro-batch belongs to.
    pub epoch: usize,
    /// Index (into this epoch's shuffled order) of the next micro-batch.
    pub micro_step_in_epoch: usize,
    /// Shuffle seed of `epoch` (derived from the run seed; stored so a check can catch drift).
    pub epoch_shuffle_seed: u64,
    pub best_eval_loss: Option<f64>,
    /// 1-based.
    pub best_epoch: Option<usize>,
    pub train_tokens: u64,
    pub train_seconds: f64,
    /// Digest of the tokenized training data; a resume on other data is refused.
    pub data_fingerprint: String,
    /// The config the run was started with; a resume with another is refused.
    pub config: TrainConfig,
    pub metrics: Vec<MetricRecord>,
}

/// `output_dir/checkpoint-<step>`.
pub fn checkpoint_dir(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("{CHECKPOINT_PREFIX}{step}"))
}

/// Writes `checkpoint-<step>/` atomically (`write_adapter` fills in the adapter files), then
/// removes older checkpoints.
pub fn save(
    output_dir: &Path,
    state: &TrainerState,
    optimizer: &AdamW,
    write_adapter: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(output_dir, state.global_step);
    write_dir_atomic(&dir, |tmp| {
        write_adapter(tmp)?;
        optimizer.save(&tmp.join(OPTIMIZER_FILE))?;
        let json = serde_json::to_string_pretty(state).expect("trainer state serializes");
        Ok(kb_dataset::write_atomic(&tmp.join(STATE_FILE), json.as_bytes())?)
    })?;
    for (_, old) in list(output_dir)? {
        if old != dir {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
    }
    Ok(dir)
}

/// Complete checkpoints in `output_dir` (those with a state file), by step.
fn list(output_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(output_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io(output_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(output_dir, e))?;
        let name = entry.file_name();
        let step = name.to_str().and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX)).and_then(|s| s.parse().ok());
        if let Some(step) = step
            && entry.path().join(STATE_FILE).is_file()
        {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Every `checkpoint-<step>/` directory in `output_dir`, complete or not.
pub fn all(output_dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(output_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(output_dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(output_dir, e))?;
        let is_checkpoint = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(CHECKPOINT_PREFIX))
            .is_some_and(|step| step.parse::<usize>().is_ok());
        if is_checkpoint && entry.path().is_dir() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The checkpoint with the highest step in `output_dir`, if any.
pub fn latest(output_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list(output_dir)?.pop().map(|(_, p)| p))
}

/// Reads `trainer_state.json` of a checkpoint.
pub fn load_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::checkpoint(&path, format!("invalid trainer state: {e}")))
}

/// Loads the adapter weights of a checkpoint into `params` (matched by PEFT key name; PEFT's
/// in-memory `.default` infix is tolerated on either side).
pub fn restore_params(dir: &Path, params: &[(String, Var)]) -> Result<()> {
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let device = params.first().map(|(_, v)| v.device().clone()).unwrap_or(Device::Cpu);
    let mut tensors = load_tensors(&path, &device)?;
    for (name, var) in params {
        let tensor = tensors
            .remove(name)
            .or_else(|| tensors.remove(&name.replace(".default.", ".")))
            .or_else(|| tensors.remove(&name.replace(".weight", ".default.weight")))
            .ok_or_else(|| {
                Error::checkpoint(&path, format!("no tensor `{name}`; the checkpoint is for another adapter"))
            })?;
        if tensor.dims() != var.dims() {
            return Err(Error::checkpoint(
                &path,
                format!("`{name}` has shape {:?}, the adapter needs {:?}", tensor.dims(), var.dims()),
            ));
        }
        var.set(&tensor.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Tensor};

    use super::*;
    use crate::optim::AdamWConfig;

    fn state(step: usize) -> TrainerState {
        TrainerState {
            global_step: step,
            epoch: 1,
            micro_step_in_epoch: 4,
            epoch_shuffle_seed: 99,
            best_eval_loss: Some(1.25),
            best_epoch: Some(1),
            train_tokens: 1000,
            train_seconds: 3.5,
            data_fingerprint: "abc".into(),
            config: TrainConfig::default(),
            metrics: vec![MetricRecord::Eval { step, epoch: 1.0, eval_loss: 1.25 }],
        }
    }

    fn write_weights(dir: &Path, params: &[(String, Var)]) -> Result<()> {
        let map: HashMap<String, Tensor> = params.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        candle_core::safetensors::save(&map, dir.join(ADAPTER_WEIGHTS_FILE))?;
        Ok(())
    }

    #[test]
    fn save_keeps_only_the_latest_and_restores_everything() {
        let out = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_string();
        let var = Var::from_tensor(&Tensor::new(&[[1.5f32, -2.0]], &dev).unwrap()).unwrap();
        let params = vec![(name.clone(), var.clone())];
        let cfg = AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut opt = AdamW::new(params.clone(), cfg).unwrap();
        opt.step(&[Tensor::new(&[[0.1f32, 0.2]], &dev).unwrap()], 0.1).unwrap();

        assert_eq!(latest(out.path()).unwrap(), None);
        save(out.path(), &state(2), &opt, |d| write_weights(d, &params)).unwrap();
        let dir = save(out.path(), &state(4), &opt, |d| write_weights(d, &params)).unwrap();
        assert_eq!(dir, checkpoint_dir(out.path(), 4));
        assert_eq!(latest(out.path()).unwrap(), Some(dir.clone()));
        assert!(!checkpoint_dir(out.path(), 2).exists());
        assert_eq!(load_state(&dir).unwrap(), state(4));

        let fresh = Var::from_tensor(&Tensor::zeros((1, 2), DType::F32, &dev).unwrap()).unwrap();
        restore_params(&dir, &[(name.clone(), fresh.clone())]).unwrap();
        assert_eq!(fresh.as_tensor().to_vec2::<f32>().unwrap(), var.as_tensor().to_vec2::<f32>().unwrap());
        let mut opt2 = AdamW::new(vec![(name, fresh)], cfg).unwrap();
        opt2.load(&dir.join(OPTIMIZER_FILE)).unwrap();
        assert_eq!(opt2.steps(), 1);

        let wrong = Var::from_tensor(&Tensor::zeros((1, 2), DType::F32, &dev).unwrap()).unwrap();
        let e = restore_params(&dir, &[("other.weight".into(), wrong)]).unwrap_err().to_string();
        assert!(e.contains("other.weight"), "{e}");
    }

    #[test]
    fn a_failed_adapter_write_leaves_the_previous_checkpoint() {
        let out = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[1.0f32], &dev).unwrap()).unwrap();
        let params = vec![("w".to_string(), var)];
        let cfg = AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let opt = AdamW::new(params.clone(), cfg).unwrap();
        save(out.path(), &state(3), &opt, |d| write_weights(d, &params)).unwrap();
        let failed = save(out.path(), &state(5), &opt, |_| Err(Error::NoData("disk full".into())));
        assert!(failed.is_err());
        assert_eq!(latest(out.path()).unwrap(), Some(checkpoint_dir(out.path(), 3)));
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    }
}
