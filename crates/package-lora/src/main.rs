//! `package-lora`: packs a LoRA adapter with a manifest of hashes into a tar.gz, or verifies one.
//!
//! ```text
//! package-lora --adapter qwen_lora_output/final_model --report test_outputs/report.json --out qwen-lora-v1.tar.gz
//! package-lora --verify qwen-lora-v1.tar.gz
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use package_lora::{PackageOptions, package, sha256_file, verify};

/// Package a LoRA adapter (adapter files + manifest.json with hashes) or verify a package.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    /// Adapter directory to package (holds adapter_config.json and adapter_model.safetensors).
    #[arg(long, value_name = "DIR", required_unless_present = "verify", conflicts_with = "verify")]
    adapter: Option<PathBuf>,
    /// Eval report JSON (from test-qwen-lora); its summary goes into the manifest, in fractions.
    #[arg(long, value_name = "REPORT.json", conflicts_with = "verify")]
    report: Option<PathBuf>,
    /// Training set whose sha256 is recorded.
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    train: Option<PathBuf>,
    /// Eval set whose sha256 is recorded.
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    eval: Option<PathBuf>,
    /// Base model hub id or path; default: adapter_config.json's base_model_name_or_path.
    #[arg(long, value_name = "ID_OR_PATH", conflicts_with = "verify")]
    base_model: Option<String>,
    /// GGUF base model file whose sha256 is recorded.
    #[arg(long, value_name = "FILE", conflicts_with = "verify")]
    base_gguf: Option<PathBuf>,
    /// Archive to write.
    #[arg(long, value_name = "FILE", default_value = "qwen-lora-v1.tar.gz", conflicts_with = "verify")]
    out: PathBuf,
    /// Verify this package instead: recompute every hash, fail on any mismatch, missing or extra file.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
}

fn main() -> ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.verify {
        let m = verify(path).with_context(|| format!("verifying {}", path.display()))?;
        println!(
            "OK {}: {} files match the manifest (base model {}, created {} by {} {})",
            path.display(),
            m.files.len(),
            m.base_model.id.as_deref().unwrap_or("unrecorded"),
            m.created_at,
            m.tool.name,
            m.tool.version
        );
        return Ok(());
    }
    let Some(adapter) = args.adapter else {
        bail!("--adapter DIR is required (or --verify FILE)");
    };
    let mut inputs = vec![("--adapter", adapter.as_path())];
    let optional = [
        ("--report", &args.report),
        ("--train", &args.train),
        ("--eval", &args.eval),
        ("--base-gguf", &args.base_gguf),
    ];
    inputs.extend(optional.into_iter().filter_map(|(flag, path)| Some((flag, path.as_deref()?))));
    kb_dataset::check_outputs(&[("--out", &args.out)], &inputs)?;
    let opts = PackageOptions {
        adapter,
        report: args.report,
        train: args.train,
        eval: args.eval,
        base_model: args.base_model,
        base_gguf: args.base_gguf,
        out: args.out,
        created_unix: created_unix()?,
    };
    let m = package(&opts).with_context(|| format!("packaging {}", opts.adapter.display()))?;
    let archive = sha256_file(&opts.out)?;
    println!("wrote {} ({} bytes, sha256 {})", opts.out.display(), archive.size, archive.sha256);
    for (name, h) in &m.files {
        println!("  {name}  {} bytes  sha256 {}", h.size, h.sha256);
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` (reproducible builds) when set, else now.
fn created_unix() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds; unset it or fix it")),
        Err(_) => {
            Ok(SystemTime::now().duration_since(UNIX_EPOCH).context("the system clock is before 1970")?.as_secs())
        }
    }
}

cli_support::args_test!(Args);
