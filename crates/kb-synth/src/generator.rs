//! What synthesis asks of a model: [`Request`]s in, texts out ([`Generator`]).

/// One prompt for the generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub system: String,
    pub user: String,
    pub seed: u64,
    /// 0 decodes greedily.
    pub temperature: f64,
    pub max_new_tokens: usize,
}

/// A chat model that answers requests: `qwen::QwenGenerator` on a real model, anything in
/// tests.
pub trait Generator {
    /// Names the model and its decoding settings; part of every cache key.
    fn identity(&self) -> String;
    /// The answer to each request, in order. Each answer must depend only on its own request
    /// (prompt, seed, settings), not on the others of the call.
    fn generate(&mut self, requests: &[Request]) -> std::result::Result<Vec<String>, String>;
}
