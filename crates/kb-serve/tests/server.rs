//! The server end to end on the tiny random model: OpenAI shapes (also through a real OpenAI
//! client library), answers equal to offline generation, streaming, post-processing, errors,
//! the queue bound, cancellation, the API key, and a second server in front of the first as its
//! `--backend`.

use std::collections::HashMap;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use kb_dataset::{Kb, read_jsonl};
use kb_serve::{App, Backend, Engine, Local, Settings, serve};
use postprocess::{PostProcessor, Retriever};
use qwen_lora::fixture::{tiny_config, tiny_tensors, tiny_tokenizer};
use qwen_lora::generate::{GenerationConfig, generate};
use qwen_lora::model::Qwen2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpListener;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

fn post() -> PostProcessor {
    let kb = Kb::load(data("kb.jsonl")).unwrap();
    let training = read_jsonl(data("train_qwen_v1.jsonl")).unwrap();
    let retriever =
        Retriever::new(&kb, &training, &data("train_qwen_v1.jsonl"), postprocess::CONFIDENT_PRECISION).unwrap();
    PostProcessor::new(kb, postprocess::DEFAULT_KB_MATCH_THRESHOLD).unwrap().with_retriever(retriever)
}

fn tiny_model() -> Qwen2 {
    let ts: HashMap<String, Tensor> = tiny_tensors(5).unwrap().into_iter().collect();
    Qwen2::new(&tiny_config(), candle_nn::VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu), None).unwrap()
}

fn stop_ids(tok: &tokenizers::Tokenizer) -> Vec<u32> {
    ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| tok.token_to_id(t)).collect()
}

fn settings() -> Settings {
    Settings {
        model_name: "kb-lora".into(),
        api_key: None,
        body_limit: 64 * 1024,
        timeout: Duration::from_secs(60),
        default_max_tokens: 24,
        max_tokens_limit: 1024,
        max_in_flight: 64,
    }
}

/// A server on a free port; it stops when the test's runtime ends.
struct Server {
    url: String,
}

async fn start_app(app: App) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, app, std::future::pending()));
    Server { url }
}

async fn start(settings: Settings, batch: usize, queue: usize) -> Server {
    let tok = tiny_tokenizer().unwrap();
    let (submit, batcher) = qwen_lora::live::channel(batch, queue);
    let (model, stop) = (tiny_model(), stop_ids(&tok));
    std::thread::spawn(move || batcher.run(&model, &stop));
    let engine = Engine::Local(Local::new(submit, tok.clone(), tiny_config().max_position_embeddings, queue));
    start_app(App::new(settings, engine, post(), &tok)).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string(), Some("application/json")).await
}

async fn post_raw(url: &str, body: String, content_type: Option<&str>) -> (u16, Value) {
    let mut req = client().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn ask(question: &str, extra: Value) -> Value {
    let mut v = json!({ "model": "kb-lora", "messages": [{ "role": "user", "content": question }] });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

/// What offline batched generation answers to `question` alone (greedy).
fn offline(question: &str, max_new_tokens: usize) -> String {
    let tok = tiny_tokenizer().unwrap();
    let ids = tok.encode(kb_dataset::prompt(question), false).unwrap().get_ids().to_vec();
    let cfg = GenerationConfig { max_new_tokens, batch_size: 1, ..GenerationConfig::default() };
    let out = generate(&tiny_model(), &[ids], &stop_ids(&tok), &cfg, |_| {}).unwrap();
    tok.decode(&out[0], true).unwrap()
}

/// The `data:` lines of a server-sent event stream.
fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(String::from)
        .collect()
}

const QUESTIONS: [&str; 4] = ["VPN 怎麼連線?", "年假有幾天", "how do I report phishing", "公司有健身房嗎"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_offline_generation_post_processed_with_their_source() {
    let s = start(settings(), 4, 16).await;
    let url = format!("{}/v1/chat/completions", s.url);
    let pp = post();
    // All at once, so they share the batch.
    let replies = futures_join(QUESTIONS.iter().map(|q| {
        let (url, body) = (url.clone(), ask(q, json!({ "max_tokens": 20 })));
        async move { post_json(&url, &body).await }
    }))
    .await;
    for (q, (status, v)) in QUESTIONS.iter().zip(replies) {
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "kb-lora");
        let raw = v["kb_source"]["raw_answer"].as_str().unwrap();
        assert_eq!(raw, offline(q, 20), "{q}: the batch changed the answer");
        let d = pp.apply(q, raw);
        assert_eq!(v["choices"][0]["message"]["content"], d.answer, "{q}");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["kb_source"]["label"], d.source.as_str(), "{q}");
        assert_eq!(v["kb_source"]["doc_id"], json!(d.doc_id), "{q}");
        assert_eq!(v["kb_source"]["reason"], d.source_detail, "{q}");
        assert_eq!(v["kb_source"]["postprocessed"], true);
        if let Some(id) = &d.doc_id {
            assert_eq!(v["kb_source"]["kb_text"], pp.kb().get(id).unwrap().text, "{q}");
        }
        let usage = &v["usage"];
        assert!(usage["completion_tokens"].as_u64().unwrap() <= 20);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap())
        );
        let finish = v["choices"][0]["finish_reason"].as_str().unwrap();
        assert!(finish == "stop" || finish == "length", "{finish}");
    }
    // The raw answer on request.
    let (status, v) = post_json(&url, &ask(QUESTIONS[0], json!({ "max_tokens": 20, "postprocess": false }))).await;
    assert_eq!(status, 200);
    assert_eq!(v["choices"][0]["message"]["content"], offline(QUESTIONS[0], 20));
    assert_eq!(v["kb_source"]["postprocessed"], false);
}

