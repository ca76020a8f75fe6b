//! What every kb-lora binary shares, so each `main.rs` stays a thin shell:
//!
//! - [`main`]: installs logging, runs the binary's `run() -> anyhow::Result<()>`, prints the whole
//!   error chain (`error: {:#}`) and turns it into a non-zero exit code.
//! - [`progress_bar`]: one style for every progress bar, drawn on stderr and hidden when stderr is
//!   not a terminal (logs and pipes stay clean).

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Logs go to stderr (results go to stdout); `RUST_LOG` chooses the level, `info` by default.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

/// Runs a binary: logging, then `run`, then the exit code. An error prints its whole chain.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A progress bar of `len` steps with `msg` for extra figures; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}
