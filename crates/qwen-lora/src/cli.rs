//! Shared command-line flags for choosing the base model, device and dtype.
//!
//! Binaries embed [`ModelArgs`] with `#[command(flatten)]` and call [`ModelArgs::load`].

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};

use crate::generate::GenerationConfig;
use crate::load::{BaseModel, ModelSource, load_base};
use crate::{Error, Result};

/// The product's default base model.
pub const DEFAULT_MODEL: &str = "Qwen/Qwen2.5-1.5B-Instruct";

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
    /// The Apple GPU (needs a build with `--features metal`).
    Metal,
}

/// The compute dtype the weights are converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    F32,
    Bf16,
    F16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> Self {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::Bf16 => DType::BF16,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// Flags choosing the base model, shared by every binary.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ModelArgs {
    /// Base model: a Hugging Face hub id (read from the HF cache under HF_HOME, downloaded when
    /// missing and the network allows) or a local directory holding config.json, tokenizer.json
    /// and *.safetensors.
    #[arg(long, value_name = "ID|DIR", default_value = DEFAULT_MODEL)]
    pub model: String,

    /// Hub revision (branch, tag or commit hash) of --model [default: main].
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,

    /// Load this GGUF checkpoint instead of --model: every tensor is dequantized to --dtype and the
    /// tokenizer comes from the file's metadata.
    #[arg(long, value_name = "FILE")]
    pub gguf: Option<PathBuf>,

    /// Device to run on; cuda and metal need a binary built with the matching cargo feature.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,

    /// Compute dtype of the weights [default: f32 on cpu and metal, bf16 on cuda].
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
}

impl Default for ModelArgs {
    fn default() -> Self {
        Self { model: DEFAULT_MODEL.into(), revision: None, gguf: None, device: DeviceArg::Cpu, dtype: None }
    }
}

impl ModelArgs {
    /// What `--model`, `--revision` and `--gguf` name.
    pub fn source(&self) -> ModelSource {
        ModelSource::resolve(&self.model, self.revision.as_deref(), self.gguf.as_deref())
    }

    /// The device `--device` asks for, or an error saying how to get it.
    pub fn device(&self) -> Result<Device> {
        match self.device {
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda if !cfg!(feature = "cuda") => Err(Error::msg(
                "--device cuda: this binary was built without CUDA support; rebuild it with `--features cuda` \
                 (needs the CUDA toolkit) or use --device cpu",
            )),
            DeviceArg::Metal if !cfg!(feature = "metal") => Err(Error::msg(
                "--device metal: this binary was built without Metal support; rebuild it with `--features metal` \
                 (macOS only) or use --device cpu",
            )),
            DeviceArg::Cuda => {
                Device::new_cuda(0).map_err(|e| Error::msg(format!("--device cuda: cannot open CUDA GPU 0: {e}")))
            }
            DeviceArg::Metal => {
                Device::new_metal(0).map_err(|e| Error::msg(format!("--device metal: cannot open the Metal GPU: {e}")))
            }
        }
    }

    /// The local files and directories these flags name (`--gguf`, `--model` when it is a path),
    /// with their flags: inputs an output must not overwrite.
    pub fn input_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        let mut paths = vec![("--model", std::path::Path::new(&self.model))];
        paths.extend(self.gguf.as_deref().map(|g| ("--gguf", g)));
        paths
    }

    /// `--dtype`, or the device's default.
    pub fn dtype(&self) -> DType {
        match (self.dtype, self.device) {
            (Some(d), _) => d.into(),
            (None, DeviceArg::Cuda) => DType::BF16,
            (None, _) => DType::F32,
        }
    }

    /// Opens the device and loads the base model, logging what was loaded and how long it took.
    pub fn load(&self) -> Result<BaseModel> {
        let device = self.device()?;
        let dtype = self.dtype();
        let start = Instant::now();
        let base = load_base(&self.source(), &device, dtype)?;
        tracing::info!(
            source = %base.source.describe(),
            ?dtype,
            layers = base.config.num_hidden_layers,
            hidden = base.config.hidden_size,
            secs = format!("{:.2}", start.elapsed().as_secs_f64()),
            "loaded base model"
        );
        Ok(base)
    }
}

/// `--adapter DIR | --no-adapter`, shared by the binaries that evaluate an adapter.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AdapterArgs {
    /// LoRA adapter directory (PEFT format), merged into the base weights for generation.
    #[arg(long, value_name = "DIR", default_value = "qwen_lora_output/final_model", conflicts_with = "no_adapter")]
    pub adapter: PathBuf,

    /// Use the base model alone, to see what the adapter adds.
    #[arg(long)]
    pub no_adapter: bool,
}

