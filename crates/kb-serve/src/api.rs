//! The OpenAI chat-completions shapes the server reads and writes, plus `kb_source`, the one
//! field it adds: where the answer came from in the KB.

use postprocess::Decision;
use serde::{Deserialize, Serialize};

/// `POST /v1/chat/completions`. Fields OpenAI defines that do not change a greedy answer
/// (`user`, `frequency_penalty`, `logprobs`, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Must be the served model's id when given.
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u64>,
    /// OpenAI's newer name for `max_tokens`.
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    /// Only 1 (one answer per request).
    pub n: Option<u64>,
    /// kb-lora: `false` returns the model's own answer instead of the post-processed one
    /// (`kb_source` still says what post-processing would have done).
    #[serde(default = "yes")]
    pub postprocess: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
}

/// A message's content: a string, or OpenAI's array of typed parts (text parts are joined).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

impl Content {
    /// The text of the content, or `None` when a part is not text.
    pub fn text(&self) -> Option<String> {
        match self {
            Content::Text(t) => Some(t.clone()),
            Content::Parts(parts) => {
                parts.iter().map(|p| (p.kind == "text").then(|| p.text.clone()).flatten()).collect()
            }
        }
    }
}

/// The answer to a non-streaming request.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
    pub kb_source: KbSource,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Usage {
        Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

/// Where an answer comes from: post-processing's decision on the model's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KbSource {
    /// `KB_MATCH`, `RETRIEVAL_OVERRIDE`, `RULE_OVERRIDE` or `MODEL_GENERATED`.
    pub label: String,
    /// The KB entry the post-processed answer is taken from.
    pub doc_id: Option<String>,
    /// That entry's text, for showing the citation.
    pub kb_text: Option<String>,
    /// Why post-processing decided so, in plain words.
    pub reason: String,
    /// Whether `content` is the post-processed answer (`false`: the model's own, asked for
    /// with `"postprocess": false`).
    pub postprocessed: bool,
    /// The model's own answer.
    pub raw_answer: String,
}

impl KbSource {
    pub fn new(d: &Decision, kb_text: Option<String>, postprocessed: bool, raw_answer: String) -> KbSource {
        KbSource {
            label: d.source.as_str().to_string(),
            doc_id: d.doc_id.clone(),
            kb_text,
            reason: d.source_detail.clone(),
            postprocessed,
            raw_answer,
        }
    }
}

/// One server-sent event of a streaming answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// On the chunk that carries `finish_reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kb_source: Option<KbSource>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}
