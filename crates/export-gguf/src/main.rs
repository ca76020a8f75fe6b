//! `export-gguf`: write a LoRA-tuned Qwen2.5 as GGUF for llama.cpp and Ollama.
//!
//! ```text
//! export-gguf --gguf models/qwen2.5-coder-0.5b-instruct.gguf --adapter qwen_lora_output/final_model --out tuned.gguf
//! export-gguf --adapter qwen_lora_output/final_model --lora-only --out adapter.gguf
//! export-gguf --model Qwen/Qwen2.5-1.5B-Instruct --adapter qwen_lora_output/final_model --type q8_0 --out tuned.gguf
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use export_gguf::{OutType, type_name};
use qwen_lora::load::ModelSource;

/// Export a LoRA-tuned model as GGUF: a merged model (--gguf BASE or --model HF base) or, with
/// --lora-only, a llama.cpp LoRA adapter file. Output is written to a temporary file, then renamed.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    /// Base model GGUF: the adapter is merged into it; untouched tensors are copied byte for byte.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    gguf: Option<PathBuf>,

    /// Base model as a Hugging Face hub id or local directory, converted to GGUF (with the adapter
    /// merged when --adapter is given).
    #[arg(long, value_name = "ID|DIR")]
    model: Option<String>,

    /// Hub revision of --model [default: main].
    #[arg(long, value_name = "REV", requires = "model")]
    revision: Option<String>,

    /// LoRA adapter directory (PEFT format: adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR", required_unless_present = "model")]
    adapter: Option<PathBuf>,

    /// Write only the adapter, as a llama.cpp LoRA GGUF (for `llama-cli -m BASE.gguf --lora FILE`);
    /// --gguf or --model DIR, when given, is only checked against the adapter.
    #[arg(long, requires = "adapter")]
    lora_only: bool,

    /// GGUF file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Type of the merged weight matrices [default: same for --gguf, f16 for --model, f32 for
    /// --lora-only]. Rows that a type's blocks do not tile are written as f16 (and reported).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    out_type: Option<OutType>,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let out = &args.out;
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    inputs.extend(args.gguf.as_deref().map(|p| ("--gguf", p)));
    inputs.extend(args.model.as_deref().map(|m| ("--model", Path::new(m))));
    inputs.extend(args.adapter.as_deref().map(|p| ("--adapter", p)));
    kb_dataset::check_outputs(&[("--out", out)], &inputs)?;
    if args.lora_only {
        let adapter = args.adapter.as_deref().context("--lora-only needs --adapter DIR")?;
        let dtype = OutType::for_lora_only(args.out_type);
        let base = export_gguf::base_config(args.gguf.as_deref(), args.model.as_deref()).context("reading the base")?;
        let r = export_gguf::export_lora_only(adapter, out, dtype, base.as_ref())
            .with_context(|| format!("writing the LoRA GGUF {}", out.display()))?;
        println!(
            "wrote {}: llama.cpp LoRA adapter, {} tensor pairs, r {}, adapter.lora.alpha {}, {}, {:.1} MB",
            r.out.display(),
            r.pairs,
            r.r,
            r.alpha,
            type_name(r.dtype),
            r.bytes as f64 / 1e6
        );
    } else if let Some(base) = &args.gguf {
        let adapter = args.adapter.as_deref().context("--gguf needs --adapter DIR to merge")?;
        let ty = args.out_type.unwrap_or(OutType::Same);
        let r = export_gguf::export_merged(base, adapter, out, ty)
            .with_context(|| format!("merging {} into {}", adapter.display(), base.display()))?;
        for note in &r.fallbacks {
            tracing::warn!("{note}");
        }
        if let Some(warning) = r.requant_warning() {
            tracing::warn!("{warning}");
        }
        println!(
            "wrote {}: \"{}\", {} tensors ({} merged: {}; {} copied byte for byte), {:.1} MB; requantization error {:.1}% of the adapter's update",
            r.out.display(),
            r.name,
            r.tensors,
            r.merged.len(),
            r.type_summary(),
            r.tensors - r.merged.len(),
            r.bytes as f64 / 1e6,
            100.0 * r.requant_error()
        );
    } else if let Some(model) = &args.model {
        let Some(dtype) = OutType::for_hf(args.out_type) else {
            bail!("--type same needs a GGUF base (--gguf); with --model choose f16, q8_0 or f32")
        };
        let src = ModelSource::resolve(model, args.revision.as_deref(), None);
        let r = export_gguf::export_from_hf(&src, args.adapter.as_deref(), out, dtype)
            .with_context(|| format!("converting {model} to {}", out.display()))?;
        for note in &r.fallbacks {
            tracing::warn!("{note}");
        }
        println!(
            "wrote {}: \"{}\", {} tensors, {}, {:.1} MB",
            r.out.display(),
            r.name,
            r.tensors,
            type_name(dtype),
            r.bytes as f64 / 1e6
        );
    } else {
        bail!(
            "nothing to export: give --gguf BASE.gguf or --model ID|DIR (with --adapter DIR), or --adapter DIR --lora-only"
        );
    }
    Ok(())
}

cli_support::args_test!(Args);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from(["x", "--gguf", "b.gguf", "--adapter", "a", "--out", "o.gguf", "--type", "q8_0"]);
        assert_eq!(a.unwrap().out_type, Some(OutType::Q8_0));
        assert!(Args::try_parse_from(["x", "--gguf", "b", "--model", "m", "--adapter", "a", "--out", "o"]).is_err());
        assert!(Args::try_parse_from(["x", "--gguf", "b", "--adapter", "a", "--out", "o", "--type", "q4_k"]).is_err());
        assert!(Args::try_parse_from(["x", "--lora-only", "--out", "o"]).is_err());
        assert!(Args::try_parse_from(["x", "--model", "m", "--out", "o"]).is_ok());
    }
}
