//! The binary as a user runs it, on the tiny fixture model and adapter: it starts, answers,
//! refuses bad flags with messages naming them, and on Ctrl-C finishes the answer in flight
//! before it exits.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qwen_lora::fixture::process::{signal, wait};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny(dir: &Path) -> (PathBuf, PathBuf) {
    let (model, adapter) = (dir.join("tiny"), dir.join("adapter"));
    qwen_lora::fixture::write_tiny_model(&model, 7).unwrap();
    qwen_lora::fixture::write_tiny_adapter(&model, &adapter, 3).unwrap();
    (model, adapter)
}

fn bin() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("serve-qwen-lora"));
    c.current_dir(repo());
    c
}

/// Starts the server on a free port; returns it and its base URL (read from its log).
fn start(model: &Path, adapter: &Path) -> (Child, String) {
    let mut child = bin()
        .args(["--model", model.to_str().unwrap(), "--adapter", adapter.to_str().unwrap()])
        .args(["--port", "0", "--max-new-tokens", "8", "--batch-size", "2"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server exited before listening").unwrap();
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn chat(url: &str, body: &Value) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap()
}

#[test]
fn serves_the_adapter_and_drains_the_answer_in_flight_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = tiny(dir.path());
    let (mut child, url) = start(&model, &adapter);
    let res = chat(&url, &json!({ "messages": [{ "role": "user", "content": "VPN 怎麼連線?" }] }));
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 8, "--max-new-tokens is the default: {v}");
    assert!(v["kb_source"]["label"].is_string(), "{v}");

    let mut stream = chat(
        &url,
        &json!({ "messages": [{ "role": "user", "content": "年假" }], "stream": true, "postprocess": false, "max_tokens": 1000 }),
    );
    let mut first = [0u8; 16];
    stream.read_exact(&mut first).unwrap();
    signal(&child, "-INT");
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("\"finish_reason\":\"") && rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    let status = wait(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (model, adapter) = tiny(dir.path());
    let m = model.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--model", m, "--no-adapter", "--api-key", " "], "--api-key"),
        (vec!["--model", m, "--no-adapter", "--timeout", "0"], "--timeout"),
        (vec!["--backend", "ftp://x"], "--backend"),
        (vec!["--model", m, "--adapter", "nowhere"], "--adapter"),
        (vec!["--model", m, "--no-adapter", "--kb", "nowhere.jsonl"], "--kb"),
        (vec!["--model", m, "--no-adapter", "--host", "256.1.1.1"], "256.1.1.1"),
    ];
    for (args, flag) in cases {
        let out = bin().args(&args).args(["--port", "0"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let _ = adapter;
}
