//! The HTTP surface: routes, the API-key check, body reading and request validation, and the
//! answers in OpenAI's shapes with their `kb_source`.
//!
//! Streaming and post-processing: post-processing may replace the whole answer (a KB entry's
//! text instead of a paraphrase, a refusal instead of an invented policy), so a post-processed
//! stream holds the text back until the answer is complete and decided, then sends it in one
//! chunk: a user never sees text that is then taken back. The role chunk goes out at once; with
//! `"postprocess": false` the model's tokens stream as they are decoded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use postprocess::PostProcessor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::api::*;
use crate::engine::{Answer, Engine, Piece, Sampling};
use crate::error::ApiError;

/// The limits and names a server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The id clients name in `model` (and `/v1/models` lists).
    pub model_name: String,
    /// Bearer key every `/v1/` request must carry, if set.
    pub api_key: Option<String>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest a request may take, from its body's arrival to the end of its answer.
    pub timeout: Duration,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_limit: usize,
    /// Requests on `/v1/` handled at once, bodies being read included; past it a request gets 503
    /// before its body is read, so many slow or large uploads cannot pile up in memory.
    pub max_in_flight: usize,
}

/// How long a client may take to send its body (a slow one holds a connection, not the model).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a request handler needs.
pub struct App {
    pub settings: Settings,
    pub engine: Engine,
    pub post: PostProcessor,
    /// Special tokens (`<|im_start|>`, ...): a question containing one could forge a turn.
    pub special_tokens: Vec<String>,
    /// One permit per request in flight on `/v1/` ([`Settings::max_in_flight`]).
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// The routes: `/` (the chat page), `/health`, `/v1/models`, `/v1/chat/completions`,
/// `/v1/completions`; JSON errors for anything else.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .fallback(|| async { ApiError::not_found("no such path; see /v1/chat/completions, /v1/models, /health") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let mut v = serde_json::json!({ "status": "ok", "model": app.settings.model_name });
    if let Some((queued, decoding)) = app.engine.load() {
        v["queued"] = queued.into();
        v["decoding"] = decoding.into();
    }
    Json(v)
}

async fn models(State(app): State<Arc<App>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelCard { id: app.settings.model_name.clone(), object: "model", created: 0, owned_by: "kb-lora" }],
    })
}

/// `/v1/` paths need the API key when one is set; the page and `/health` do not.
async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.settings.api_key
        && req.uri().path().starts_with("/v1/")
    {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        if given != Some(key.as_str()) {
            return ApiError::unauthorized().into_response();
        }
    }
    if req.uri().path().starts_with("/v1/") && req.method() == axum::http::Method::POST {
        // Held until the response is produced; a stream's body holds no permit (its answer is
        // in the batcher, bounded by the queue).
        let Ok(_permit) = app.in_flight.clone().try_acquire_owned() else {
            return ApiError::overloaded_connections(app.settings.max_in_flight).into_response();
        };
        return next.run(req).await;
    }
    next.run(req).await
}

/// Reads a JSON body of type `T`: 415 without a JSON content type, 413 over the limit, 408 when
/// it does not arrive in time, 400 naming the field when it does not parse.
async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body, limit: usize) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(ApiError::unsupported_media_type());
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let read = async {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_body(format!("reading the body: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(BODY_TIMEOUT, read).await.map_err(|_| ApiError::body_timeout())??;
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_body(format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::bad_body(format!("the body is not a valid request: {inner}"))
        } else {
            ApiError::invalid(&path, format!("{path}: {inner}"))
        }
    })
}