impl AdapterArgs {
    /// The adapter directory with its flag, unless `--no-adapter`: an input an output must not
    /// overwrite.
    pub fn input_paths(&self) -> Vec<(&'static str, &std::path::Path)> {
        if self.no_adapter { Vec::new() } else { vec![("--adapter", self.adapter.as_path())] }
    }

    /// The adapter directory to load (`None` with `--no-adapter`), checked to hold an adapter.
    pub fn dir(&self) -> Result<Option<&std::path::Path>> {
        if self.no_adapter {
            return Ok(None);
        }
        if !self.adapter.join("adapter_config.json").is_file() {
            return Err(Error::msg(format!(
                "--adapter {}: no adapter_config.json there; train one with train-qwen-lora, or pass --no-adapter \
                 to use the base model",
                self.adapter.display()
            )));
        }
        Ok(Some(&self.adapter))
    }
}

/// Decoding flags, shared by every binary that generates.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct GenerationArgs {
    /// Most tokens to generate per prompt.
    #[arg(long, value_name = "N", default_value_t = GenerationConfig::default().max_new_tokens)]
    pub max_new_tokens: usize,

    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,

    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches this.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,

    /// Penalty (> 1) on tokens already in the prompt or the answer.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,

    /// Seed for sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Prompts decoded together (sorted by length, left-padded; a finished prompt leaves the batch
    /// and the next ones join it).
    #[arg(long, value_name = "N", default_value_t = GenerationConfig::default().batch_size)]
    pub batch_size: usize,

    /// Decode with the f32 weights themselves instead of f16 copies (exact, about half the speed:
    /// a decoding step is bound by reading the weights).
    #[arg(long)]
    pub f32_weights: bool,
}

impl GenerationArgs {
    /// The decoding settings, or an error naming the flag out of range.
    pub fn config(&self) -> Result<GenerationConfig> {
        let bad = |flag: &str, what: &str| Err(Error::msg(format!("{flag}: {what}")));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("--temperature", "must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("--top-p", "must be in (0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("--repetition-penalty", "must be a finite number > 0");
        }
        if self.batch_size == 0 {
            return bad("--batch-size", "must be at least 1");
        }
        Ok(GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            batch_size: self.batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        generation: GenerationArgs,
    }

    #[test]
    fn generation_flags_default_to_greedy_and_reject_nonsense() {
        let g = Args::try_parse_from(["x"]).unwrap().generation.config().unwrap();
        assert_eq!(g, GenerationConfig::default());
        let g = Args::try_parse_from(["x", "--temperature", "0.7", "--top-p", "0.9", "--batch-size", "4"])
            .unwrap()
            .generation
            .config()
            .unwrap();
        assert_eq!((g.temperature, g.top_p, g.batch_size), (0.7, 0.9, 4));
        for (flag, value) in [("--temperature", "-1"), ("--top-p", "0"), ("--top-p", "1.5"), ("--batch-size", "0")] {
            let e = Args::try_parse_from(["x".to_string(), format!("{flag}={value}")])
                .unwrap()
                .generation
                .config()
                .unwrap_err()
                .to_string();
            assert!(e.contains(flag), "{flag} {value}: {e}");
        }
    }

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_and_overrides() {
        let a = Args::try_parse_from(["x"]).unwrap().model;
        assert_eq!(a, ModelArgs::default());
        assert_eq!(a.dtype(), DType::F32);
        assert!(matches!(a.device(), Ok(Device::Cpu)));
        assert!(matches!(a.source(), ModelSource::Hub { ref id, revision: None } if id == DEFAULT_MODEL));

        let a = Args::try_parse_from(["x", "--gguf", "m.gguf", "--dtype", "bf16", "--revision", "r"]).unwrap().model;
        assert_eq!(a.dtype(), DType::BF16);
        assert_eq!(a.source(), ModelSource::Gguf("m.gguf".into()));

        let a = Args::try_parse_from(["x", "--device", "cuda"]).unwrap().model;
        assert_eq!(a.dtype(), DType::BF16);
        assert!(Args::try_parse_from(["x", "--device", "tpu"]).is_err());
        assert!(Args::try_parse_from(["x", "--dtype", "f64"]).is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let a = ModelArgs { device: DeviceArg::Cuda, ..ModelArgs::default() };
        let e = a.device().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
