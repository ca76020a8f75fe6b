//! `serve-qwen-lora`: serves the tuned model over an OpenAI-compatible HTTP API
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`, a chat page at `/`),
//! every answer post-processed against the KB and labelled with its source.
//!
//! ```text
//! serve-qwen-lora --gguf models/qwen2.5-coder-0.5b-instruct.gguf --adapter qwen_lora_output/final_model
//! serve-qwen-lora --backend http://127.0.0.1:8080/v1 --backend-model qwen   # llama.cpp in front
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use cli_support::{AdapterArgs, GenerationArgs, ModelArgs, PostArgs};
use kb_dataset::Kb;
use kb_serve::{Model, Settings};
use qwen_lora::ChatModel;

/// Serve the tuned model over an OpenAI-compatible API, answers post-processed against the KB
/// with their source (Ctrl-C drains the requests in flight, then exits; a second one exits now).
#[derive(Debug, Parser)]
#[command(version, about, help_expected = true)]
struct Args {
    #[command(flatten)]
    model: ModelArgs,

    #[command(flatten)]
    adapter: AdapterArgs,

    /// Knowledge base answers are checked against and cited from.
    #[arg(long, value_name = "FILE", default_value = "data/kb.jsonl")]
    kb: std::path::PathBuf,

    #[command(flatten)]
    post: PostArgs,

    /// Address to listen on; anything but a loopback address should come with --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0: any free port; the log says which).
    #[arg(long, default_value_t = 8000)]
    port: u16,

    /// Require 'Authorization: Bearer KEY' on every /v1/ request.
    #[arg(long, value_name = "KEY", env = "KB_SERVE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// The model id clients name in requests and /v1/models lists.
    #[arg(long, value_name = "NAME", default_value = "kb-lora")]
    served_model_name: String,

    /// Requests waiting for a batch slot before new ones get 503.
    #[arg(long, value_name = "N", default_value_t = 64)]
    queue: usize,

    /// Seconds a request may take, from its arrival to its last token (at most a day).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    timeout: u64,

    /// Largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    body_limit: usize,

    /// Largest max_tokens a request may ask for (--max-new-tokens is the default).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_tokens_limit: usize,

    /// Answer through another OpenAI-compatible server's /v1/completions (its API root, e.g.
    /// http://127.0.0.1:8080/v1 for llama.cpp's llama-server on our GGUF export) instead of
    /// loading a model; post-processing stays here.
    #[arg(long, value_name = "URL")]
    backend: Option<String>,

    /// The model name the backend serves.
    #[arg(long, value_name = "NAME", default_value = "kb-lora", requires = "backend")]
    backend_model: String,

    /// Bearer key for the backend.
    #[arg(long, value_name = "KEY", env = "KB_SERVE_BACKEND_API_KEY", hide_env_values = true, requires = "backend")]
    backend_api_key: Option<String>,

    /// Decoding defaults: --max-new-tokens is max_tokens when a request gives none, --batch-size
    /// the requests decoding together; temperature, top_p and seed come from each request.
    #[command(flatten)]
    generation: GenerationArgs,
}

/// Requests past the batch and the queue that may still be read and refused with a JSON 503
/// of the queue's (the rest get the in-flight 503 before their body is read).
const IN_FLIGHT_SLACK: usize = 16;

fn main() -> std::process::ExitCode {
    cli_support::main(|| run(Args::parse()))
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        bail!("--api-key: must not be empty");
    }
    if args.timeout == 0 || args.timeout > 86_400 {
        bail!("--timeout: must be between 1 and 86400 seconds");
    }
    if args.queue == 0 {
        bail!("--queue: must be at least 1");
    }
    let gen_cfg = args.generation.config()?;
    if gen_cfg.max_new_tokens == 0 || gen_cfg.max_new_tokens > args.max_tokens_limit {
        bail!("--max-new-tokens: must be between 1 and --max-tokens-limit ({})", args.max_tokens_limit);
    }
    let kb = Kb::load(&args.kb).context("reading --kb")?;
    let post = args.post.post_processor(&kb)?;
    let model = match &args.backend {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--backend {url}: must be an http:// or https:// URL (the API root, e.g. http://host:8080/v1)");
            }
            Model::Backend {
                url: url.clone(),
                model: args.backend_model.clone(),
                api_key: args.backend_api_key.clone(),
            }
        }
        None => {
            let adapter = args.adapter.dir()?;
            let chat =
                ChatModel::load(&args.model.spec()?, adapter, args.generation.decode()).context("loading the model")?;
            Model::Local { chat: Box::new(chat), batch_size: gen_cfg.batch_size, queue: args.queue }
        }
    };
    let settings = Settings {
        model_name: args.served_model_name.clone(),
        api_key: args.api_key.clone(),
        body_limit: args.body_limit,
        timeout: Duration::from_secs(args.timeout),
        default_max_tokens: gen_cfg.max_new_tokens,
        max_tokens_limit: args.max_tokens_limit,
        max_in_flight: gen_cfg.batch_size + args.queue + IN_FLIGHT_SLACK,
    };
    let stop = Arc::new(AtomicBool::new(false));
    cli_support::stop_on_first_ctrl_c(stop.clone(), "stopping after the requests in flight (Ctrl-C again to quit now)");
    let host = if args.host.contains(':') && !args.host.starts_with('[') {
        format!("[{}]", args.host)
    } else {
        args.host.clone()
    };
    kb_serve::run(&format!("{host}:{}", args.port), settings, model, post, stop)?;
    Ok(())
}

cli_support::args_test!(Args);
