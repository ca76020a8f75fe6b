//! `merge-lora`: fold a LoRA adapter into its base model and write a Hugging Face model directory.
//!
//! ```text
//! merge-lora --gguf models/qwen2.5-coder-0.5b-instruct.gguf --adapter qwen_lora_output/final_model --out merged
//! merge-lora --model Qwen/Qwen2.5-1.5B-Instruct --adapter qwen_lora_output/final_model --out merged --dtype-out bf16
//! qwen-generate --model merged --prompt "VPN 怎麼連?"
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use cli_support::{DTypeArg, ModelArgs};

/// Merge a LoRA adapter into its base model (W + scale·B·A) and write the result as an HF model
/// directory: config.json, tokenizer.json, model.safetensors (+ tokenizer_config.json and
/// generation_config.json when known). Written into a temporary directory, then renamed.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    /// LoRA adapter directory (PEFT format: adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    adapter: PathBuf,

    /// Directory to create for the merged model; it must not exist (or be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Dtype of the weights written to model.safetensors.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype_out: DTypeArg,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut base = args.model.load().context("loading the base model")?;
    let merged = merge_lora::merge_into_dir(&mut base, &args.adapter, &args.out, args.dtype_out.into())
        .with_context(|| format!("merging {} into {}", args.adapter.display(), base.source.describe()))?;
    println!(
        "wrote {}: {} ({} tensors, {:.1} MB of weights, {:?})",
        merged.out.display(),
        merged.files.join(", "),
        merged.tensors,
        merged.weights_bytes as f64 / 1e6,
        args.dtype_out
    );
    Ok(())
}

cli_support::args_test!(Args);