/// Runs the futures concurrently, results in order.
async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_in_openai_chunks_and_never_take_text_back() {
    let s = start(settings(), 4, 16).await;
    let url = format!("{}/v1/chat/completions", s.url);
    for postprocess in [false, true] {
        let body = ask(
            QUESTIONS[1],
            json!({ "max_tokens": 20, "stream": true, "postprocess": postprocess,
            "stream_options": { "include_usage": true } }),
        );
        let res =
            client().post(&url).header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let events = sse_data(&res.text().await.unwrap());
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        let (_, whole) =
            post_json(&url, &ask(QUESTIONS[1], json!({ "max_tokens": 20, "postprocess": postprocess }))).await;
        assert_eq!(text, whole["choices"][0]["message"]["content"].as_str().unwrap(), "postprocess {postprocess}");
        let content_chunks = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()))
            .count();
        if postprocess {
            assert_eq!(content_chunks, 1, "a post-processed answer is sent once, decided");
        } else {
            assert!(content_chunks >= 2, "raw tokens stream as they come: {content_chunks} chunks");
        }
        let last = chunks.iter().rev().find(|c| !c["choices"][0]["finish_reason"].is_null()).unwrap();
        assert_eq!(last["kb_source"]["label"], whole["kb_source"]["label"]);
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"], whole["usage"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors_naming_the_problem() {
    let mut st = settings();
    st.body_limit = 4096;
    let s = start(st, 2, 8).await;
    let url = format!("{}/v1/chat/completions", s.url);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "messages": [] }), 400, "messages"),
        (json!({ "model": "gpt-4", "messages": [{ "role": "user", "content": "hi" }] }), 404, "model"),
        (ask("hi", json!({ "max_tokens": 0 })), 400, "max_tokens"),
        (ask("hi", json!({ "max_tokens": 100000 })), 400, "max_tokens"),
        (ask("hi", json!({ "max_tokens": "ten" })), 400, "max_tokens"),
        (ask("hi", json!({ "temperature": 5 })), 400, "temperature"),
        (ask("hi", json!({ "n": 3 })), 400, "n"),
        (json!({ "messages": "hi" }), 400, "messages"),
        (json!({ "messages": [{ "role": "user", "content": "   " }] }), 400, "messages[0].content"),
        (
            json!({ "messages": [{ "role": "user", "content": "hi" }, { "role": "assistant", "content": "x" }] }),
            400,
            "messages[1].role",
        ),
        (json!({ "messages": [{ "role": "wizard", "content": "hi" }] }), 400, "messages[0].role"),
        (json!({ "messages": [{ "role": "user", "content": "a<|im_end|>b" }] }), 400, "messages[0].content"),
        (json!({ "messages": [{ "role": "user", "content": 7 }] }), 400, "messages[0].content"),
    ];
    for (body, status, param) in cases {
        let (got, v) = post_json(&url, &body).await;
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        assert!(v["error"]["type"].is_string());
    }
    let (status, v) = post_raw(&url, "{\"messages\": [".into(), Some("application/json")).await;
    assert_eq!((status, v["error"]["message"].as_str().unwrap().contains("not valid JSON")), (400, true), "{v}");
    let (status, _) = post_raw(&url, ask("hi", json!({})).to_string(), Some("text/plain")).await;
    assert_eq!(status, 415);
    let (status, v) = post_raw(&url, ask(&"長".repeat(5000), json!({})).to_string(), Some("application/json")).await;
    assert_eq!(status, 413, "{v}");
    // Past the context: a long question with a big max_tokens.
    let mut st = settings();
    st.max_tokens_limit = 4000;
    let big = start(st, 1, 4).await;
    let (status, v) =
        post_json(&format!("{}/v1/chat/completions", big.url), &ask(&"ab ".repeat(800), json!({ "max_tokens": 4000 })))
            .await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("context_length_exceeded")), "{v}");
    let (status, v) = post_json(&format!("{}/nowhere", s.url), &json!({})).await;
    assert_eq!(status, 404, "{v}");
    let res = client().get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_randomly_broken_bodies_never_take_the_server_down() {
    let s = start(settings(), 4, 64).await;
    let url = format!("{}/v1/chat/completions", s.url);
    let valid = ask("VPN 怎麼連線?", json!({ "max_tokens": 4, "temperature": 0.5, "seed": 3 })).to_string();
    let mut rng = StdRng::seed_from_u64(7);
    let junk = ["null", "-1", "1e400", "\"\"", "[]", "{}", "true", "\"x\"", "18446744073709551616", "\u{0}"];
    let (mut ok, mut refused) = (0, 0);
    for i in 0..300 {
        let mut b: Vec<u8> = valid.clone().into_bytes();
        match i % 4 {
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..b.len());
                    b.remove(at);
                }
            }
            1 => {
                let at = rng.random_range(0..b.len());
                b.insert(at, rng.random::<u8>());
            }
            2 => {
                // A value replaced by junk of another type.
                let text = String::from_utf8_lossy(&b).to_string();
                let keys = [
                    "\"model\":",
                    "\"messages\":",
                    "\"max_tokens\":",
                    "\"temperature\":",
                    "\"seed\":",
                    "\"content\":",
                    "\"role\":",
                ];
                let key = keys[rng.random_range(0..keys.len())];
                let at = text.find(key).unwrap() + key.len();
                let end = at + text[at..].find([',', '}']).unwrap_or(0);
                b = format!("{}{}{}", &text[..at], junk[rng.random_range(0..junk.len())], &text[end..]).into_bytes();
            }
            _ => b.truncate(rng.random_range(0..b.len())),
        }
        let res = client()
            .post(&url)
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("body {i} took the server down: {e}"));
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        match status {
            200 => ok += 1,
            400 | 404 => {
                refused += 1;
                assert!(v["error"]["message"].is_string(), "{text}");
            }
            _ => panic!("body {i} ({}) got {status}: {text}", String::from_utf8_lossy(&b)),
        }
    }
    assert!(refused > 150 && ok > 0, "{refused} refused, {ok} answered");
    let health: Value = client().get(format!("{}/health", s.url)).send().await.unwrap().json_value().await;
    assert_eq!(health["status"], "ok");
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

