//! What writes the answer to a prompt: the tuned model through the live batcher
//! ([`Engine::Local`]) or another OpenAI-compatible server's `/v1/completions`
//! ([`Engine::Backend`], a llama.cpp server on our GGUF export, vLLM on the base with our PEFT
//! adapter, or another kb-lora server). Either way the answer comes as [`Piece`]s from an
//! [`Answering`]; dropping it cancels the request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qwen_lora::generate::GenerationConfig;
use qwen_lora::live::{Event, Finish, Request, SubmitError, Submitter};
use serde::Deserialize;
use tokenizers::Tokenizer;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::error::ApiError;

/// Decoding settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
}

/// Part of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// More text (local engine only; a backend's answer comes whole).
    Text(String),
    /// The whole answer.
    End(Answer),
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// OpenAI's `finish_reason`: `stop` or `length`.
    pub finish: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// The tuned model, decoding in a [`qwen_lora::live::Batcher`] that runs elsewhere.
pub struct Local {
    submit: Submitter,
    tokenizer: Arc<Tokenizer>,
    /// Most tokens a prompt and its answer may take together.
    context: usize,
    queue: usize,
}

/// Another OpenAI-compatible server.
pub struct Backend {
    /// Its API root, e.g. `http://127.0.0.1:8080/v1`.
    url: String,
    model: String,
    api_key: Option<String>,
    agent: ureq::Agent,
}

pub enum Engine {
    Local(Local),
    Backend(Backend),
}

impl Local {
    /// `queue` is the batcher's queue length, for the message when it is full.
    pub fn new(submit: Submitter, tokenizer: Tokenizer, context: usize, queue: usize) -> Local {
        Local { submit, tokenizer: Arc::new(tokenizer), context, queue }
    }
}

impl Backend {
    /// `url` is the backend's API root (`…/v1`); `model` the name it serves the model under.
    pub fn new(url: &str, model: &str, api_key: Option<String>, timeout: Duration) -> Backend {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Backend { url: url.trim_end_matches('/').to_string(), model: model.to_string(), api_key, agent }
    }
}

impl Engine {
    /// Starts answering `prompt` (ChatML text); refused at once when the prompt does not fit the
    /// context or the queue is full.
    pub fn start(&self, prompt: &str, sampling: &Sampling) -> Result<Answering, ApiError> {
        match self {
            Engine::Local(l) => l.start(prompt, sampling),
            Engine::Backend(b) => Ok(b.start(prompt, sampling)),
        }
    }

    /// Queue and batch figures for `/health` (none for a backend).
    pub fn load(&self) -> Option<(usize, usize)> {
        match self {
            Engine::Local(l) => Some((l.submit.load().queued(), l.submit.load().decoding())),
            Engine::Backend(_) => None,
        }
    }
}

/// Sets its flag when dropped: the batcher then drops the request.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An answer being written; see [`Answering::next`].
pub struct Answering {
    inner: Inner,
    /// Pieces ready to hand out.
    ready: VecDeque<Piece>,
}

enum Inner {
    Local {
        events: UnboundedReceiver<Event>,
        tokenizer: Arc<Tokenizer>,
        prompt_tokens: usize,
        ids: Vec<u32>,
        /// Text already handed out as pieces.
        shown: String,
        _cancel: CancelOnDrop,
    },
    Backend(Option<tokio::task::JoinHandle<Result<Answer, ApiError>>>),
}

impl Answering {
    /// The next piece, `None` after [`Piece::End`]. Text pieces never take back what earlier ones
    /// showed: a token that ends inside a multi-byte character waits for the rest of it.
    pub async fn next(&mut self) -> Option<Result<Piece, ApiError>> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Some(Ok(p));
            }
            match &mut self.inner {
                Inner::Backend(handle) => {
                    let h = handle.take()?;
                    return Some(match h.await {
                        Ok(Ok(answer)) => Ok(Piece::End(answer)),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(ApiError::internal(format!("backend request task: {e}"))),
                    });
                }
                Inner::Local { events, tokenizer, prompt_tokens, ids, shown, .. } => {
                    let event = match events.recv().await {
                        Some(e) => e,
                        None if ids.is_empty() && shown.is_empty() => {
                            return Some(Err(ApiError::shutting_down()));
                        }
                        None => return None,
                    };
                    let finish = match event {
                        Event::Token(t) => {
                            ids.push(t);
                            None
                        }
                        Event::Done(f) => Some(f),
                        Event::Failed(m) => return Some(Err(ApiError::internal(format!("the model failed: {m}")))),
                    };
                    let text = match tokenizer.decode(ids, true) {
                        Ok(t) => t,
                        Err(e) => return Some(Err(ApiError::internal(format!("decoding the answer: {e}")))),
                    };
                    if (finish.is_some() || !text.ends_with('\u{FFFD}'))
                        && let Some(delta) = text.strip_prefix(shown.as_str())
                        && !delta.is_empty()
                    {
                        self.ready.push_back(Piece::Text(delta.to_string()));
                        *shown = text.clone();
                    }
                    if let Some(f) = finish {
                        self.ready.push_back(Piece::End(Answer {
                            text,
                            finish: match f {
                                Finish::Stop => "stop",
                                Finish::Length => "length",
                            }
                            .to_string(),
                            prompt_tokens: *prompt_tokens,
                            completion_tokens: ids.len(),
                        }));
                        // Nothing follows `Done`: close so a later `next` ends.
                        events.close();
                    }
                }
            }
        }
    }

    /// Waits for the whole answer, discarding the text pieces.
    pub async fn finish(mut self) -> Result<Answer, ApiError> {
        while let Some(p) = self.next().await {
            if let Piece::End(a) = p? {
                return Ok(a);
            }
        }
        Err(ApiError::internal("the answer ended without finishing"))
    }
}