impl App {
    fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(m) if m != self.settings.model_name => Err(ApiError::model_not_found(m, &self.settings.model_name)),
            _ => Ok(()),
        }
    }

    /// The decoding settings a request asks for, each checked.
    fn sampling(
        &self,
        max_tokens: Option<u64>,
        temperature: Option<f64>,
        top_p: Option<f64>,
        seed: Option<u64>,
        n: Option<u64>,
    ) -> Result<Sampling, ApiError> {
        if n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("n", "n: only 1 answer per request is supported"));
        }
        let limit = self.settings.max_tokens_limit;
        let max_tokens = match max_tokens {
            None => self.settings.default_max_tokens.min(limit),
            Some(0) => return Err(ApiError::invalid("max_tokens", "max_tokens: must be at least 1")),
            Some(m) if m > limit as u64 => {
                return Err(ApiError::invalid("max_tokens", format!("max_tokens: at most {limit} on this server")));
            }
            Some(m) => m as usize,
        };
        let temperature = temperature.unwrap_or(0.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid("temperature", "temperature: must be between 0 and 2"));
        }
        let top_p = top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p", "top_p: must be in (0, 1]"));
        }
        Ok(Sampling { max_tokens, temperature, top_p, seed: seed.unwrap_or(42) })
    }

    /// The question a chat request asks: its last message, which must be the user's. The model
    /// was tuned on single questions without a system turn, so earlier turns are not sent to it
    /// (the answer to the same question is the same whatever came before).
    fn question(&self, messages: &[Message]) -> Result<String, ApiError> {
        const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];
        let last = messages.last().ok_or_else(|| ApiError::invalid("messages", "messages: must not be empty"))?;
        if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| !ROLES.contains(&m.role.as_str())) {
            return Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("messages[{i}].role: '{}' is not one of {}", m.role, ROLES.join(", ")),
            ));
        }
        let i = messages.len() - 1;
        if last.role != "user" {
            return Err(ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("messages[{i}]: the last message must be the user's question, not '{}'", last.role),
            ));
        }
        let param = format!("messages[{i}].content");
        let text = last
            .content
            .as_ref()
            .and_then(Content::text)
            .ok_or_else(|| ApiError::invalid(&param, format!("{param}: must be text")))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::invalid(&param, format!("{param}: the question is empty")));
        }
        if let Some(t) = self.special_tokens.iter().find(|t| text.contains(t.as_str())) {
            return Err(ApiError::invalid(&param, format!("{param}: must not contain the special token {t}")));
        }
        Ok(text.to_string())
    }

    /// Post-processing's decision on `answer`, and the content to send.
    fn decide(&self, question: &str, answer: &Answer, postprocess: bool) -> (String, KbSource) {
        let d = self.post.apply(question, &answer.text);
        let kb_text = d.doc_id.as_deref().and_then(|id| self.post.kb().get(id)).map(|e| e.text.clone());
        let content = if postprocess { d.answer.clone() } else { answer.text.clone() };
        (content, KbSource::new(&d, kb_text, postprocess, answer.text.clone()))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A response id unique within the process.
fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{:x}{:06x}", now(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn chat(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match chat_inner(app, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(app: Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let req: ChatRequest = read_json(headers, body, app.settings.body_limit).await?;
    app.check_model(req.model.as_deref())?;
    let question = app.question(&req.messages)?;
    let sampling =
        app.sampling(req.max_completion_tokens.or(req.max_tokens), req.temperature, req.top_p, req.seed, req.n)?;
    let answering = app.engine.start(&kb_dataset::prompt(&question), &sampling)?;
    let (id, created) = (new_id("chatcmpl"), now());
    let timeout = app.settings.timeout;
    if !req.stream {
        let answer = tokio::time::timeout(timeout, answering.finish())
            .await
            .map_err(|_| ApiError::timeout(timeout.as_secs()))??;
        let (content, kb_source) = app.decide(&question, &answer, req.postprocess);
        let completion = ChatCompletion {
            id,
            object: "chat.completion".into(),
            created,
            model: app.settings.model_name.clone(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage { role: "assistant".into(), content },
                finish_reason: answer.finish.clone(),
            }],
            usage: Usage::new(answer.prompt_tokens, answer.completion_tokens),
            kb_source,
        };
        return Ok(Json(completion).into_response());
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let stream = ChunkSender { tx, id, created, model: app.settings.model_name.clone() };
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream_answer(&app, &stream, answering, &question, req.postprocess)) =>
                r.unwrap_or_else(|_| Err(Some(ApiError::timeout(timeout.as_secs())))),
            // The client went away: dropping the answer cancels it.
            () = stream.tx.closed() => return,
        };
        match outcome {
            Ok(usage) => {
                if include_usage {
                    stream.chunk(Vec::new(), Some(usage), None).await;
                }
            }
            Err(Some(e)) => {
                let _ = stream.tx.send(Ok(SseEvent::default().data(e.json().to_string()))).await;
            }
            Err(None) => return,
        }
        let _ = stream.tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()).into_response())
}

/// Sends the chunks of one streaming answer.
struct ChunkSender {
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
    id: String,
    created: u64,
    model: String,
}

impl ChunkSender {
    /// Sends a chunk; `false` when the client is gone.
    async fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>, kb_source: Option<KbSource>) -> bool {
        let c = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            kb_source,
        };
        let data = serde_json::to_string(&c).unwrap_or_default();
        self.tx.send(Ok(SseEvent::default().data(data))).await.is_ok()
    }

    async fn delta(&self, delta: Delta, finish_reason: Option<String>, kb_source: Option<KbSource>) -> bool {
        self.chunk(vec![ChunkChoice { index: 0, delta, finish_reason }], None, kb_source).await
    }
}