async fn health(s: &Server) -> Value {
    client().get(format!("{}/health", s.url)).send().await.unwrap().json_value().await
}

async fn wait_for(s: &Server, what: &str, f: impl Fn(&Value) -> bool) {
    for _ in 0..500 {
        if f(&health(s).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened; /health says {}", health(s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_a_client_that_leaves_frees_its_slot() {
    let s = start(settings(), 1, 1).await;
    let url = format!("{}/v1/chat/completions", s.url);
    let long = ask("VPN 怎麼連線?", json!({ "max_tokens": 1024, "stream": true, "postprocess": false }));
    let send =
        |body: &Value| client().post(&url).header("content-type", "application/json").body(body.to_string()).send();
    let mut first = send(&long).await.unwrap();
    first.chunk().await.unwrap();
    wait_for(&s, "the first request decoding", |h| h["decoding"] == 1).await;
    let second = tokio::spawn(send(&long));
    wait_for(&s, "the second request queued", |h| h["queued"] == 1).await;
    let (status, v) = post_json(&url, &ask("x", json!({}))).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "queue_full");
    // The first client leaves: its slot goes to the second.
    drop(first);
    wait_for(&s, "the second request taking the slot", |h| h["queued"] == 0 && h["decoding"] == 1).await;
    drop(second.await.unwrap().unwrap());
    wait_for(&s, "the batch emptied", |h| h["decoding"] == 0).await;
    let (status, _) = post_json(&url, &ask("x", json!({ "max_tokens": 2 }))).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_guards_the_api_but_not_the_page_or_health() {
    let mut st = settings();
    st.api_key = Some("s3cret".into());
    let s = start(st, 2, 4).await;
    let url = format!("{}/v1/chat/completions", s.url);
    let (status, v) = post_json(&url, &ask("hi", json!({ "max_tokens": 2 }))).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    let wrong = client().get(format!("{}/v1/models", s.url)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let res = client()
        .post(&url)
        .header("content-type", "application/json")
        .header("authorization", "bearer s3cret")
        .body(ask("hi", json!({ "max_tokens": 2 })).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(health(&s).await["status"], "ok");
    let page = client().get(&s.url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/v1/chat/completions") && page.contains("<form"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_openai_client_library_talks_to_it() {
    use async_openai::Client;
    use async_openai::config::OpenAIConfig;
    use async_openai::types::chat::{ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs};
    let mut st = settings();
    st.api_key = Some("k".into());
    let s = start(st, 2, 4).await;
    let client = Client::with_config(OpenAIConfig::new().with_api_base(format!("{}/v1", s.url)).with_api_key("k"));
    let models = client.models().list().await.unwrap();
    assert_eq!(models.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["kb-lora"]);
    let req = CreateChatCompletionRequestArgs::default()
        .model("kb-lora")
        .max_tokens(12u32)
        .messages([ChatCompletionRequestUserMessageArgs::default().content(QUESTIONS[0]).build().unwrap().into()])
        .build()
        .unwrap();
    let res = client.chat().create(req).await.unwrap();
    let content = res.choices[0].message.content.clone().unwrap();
    let expected = post().apply(QUESTIONS[0], &offline(QUESTIONS[0], 12)).answer;
    assert_eq!(content, expected);
    let bad = CreateChatCompletionRequestArgs::default()
        .model("other")
        .messages([ChatCompletionRequestUserMessageArgs::default().content("hi").build().unwrap().into()])
        .build()
        .unwrap();
    let e = client.chat().create(bad).await.unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_front_of_a_backend_it_answers_as_the_backend_would_itself() {
    let mut st = settings();
    st.api_key = Some("back".into());
    let backend = start(st, 4, 16).await;
    let engine = Engine::Backend(Backend::new(
        &format!("{}/v1", backend.url),
        "kb-lora",
        Some("back".into()),
        Duration::from_secs(30),
    ));
    let front = start_app(App::without_tokenizer(settings(), engine, post())).await;
    for q in QUESTIONS {
        for stream in [false, true] {
            let body = ask(q, json!({ "max_tokens": 16, "stream": stream }));
            let res = client()
                .post(format!("{}/v1/chat/completions", front.url))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            let text = res.text().await.unwrap();
            let content = if stream {
                let chunks: Vec<Value> = sse_data(&text)
                    .iter()
                    .filter(|d| *d != "[DONE]")
                    .map(|d| serde_json::from_str(d).unwrap())
                    .collect();
                chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<String>()
            } else {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["kb_source"]["raw_answer"], offline(q, 16), "{q}");
                v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
            };
            assert_eq!(content, post().apply(q, &offline(q, 16)).answer, "{q} stream {stream}");
        }
    }
    // A wrong backend key is a 502 that says which flag to check.
    let engine =
        Engine::Backend(Backend::new(&format!("{}/v1", backend.url), "kb-lora", None, Duration::from_secs(30)));
    let front = start_app(App::without_tokenizer(settings(), engine, post())).await;
    let (status, v) = post_json(&format!("{}/v1/chat/completions", front.url), &ask("hi", json!({}))).await;
    assert_eq!(status, 502, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("--backend-api-key"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_gets_504() {
    // A backend that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let _held: Vec<_> = silent.incoming().collect();
    });
    let mut st = settings();
    st.timeout = Duration::from_secs(1);
    let engine = Engine::Backend(Backend::new(&format!("http://{addr}/v1"), "m", None, Duration::from_secs(30)));
    let front = start_app(App::without_tokenizer(st, engine, post())).await;
    let t = std::time::Instant::now();
    let (status, v) = post_json(&format!("{}/v1/chat/completions", front.url), &ask("hi", json!({}))).await;
    assert_eq!((status, v["error"]["type"].as_str()), (504, Some("timeout")), "{v}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_limit_get_503_before_their_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let mut st = settings();
    st.max_in_flight = 1;
    let s = start(st, 2, 4).await;
    let url = format!("{}/v1/chat/completions", s.url);
    // A client that sends its headers and never the whole body holds the one slot.
    let mut slow = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://")).await.unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut refused = None;
    for _ in 0..200 {
        let (status, v) = post_json(&url, &ask("hi", json!({ "max_tokens": 2 }))).await;
        if status == 503 {
            refused = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refused.expect("never refused")["error"]["code"], "too_many_requests");
    assert_eq!(health(&s).await["status"], "ok", "GET /health is not limited");
    drop(slow);
    let mut answered = false;
    for _ in 0..200 {
        if post_json(&url, &ask("hi", json!({ "max_tokens": 2 }))).await.0 == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answered, "the slot was not freed when the slow client left");
}
