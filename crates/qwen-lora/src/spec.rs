//! What to load, as plain data: [`ModelSpec`] names the base model, the device and the dtype.
//! Binaries build one from their flags (`cli_support::ModelArgs`); libraries and tests build one
//! directly ([`ModelSpec::cpu`]).

use std::time::Instant;

use candle_core::{DType, Device};

use crate::load::{BaseModel, ModelSource, load_base};
use crate::{Error, Result};

/// The product's default base model.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen2.5-1.5B-Instruct";

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU (always available).
    Cpu,
    /// The first CUDA GPU (needs a build with the `cuda` feature).
    Cuda,
    /// The Apple GPU (needs a build with the `metal` feature).
    Metal,
}

impl DeviceKind {
    /// The compute dtype used when none is asked for: bf16 on CUDA, f32 elsewhere.
    pub fn default_dtype(self) -> DType {
        match self {
            Self::Cuda => DType::BF16,
            Self::Cpu | Self::Metal => DType::F32,
        }
    }

    /// Opens the device, or says how to get a binary that can.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if !cfg!(feature = "cuda") => Err(Error::msg(
                "this binary was built without CUDA support; rebuild it with `--features cuda` \
                 (needs the CUDA toolkit) or use --device cpu",
            )),
            Self::Metal if !cfg!(feature = "metal") => Err(Error::msg(
                "this binary was built without Metal support; rebuild it with `--features metal` \
                 (macOS only) or use --device cpu",
            )),
            Self::Cuda => Device::new_cuda(0).map_err(|e| Error::msg(format!("cannot open CUDA GPU 0: {e}"))),
            Self::Metal => Device::new_metal(0).map_err(|e| Error::msg(format!("cannot open the Metal GPU: {e}"))),
        }
    }
}

/// A base model to load: where it comes from, the (opened) device and the compute dtype.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub source: ModelSource,
    pub device: Device,
    pub dtype: DType,
}

impl ModelSpec {
    /// `source` on the CPU in f32.
    pub fn cpu(source: ModelSource) -> Self {
        Self { source, device: Device::Cpu, dtype: DType::F32 }
    }

    /// Loads the base model, logging what was loaded and how long it took.
    pub fn load(&self) -> Result<BaseModel> {
        let start = Instant::now();
        let base = load_base(&self.source, &self.device, self.dtype)?;
        tracing::info!(
            source = %base.source.describe(),
            dtype = ?self.dtype,
            layers = base.config.num_hidden_layers,
            hidden = base.config.hidden_size,
            secs = format!("{:.2}", start.elapsed().as_secs_f64()),
            "loaded base model"
        );
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dtypes() {
        assert_eq!(DeviceKind::Cpu.default_dtype(), DType::F32);
        assert_eq!(DeviceKind::Metal.default_dtype(), DType::F32);
        assert_eq!(DeviceKind::Cuda.default_dtype(), DType::BF16);
        assert!(matches!(DeviceKind::Cpu.open(), Ok(Device::Cpu)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let e = DeviceKind::Cuda.open().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
