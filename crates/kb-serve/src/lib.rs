//! An OpenAI-compatible chat server over the tuned model, answering with the KB source of every
//! answer.
//!
//! - [`routes`]: `POST /v1/chat/completions` (plain and `stream: true` server-sent events),
//!   `POST /v1/completions`, `GET /v1/models`, `GET /health`, the chat page at `/`; the optional
//!   API key, body limit and per-request timeout; OpenAI-style JSON errors.
//! - [`engine`]: what writes the answers: the model in a [`qwen_lora::live`] batcher (requests
//!   join and leave the batch as they come and finish, behind a bounded queue), or another
//!   OpenAI-compatible server (`--backend`) with the same post-processing in front.
//! - [`api`]: the request and response shapes; `kb_source` is the one field added to OpenAI's.
//! - [`run`]: binds, serves until the stop flag is raised (Ctrl-C), lets the requests in flight
//!   finish, then returns. The batcher decodes on the calling thread (rayon's worker, where
//!   `cli_support::main` runs a binary) and the HTTP side on a small tokio runtime beside it.

pub mod api;
pub mod engine;
mod error;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postprocess::PostProcessor;
use qwen_lora::ChatModel;
use tokio::net::TcpListener;

pub use engine::{Backend, Engine, Local};
pub use error::{ApiError, Error, Result};
pub use routes::{App, Settings, router};

/// What answers: the model itself, or another server.
pub enum Model {
    /// The tuned model, `batch_size` requests decoding together and at most `queue` waiting.
    Local { chat: Box<ChatModel>, batch_size: usize, queue: usize },
    /// Another OpenAI-compatible server's API root (`…/v1`), the model name it serves and its key.
    Backend { url: String, model: String, api_key: Option<String> },
}

/// Serves on `addr` (`host:port`) until `stop` is raised, then lets the requests in flight
/// finish (each is bounded by `settings.timeout`) and returns.
pub fn run(addr: &str, settings: Settings, model: Model, post: PostProcessor, stop: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kb-serve-http")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let listener =
        rt.block_on(TcpListener::bind(addr)).map_err(|source| Error::Bind { addr: addr.to_string(), source })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    let shutdown = async move {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!("stopping: no new requests; finishing the ones in flight");
    };
    match model {
        Model::Local { chat, batch_size, queue } => {
            let ChatModel { model, tokenizer, stop: stop_tokens, .. } = *chat;
            let context = model.config().max_position_embeddings;
            let (submit, batcher) = qwen_lora::live::channel(batch_size, queue);
            let engine = Engine::Local(Local::new(submit, tokenizer.clone(), context, queue));
            let app = App::new(settings, engine, post, &tokenizer);
            tracing::info!(batch_size, queue, "listening on http://{local}");
            let server = std::thread::Builder::new()
                .name("kb-serve".into())
                .spawn(move || rt.block_on(serve(listener, app, shutdown)))
                .map_err(Error::Runtime)?;
            // Returns once the server, and with it every submitter, is gone.
            batcher.run(&model, &stop_tokens);
            server.join().map_err(|_| Error::Settings("the HTTP thread panicked".into()))?
        }
        Model::Backend { url, model, api_key } => {
            let engine = Engine::Backend(Backend::new(&url, &model, api_key, settings.timeout));
            let app = App::without_tokenizer(settings, engine, post);
            tracing::info!(backend = %url, "listening on http://{local}");
            rt.block_on(serve(listener, app, shutdown))
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for the requests in flight.
pub async fn serve(listener: TcpListener, app: App, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    axum::serve(listener, router(Arc::new(app))).with_graceful_shutdown(shutdown).await.map_err(Error::Serve)
}
