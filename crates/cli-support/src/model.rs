//! The flags that choose a model (feature `model`): [`ModelArgs`] (base model, device, dtype),
//! [`AdapterArgs`] (`--adapter DIR | --no-adapter`) and [`GenerationArgs`] (decoding). Binaries
//! embed them with `#[command(flatten)]` and turn them into the plain specs `qwen-lora` takes
//! ([`ModelArgs::spec`], [`GenerationArgs::config`], [`GenerationArgs::decode`]).
//! [`generate_answers`] answers an eval set with the model these flags name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{DType, Device};
use kb_dataset::Sample;
use lora_eval::RawAnswers;
use qwen_lora::generate::GenerationConfig;
use qwen_lora::load::{BaseModel, ModelSource};
use qwen_lora::{ChatModel, DEFAULT_MODEL, Decode, DeviceKind, ModelSpec};

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

impl From<DeviceArg> for DeviceKind {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => DeviceKind::Cpu,
            DeviceArg::Cuda => DeviceKind::Cuda,
            DeviceArg::Metal => DeviceKind::Metal,
        }
    }
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
    pub fn device(&self) -> anyhow::Result<Device> {
        let name = match self.device {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
            DeviceArg::Metal => "metal",
        };
        DeviceKind::from(self.device).open().with_context(|| format!("--device {name}"))
    }

    /// The local files and directories these flags name (`--gguf`, `--model` when it is a path),
    /// with their flags: inputs an output must not overwrite.
    pub fn input_paths(&self) -> Vec<(&'static str, &Path)> {
        let mut paths = vec![("--model", Path::new(&self.model))];
        paths.extend(self.gguf.as_deref().map(|g| ("--gguf", g)));
        paths
    }

    /// `--dtype`, or the device's default.
    pub fn dtype(&self) -> DType {
        self.dtype.map_or_else(|| DeviceKind::from(self.device).default_dtype(), DType::from)
    }

    /// The plain spec `qwen-lora` loads from; opens the device.
    pub fn spec(&self) -> anyhow::Result<ModelSpec> {
        Ok(ModelSpec { source: self.source(), device: self.device()?, dtype: self.dtype() })
    }

    /// Opens the device and loads the base model ([`ModelSpec::load`]).
    pub fn load(&self) -> anyhow::Result<BaseModel> {
        Ok(self.spec()?.load()?)
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
    pub fn input_paths(&self) -> Vec<(&'static str, &Path)> {
        if self.no_adapter { Vec::new() } else { vec![("--adapter", self.adapter.as_path())] }
    }

    /// The adapter directory to load (`None` with `--no-adapter`), checked to hold an adapter.
    pub fn dir(&self) -> anyhow::Result<Option<&Path>> {
        if self.no_adapter {
            return Ok(None);
        }
        if !self.adapter.join("adapter_config.json").is_file() {
            bail!(
                "--adapter {}: no adapter_config.json there; train one with train-qwen-lora, or pass --no-adapter \
                 to use the base model",
                self.adapter.display()
            );
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
    pub fn config(&self) -> anyhow::Result<GenerationConfig> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!("--temperature: must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("--top-p: must be in (0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            bail!("--repetition-penalty: must be a finite number > 0");
        }
        if self.batch_size == 0 {
            bail!("--batch-size: must be at least 1");
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

    /// `--f32-weights`: which weights decoding steps read.
    pub fn decode(&self) -> Decode {
        if self.f32_weights { Decode::ExactWeights } else { Decode::HalfWeights }
    }
}

/// Loads the model and adapter the flags name and answers every eval sample's question (wrapped as
/// a ChatML prompt), all in one batched call, with a progress bar. The decoding flags and the
/// adapter directory are checked before the model loads.
pub fn generate_answers(
    model: &ModelArgs,
    adapter: &AdapterArgs,
    generation: &GenerationArgs,
    samples: &[Sample],
) -> anyhow::Result<RawAnswers> {
    let cfg = generation.config()?;
    let adapter = adapter.dir()?;
    let loaded = ChatModel::load(&model.spec()?, adapter, generation.decode()).context("loading the model")?;
    let bar = crate::progress_bar(samples.len() as u64, "answering");
    let answers = RawAnswers::generate(samples, |questions| {
        let prompts: Vec<String> = questions.iter().map(|q| kb_dataset::prompt(q)).collect();
        loaded.generate_texts(&prompts, &cfg, |done| bar.set_position(done as u64))
    })?;
    bar.finish_and_clear();
    Ok(answers)
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
        let g = Args::try_parse_from(["x"]).unwrap().generation;
        assert_eq!(g.config().unwrap(), GenerationConfig::default());
        assert_eq!(g.decode(), Decode::HalfWeights);
        let g = Args::try_parse_from(["x", "--temperature", "0.7", "--top-p", "0.9", "--batch-size", "4"])
            .unwrap()
            .generation
            .config()
            .unwrap();
        assert_eq!((g.temperature, g.top_p, g.batch_size), (0.7, 0.9, 4));
        assert_eq!(Args::try_parse_from(["x", "--f32-weights"]).unwrap().generation.decode(), Decode::ExactWeights);
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
        let spec = a.spec().unwrap();
        assert_eq!((spec.source, spec.dtype), (a.source(), DType::F32));

        let a = Args::try_parse_from(["x", "--gguf", "m.gguf", "--dtype", "bf16", "--revision", "r"]).unwrap().model;
        assert_eq!(a.dtype(), DType::BF16);
        assert_eq!(a.source(), ModelSource::Gguf("m.gguf".into()));

        let a = Args::try_parse_from(["x", "--device", "cuda"]).unwrap().model;
        assert_eq!(a.dtype(), DType::BF16);
        assert!(Args::try_parse_from(["x", "--device", "tpu"]).is_err());
        assert!(Args::try_parse_from(["x", "--dtype", "f64"]).is_err());
    }

    #[test]
    fn cuda_without_the_feature_names_the_flag_and_says_how_to_rebuild() {
        let a = ModelArgs { device: DeviceArg::Cuda, ..ModelArgs::default() };
        if candle_core::utils::cuda_is_available() {
            eprintln!("skipped: qwen-lora was built with CUDA in this build");
            return;
        }
        let e = format!("{:#}", a.device().unwrap_err());
        assert!(e.starts_with("--device cuda: ") && e.contains("--features cuda"), "{e}");
    }
}
