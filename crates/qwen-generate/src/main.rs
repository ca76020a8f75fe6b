//! `qwen-generate`: answer prompts with a Qwen2.5 model, optionally with a LoRA adapter.
//!
//! ```text
//! qwen-generate --gguf models/qwen2.5-coder-0.5b-instruct.gguf --prompt "請用一句話介紹你自己"
//! qwen-generate --model DIR --adapter qwen_lora_output/final_model --prompt "VPN 怎麼連?" --json
//! ```
//!
//! Several `--prompt`s are decoded together, `--batch-size` at a time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use cli_support::{GenerationArgs, ModelArgs};
use qwen_lora::ChatModel;

/// Generate text with a Qwen2.5 model (and a LoRA adapter, merged in memory).
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    /// LoRA adapter directory (PEFT format: adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,

    /// Prompt text, wrapped as a ChatML user turn; repeat the flag to decode several prompts together.
    #[arg(long, required = true)]
    prompt: Vec<String>,

    /// Use the prompt text as it is, without the ChatML wrapping.
    #[arg(long)]
    raw: bool,

    #[command(flatten)]
    generation: GenerationArgs,

    /// Print one JSON object per prompt: {"prompt_ids": [...], "output_ids": [...], "text": "..."}.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    // Checked before the (slow) model load.
    let cfg = args.generation.config()?;
    let loaded = ChatModel::load(&args.model.spec()?, args.adapter.as_deref(), args.generation.decode())
        .context("loading the model")?;
    let texts: Vec<String> =
        args.prompt.iter().map(|p| if args.raw { p.clone() } else { kb_dataset::prompt(p) }).collect();
    let prompt_ids = texts.iter().map(|t| loaded.encode(t)).collect::<qwen_lora::Result<Vec<_>>>()?;
    let start = Instant::now();
    let outputs = qwen_lora::generate::generate(&loaded.model, &prompt_ids, &loaded.stop, &cfg, |_| {})?;
    let secs = start.elapsed().as_secs_f64();
    let new_tokens: usize = outputs.iter().map(Vec::len).sum();
    tracing::info!(
        prompts = outputs.len(),
        new_tokens,
        secs = format!("{secs:.2}"),
        tokens_per_s = format!("{:.1}", new_tokens as f64 / secs),
        "generated"
    );
    for (ids, out) in prompt_ids.iter().zip(&outputs) {
        let text = loaded.decode(out)?;
        if args.json {
            println!("{}", serde_json::json!({ "prompt_ids": ids, "output_ids": out, "text": text }));
        } else {
            println!("{text}");
        }
    }
    Ok(())
}

cli_support::args_test!(Args);
