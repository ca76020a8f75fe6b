//! `results-table`: the short results table `make demo` ends with — test-qwen-lora reports side
//! by side, and the training runs' time, speed and memory.
//!
//! ```text
//! results-table --report base=test_outputs/base.json --report adapter=test_outputs/adapter.json \
//!     --train qwen_lora_output/summary.json
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use train_summary::{ReadError, TrainSummary};

/// Compare evaluation reports (and training summaries) in one Markdown table.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    /// A test-qwen-lora JSON report as LABEL=FILE; repeat for each row.
    #[arg(long, value_name = "LABEL=FILE", required = true)]
    report: Vec<String>,

    /// A train-qwen-lora summary.json; repeat for several runs.
    #[arg(long, value_name = "FILE")]
    train: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for spec in &args.report {
        let Some((label, path)) = spec.split_once('=').filter(|(l, _)| !l.is_empty()) else {
            bail!("--report {spec}: expected LABEL=FILE, e.g. adapter=test_outputs/adapter.json");
        };
        reports.push((label.to_string(), lora_eval::read_report(path).with_context(|| format!("--report {spec}"))?));
    }
    let mut out = std::io::stdout().lock();
    lora_eval::compare_table(&mut out, &reports)?;
    if !args.train.is_empty() {
        println!("\n| training run | steps | time | tokens/s | best epoch | best eval loss | peak memory |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for path in &args.train {
            let s = TrainSummary::read(path).map_err(|e| match e {
                ReadError::Io(e) => anyhow::Error::new(e).context(format!("--train {}", path.display())),
                e => anyhow::anyhow!("--train {}: {e}", path.display()),
            })?;
            // train_seconds covers every invocation of a resumed run, like tokens_per_sec.
            println!(
                "| {} | {} | {:.1} min | {:.1} | {} | {} | {} |",
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(path).display(),
                s.global_steps,
                s.train_seconds / 60.0,
                s.tokens_per_sec,
                s.best_epoch.map_or("n/a".into(), |e| e.to_string()),
                s.best_eval_loss.map_or("n/a".into(), |l| format!("{l:.4}")),
                s.peak_memory_bytes.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64)),
            );
        }
    }
    Ok(())
}

cli_support::args_test!(Args);