impl Local {
    fn start(&self, prompt: &str, sampling: &Sampling) -> Result<Answering, ApiError> {
        let enc = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| ApiError::bad_body(format!("the prompt could not be tokenized: {e}")))?;
        let ids = enc.get_ids().to_vec();
        if ids.len() + sampling.max_tokens > self.context {
            return Err(ApiError::invalid(
                "messages",
                format!(
                    "the prompt takes {} tokens and max_tokens asks for {} more: over the model's context of {} \
                     tokens; shorten the question or lower max_tokens",
                    ids.len(),
                    sampling.max_tokens,
                    self.context
                ),
            )
            .with_code("context_length_exceeded"));
        }
        let (tx, events) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let prompt_tokens = ids.len();
        let req = Request {
            prompt: ids,
            cfg: GenerationConfig {
                max_new_tokens: sampling.max_tokens,
                temperature: sampling.temperature,
                top_p: sampling.top_p,
                repetition_penalty: 1.0,
                seed: sampling.seed,
                batch_size: 1,
            },
            cancel: cancel.clone(),
            events: Box::new(move |e| tx.send(e).is_ok()),
        };
        self.submit.submit(req).map_err(|e| match e {
            SubmitError::Full => ApiError::overloaded(self.queue),
            SubmitError::Closed => ApiError::shutting_down(),
        })?;
        let inner = Inner::Local {
            events,
            tokenizer: self.tokenizer.clone(),
            prompt_tokens,
            ids: Vec::new(),
            shown: String::new(),
            _cancel: CancelOnDrop(cancel),
        };
        Ok(Answering { inner, ready: VecDeque::new() })
    }
}

/// The parts of a `/v1/completions` answer the backend path reads.
#[derive(Deserialize)]
struct Completion {
    choices: Vec<CompletionChoice>,
    usage: Option<CompletionUsage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    text: String,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CompletionUsage {
    prompt_tokens: usize,
    completion_tokens: usize,
}

/// Backend answers larger than this are refused (an answer is a few hundred bytes).
const BACKEND_BODY_LIMIT: u64 = 1 << 20;

impl Backend {
    fn start(&self, prompt: &str, sampling: &Sampling) -> Answering {
        let url = format!("{}/completions", self.url);
        let body = serde_json::json!({
            "model": self.model,
            "prompt": prompt,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "stop": ["<|im_end|>", "<|endoftext|>"],
            "stream": false,
        });
        let (agent, key, model) = (self.agent.clone(), self.api_key.clone(), self.model.clone());
        let handle = tokio::task::spawn_blocking(move || call_backend(&agent, &url, key.as_deref(), &model, &body));
        Answering { inner: Inner::Backend(Some(handle)), ready: VecDeque::new() }
    }
}

fn call_backend(
    agent: &ureq::Agent,
    url: &str,
    key: Option<&str>,
    model: &str,
    body: &serde_json::Value,
) -> Result<Answer, ApiError> {
    let mut req = agent.post(url).set("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let res = match req.send_string(&body.to_string()) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = read_limited(r).unwrap_or_default();
            let hint = match code {
                401 | 403 => " (check --backend-api-key)",
                404 => " (check --backend and --backend-model: it must serve /v1/completions and the model '{model}')",
                _ => "",
            }
            .replace("{model}", model);
            return Err(ApiError::backend(format!("the backend {url} answered {code}{hint}: {}", text.trim())));
        }
        Err(e) => return Err(ApiError::backend(format!("the backend {url} did not answer: {e}"))),
    };
    let text = read_limited(res).map_err(|e| ApiError::backend(format!("reading the backend's answer: {e}")))?;
    let c: Completion = serde_json::from_str(&text)
        .map_err(|e| ApiError::backend(format!("the backend's answer is not an OpenAI completion: {e}")))?;
    let choice = c.choices.into_iter().next().ok_or_else(|| ApiError::backend("the backend answered no choice"))?;
    let (prompt_tokens, completion_tokens) = c.usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    Ok(Answer {
        text: choice.text,
        finish: choice.finish_reason.unwrap_or_else(|| "stop".into()),
        prompt_tokens,
        completion_tokens,
    })
}

fn read_limited(res: ureq::Response) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    res.into_reader().take(BACKEND_BODY_LIMIT).read_to_string(&mut s)?;
    Ok(s)
}
