//! Loads a base model with the shared flags and prints its config, a few tensor shapes and the
//! load time: a rerunnable load benchmark.
//!
//! `cargo run -p qwen-lora --release --example load_base -- --gguf models/qwen2.5-coder-0.5b-instruct.gguf`
//! (`RUST_LOG=qwen_lora=debug` adds the GGUF phase timings).

use std::time::Instant;

use clap::Parser;
use qwen_lora::ModelSpec;
use qwen_lora::load::ModelSource;

/// Load a base model (on the CPU, in f32) and report what was loaded.
#[derive(Parser)]
struct Args {
    /// Base model: a hub id or a local HF directory.
    #[arg(long, value_name = "ID|DIR", default_value = qwen_lora::DEFAULT_MODEL)]
    model: String,

    /// Hub revision of --model [default: main].
    #[arg(long, value_name = "REV")]
    revision: Option<String>,

    /// Load this GGUF checkpoint instead of --model.
    #[arg(long, value_name = "FILE")]
    gguf: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let start = Instant::now();
    let source = ModelSource::resolve(&args.model, args.revision.as_deref(), args.gguf.as_deref());
    let base = ModelSpec::cpu(source).load()?;
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