/// Streams one answer (see the module docs); `Err(None)` when the client went away.
async fn stream_answer(
    app: &App,
    out: &ChunkSender,
    mut answering: crate::engine::Answering,
    question: &str,
    postprocess: bool,
) -> Result<Usage, Option<ApiError>> {
    if !out.delta(Delta { role: Some("assistant".into()), content: Some(String::new()) }, None, None).await {
        return Err(None);
    }
    let answer = loop {
        match answering.next().await {
            Some(Ok(Piece::Text(t))) if !postprocess => {
                if !out.delta(Delta { content: Some(t), ..Delta::default() }, None, None).await {
                    return Err(None);
                }
            }
            Some(Ok(Piece::Text(_))) => {}
            Some(Ok(Piece::End(a))) => break a,
            Some(Err(e)) => return Err(Some(e)),
            None => return Err(Some(ApiError::internal("the answer ended without finishing"))),
        }
    };
    let (content, kb_source) = app.decide(question, &answer, postprocess);
    // Backends answer whole: their text goes out here, like a post-processed answer.
    let streamed = !postprocess && matches!(app.engine, Engine::Local(_));
    if !streamed && !out.delta(Delta { content: Some(content), ..Delta::default() }, None, None).await {
        return Err(None);
    }
    if !out.delta(Delta::default(), Some(answer.finish.clone()), Some(kb_source)).await {
        return Err(None);
    }
    Ok(Usage::new(answer.prompt_tokens, answer.completion_tokens))
}

/// `POST /v1/completions`: a raw prompt (ChatML or not) continued by the model, without
/// post-processing; what `--backend` sends to another server.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: PromptField,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    n: Option<u64>,
    #[serde(default)]
    stream: bool,
}

/// A prompt string, or OpenAI's list of them (one only here).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptField {
    One(String),
    Many(Vec<String>),
}

async fn completions(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let run = async {
        let req: CompletionRequest = read_json(&headers, body, app.settings.body_limit).await?;
        app.check_model(req.model.as_deref())?;
        if req.stream {
            return Err(ApiError::invalid("stream", "stream: not supported on /v1/completions"));
        }
        let prompt = match req.prompt {
            PromptField::One(p) => p,
            PromptField::Many(mut v) if v.len() == 1 => v.remove(0),
            PromptField::Many(_) => return Err(ApiError::invalid("prompt", "prompt: exactly one prompt per request")),
        };
        if prompt.is_empty() {
            return Err(ApiError::invalid("prompt", "prompt: must not be empty"));
        }
        let sampling = app.sampling(req.max_tokens, req.temperature, req.top_p, req.seed, req.n)?;
        let answering = app.engine.start(&prompt, &sampling)?;
        let timeout = app.settings.timeout;
        let a = tokio::time::timeout(timeout, answering.finish())
            .await
            .map_err(|_| ApiError::timeout(timeout.as_secs()))??;
        Ok(Json(serde_json::json!({
            "id": new_id("cmpl"),
            "object": "text_completion",
            "created": now(),
            "model": app.settings.model_name,
            "choices": [{ "index": 0, "text": a.text, "finish_reason": a.finish, "logprobs": null }],
            "usage": Usage::new(a.prompt_tokens, a.completion_tokens),
        })))
    };
    match run.await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

impl App {
    /// An app over the model whose tokenizer is `tokenizer` (its special tokens are refused in
    /// questions).
    pub fn new(settings: Settings, engine: Engine, post: PostProcessor, tokenizer: &tokenizers::Tokenizer) -> App {
        let special_tokens = tokenizer.get_added_tokens_decoder().into_values().map(|t| t.content).collect();
        App::with_special_tokens(settings, engine, post, special_tokens)
    }

    /// An app in front of a backend: the Qwen2.5 ChatML markers are refused in questions.
    pub fn without_tokenizer(settings: Settings, engine: Engine, post: PostProcessor) -> App {
        let special_tokens = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"].map(String::from).to_vec();
        App::with_special_tokens(settings, engine, post, special_tokens)
    }

    fn with_special_tokens(
        settings: Settings,
        engine: Engine,
        post: PostProcessor,
        special_tokens: Vec<String>,
    ) -> App {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1)));
        App { settings, engine, post, special_tokens, in_flight }
    }
}
