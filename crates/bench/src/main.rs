//! `bench`: kb-lora's speed on the real model beside the Python reference and llama.cpp, as a
//! Markdown report (see the `bench` library for the sections and the report).
//!
//! ```text
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --out docs/BENCHMARKS.md
//! bench --gguf models/qwen2.5-coder-0.5b-instruct.gguf --only decode train-step --repeats 1
//! ```

use std::path::PathBuf;

use bench::{Options, Section, Settings};
use clap::Parser;

/// Benchmark kb-lora on the real model (matmul ceiling, load, decode, training, eval generation)
/// and compare with the reference; prints a Markdown report.
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true, allow_negative_numbers = true)]
struct Args {
    #[command(flatten)]
    settings: Settings,

    /// Run only these sections, in this order [default: all].
    #[arg(long, value_enum, num_args = 1.., value_name = "SECTION")]
    only: Vec<Section>,

    /// Reference figures measured live: the JSON written by scripts/bench_reference.py.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,

    /// Write the report (Markdown) to this file, e.g. docs/BENCHMARKS.md [default: stdout only].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// With --out: add this run below the file's content instead of replacing it.
    #[arg(long, requires = "out")]
    append: bool,

    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Measure nothing: render the report from a JSON file written earlier by --json (e.g. with a
    /// new --reference).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["only", "in_process"])]
    results: Option<PathBuf>,

    /// Run every section in this process (peak memory is then a running peak, not per section).
    #[arg(long)]
    in_process: bool,

    /// Internal: run this one section and write its results to --child-out.
    #[arg(long, hide = true, value_enum, requires = "child_out")]
    child: Option<Section>,

    /// Internal: where a child writes its results.
    #[arg(long, hide = true, value_name = "FILE")]
    child_out: Option<PathBuf>,
}

impl Args {
    fn options(self) -> anyhow::Result<Options> {
        Ok(Options {
            settings: self.settings.checked()?,
            only: self.only,
            reference: self.reference,
            out: self.out,
            append: self.append,
            json: self.json,
            results: self.results,
            in_process: self.in_process,
            child: self.child.zip(self.child_out),
        })
    }
}

fn main() -> std::process::ExitCode {
    cli_support::main(|| bench::run(&Args::parse().options()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn args_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn sections_and_dims_parse() {
        let a = Args::try_parse_from(["bench", "--only", "decode", "train-step", "--matmul-dims", "1536,256,8960"])
            .unwrap();
        assert_eq!(a.only, [Section::Decode, Section::TrainStep]);
        assert_eq!(a.options().unwrap().settings.matmul_dims, [1536, 256, 8960]);
        let a = Args::try_parse_from(["bench", "--matmul-dims", "1536,256"]).unwrap();
        assert!(a.options().unwrap_err().to_string().contains("--matmul-dims takes three numbers"));
        assert!(Args::try_parse_from(["bench", "--only", "train"]).is_err());
        assert!(Args::try_parse_from(["bench", "--append"]).is_err(), "--append needs --out");
    }
}
