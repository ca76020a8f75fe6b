//! Loads a base model with the shared flags and prints its config, a few tensor shapes and the
//! load time: a rerunnable load benchmark.
//!
//! `cargo run -p qwen-lora --release --example load_base -- --gguf models/qwen2.5-coder-0.5b-instruct.gguf`
//! (`RUST_LOG=qwen_lora=debug` adds the GGUF phase timings).

use std::time::Instant;

use clap::Parser;
use qwen_lora::cli::ModelArgs;

/// Load a base model and report what was loaded.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let start = Instant::now();
    let base = args.model.load()?;
    let secs = start.elapsed().as_secs_f64();
    println!("source: {}", base.source.describe());
    println!("config: {:?}", base.config);
    for (name, shape) in qwen_lora::load::expected_tensors(&base.config).into_iter().take(5) {
        let t = base.vb.get(shape, &name)?;
        println!("{name}: {:?} {:?}", t.dims(), t.dtype());
    }
    println!("eos ids: {:?}", base.eos_token_ids());
    println!("load time: {secs:.2} s");
    Ok(())
}
