//! What every kb-lora binary shares, so each `main.rs` stays a thin shell:
//!
//! - [`main`]: installs logging and the Ctrl-C cleanup ([`remove_partial_outputs_on_ctrl_c`]),
//!   runs the binary's `run() -> anyhow::Result<()>`, prints the whole error chain
//!   (`error: {:#}`) and turns it into a non-zero exit code.
//! - [`park_idle_candle_workers`]: candle's CPU thread pool parks its idle workers at once instead
//!   of spinning (faster training on few cores); [`main`] does it first.
//! - [`on_compute_pool`]: runs the work on a worker of rayon's pool, so each parallel op starts
//!   there instead of being handed over from the main thread; [`main`] runs `run` so.
//! - [`progress_bar`]: the workspace's one progress bar ([`kb_dataset::progress_bar`]), drawn on
//!   stderr and hidden when stderr is not a terminal (logs and pipes stay clean).
//! - [`stop_on_first_ctrl_c`]: for a run that can stop cleanly (training writes a checkpoint), the
//!   first Ctrl-C only raises a flag.
//! - [`KbArgs`]: `--kb` and `--questions`, loaded together.
//! - [`args_test!`]: the test every binary carries, that its clap `Args` are well formed.
//! - With the feature `model`: [`ModelArgs`], [`AdapterArgs`], [`GenerationArgs`], the flags that
//!   choose a model, turned into the plain specs `qwen-lora` takes, and [`generate_answers`]
//!   (an eval set answered by that model); [`PostArgs`], the post-processing flags.

mod kb;
#[cfg(feature = "model")]
mod model;
#[cfg(feature = "model")]
mod post;

use std::io::IsTerminal;
use std::process::{ExitCode, Termination};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
/// The workspace's one progress bar, here for the binaries: see [`kb_dataset::progress_bar`].
pub use kb_dataset::progress_bar;

pub use kb::KbArgs;
#[cfg(feature = "model")]
pub use model::{AdapterArgs, DTypeArg, DeviceArg, GenerationArgs, ModelArgs, generate_answers};
#[cfg(feature = "model")]
pub use post::PostArgs;

/// For [`args_test!`].
#[doc(hidden)]
pub use clap;

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

/// candle's CPU backend keeps its own thread pool beside rayon's (which `gemm` and the fused
/// training ops use). After each op its workers spin 25,000 times before parking, so on a machine
/// with few cores a spinning worker takes a core from the next matmul; parking at once trains
/// faster there (figures in docs/BENCHMARKS.md). A value the user set in
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is kept. Call it first in `main`, before any thread exists:
/// candle reads the variable once, when its pool starts.
pub fn park_idle_candle_workers() {
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        // SAFETY: called at the start of `main`, while the process has one thread, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(SPIN_LIMIT_VAR, "0") };
    }
}

/// The variable candle-core 0.11 reads for its pool's spin limit.
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Stack of each rayon worker when [`on_compute_pool`] builds the pool: the work that used to run
/// on the main thread (8 MiB) runs on one of them, and candle's backward walks its graph
/// recursively. Only the pages a thread touches take memory.
pub const WORKER_STACK_BYTES: usize = 32 << 20;

/// Runs `f` on a worker of rayon's global pool and returns its result. The pool is built here
/// (with [`WORKER_STACK_BYTES`] of stack per worker) unless something built it before.
///
/// gemm and the fused training ops split their work with rayon. Called from the main thread, each
/// such op is injected into the pool while the main thread sleeps on a latch until it is done;
/// called from a worker, the worker starts the op itself and the others steal from it, one thread
/// hand-off fewer per op, which the training recipe measures as faster (docs/BENCHMARKS.md).
pub fn on_compute_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    // An error only means the global pool exists already; `f` then runs on it as it is.
    let _ = rayon::ThreadPoolBuilder::new().stack_size(WORKER_STACK_BYTES).build_global();
    let mut out = None;
    rayon::scope(|s| s.spawn(|_| out = Some(f())));
    out.expect("rayon::scope returns only after its spawned job ran")
}

/// Set by the Ctrl-C handler before it removes the temporaries: a writer whose temporary
/// vanished then fails, and that failure is not the run's outcome (the interrupt is).
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, what a shell reports).
pub const INTERRUPTED: u8 = 130;

/// A run's stop flag and what to print when the first Ctrl-C raises it ([`stop_on_first_ctrl_c`]).
static GRACEFUL_STOP: Mutex<Option<(Arc<AtomicBool>, &'static str)>> = Mutex::new(None);

/// On Ctrl-C, removes the temporary files and directories this process is writing outputs into
/// ([`kb_dataset::remove_temps_of_this_process`]) and exits with [`INTERRUPTED`]. Without it the
/// default action kills the process on the spot, and an interrupted merge or export leaves its
/// whole temporary model (hundreds of MB) beside the output. After [`stop_on_first_ctrl_c`], the
/// first Ctrl-C only raises the run's flag.
pub fn remove_partial_outputs_on_ctrl_c() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        let graceful = GRACEFUL_STOP.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((stop, message)) = graceful
            && !stop.swap(true, Ordering::SeqCst)
        {
            eprintln!("{message}");
            return;
        }
        STOPPING.store(true, Ordering::SeqCst);
        kb_dataset::remove_temps_of_this_process();
        eprintln!("interrupted: partial outputs removed");
        std::process::exit(i32::from(INTERRUPTED));
    })
    .context("installing the Ctrl-C handler")
}

/// From now on the first Ctrl-C sets `stop` and prints `message` (the run stops cleanly by itself);
/// a second one removes partial outputs and exits at once, as without this call. Needs the
/// handler [`main`] installs.
pub fn stop_on_first_ctrl_c(stop: Arc<AtomicBool>, message: &'static str) {
    *GRACEFUL_STOP.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, message));
}

/// Runs a binary: candle's pool setting, logging, the Ctrl-C cleanup, then `run` on rayon's pool
/// ([`on_compute_pool`]), then the exit code: `run`'s own ([`Termination`]; `()` is success) or,
/// on error, failure after printing the whole error chain.
pub fn main<T: Termination + Send>(run: impl FnOnce() -> anyhow::Result<T> + Send) -> ExitCode {
    park_idle_candle_workers();
    init_logging();
    if let Err(e) = remove_partial_outputs_on_ctrl_c() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match on_compute_pool(run) {
        Ok(outcome) => outcome.report(),
        Err(_) if STOPPING.load(Ordering::SeqCst) => loop {
            // The handler exits with INTERRUPTED as soon as its cleanup is done.
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The test every binary carries: `cli_support::args_test!(Args);` checks the clap `Args` with
/// clap's `debug_assert` (help on every flag, no conflicting names).
#[macro_export]
macro_rules! args_test {
    ($args:ty) => {
        #[cfg(test)]
        #[test]
        fn args_are_well_formed() {
            <$args as $crate::clap::CommandFactory>::command().debug_assert();
        }
    };
}
