//! Library round trip and tamper detection.

mod common;

use common::*;
use package_lora::{Error, MANIFEST_NAME, PackageOptions, package, sha256_file, verify};

fn opts(root: &std::path::Path) -> PackageOptions {
    PackageOptions {
        adapter: fake_adapter(root),
        report: None,
        train: None,
        eval: None,
        base_model: None,
        base_gguf: None,
        out: root.join("out/pkg.tar.gz"),
        created_unix: 1_700_000_000,
    }
}

fn problems(path: &std::path::Path) -> Vec<String> {
    match verify(path) {
        Err(Error::Verify { problems, .. }) => problems,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn round_trip_records_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    std::fs::write(dir.path().join("train.jsonl"), "{\"text\": \"t\"}\n").unwrap();
    std::fs::write(dir.path().join("eval.jsonl"), "{\"text\": \"e\"}\n").unwrap();
    std::fs::write(dir.path().join("base.gguf"), b"GGUF....").unwrap();
    std::fs::copy(eval_report("report.json"), dir.path().join("report.json")).unwrap();
    o.train = Some(dir.path().join("train.jsonl"));
    o.eval = Some(dir.path().join("eval.jsonl"));
    o.base_gguf = Some(dir.path().join("base.gguf"));
    o.report = Some(dir.path().join("report.json"));

    let written = package(&o).unwrap();
    let verified = verify(&o.out).unwrap();
    assert_eq!(written, verified);

    let names: Vec<&str> = verified.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["README.md", "adapter_config.json", "adapter_model.safetensors"]);
    let weights = sha256_file(&o.adapter.join("adapter_model.safetensors")).unwrap();
    assert_eq!(verified.files["adapter_model.safetensors"], weights);
    assert_eq!(verified.base_model.id.as_deref(), Some("Qwen/Qwen2.5-0.5B-Instruct"));
    assert_eq!(verified.base_model.revision.as_deref(), Some("7ae557604adf67be50417f59c2c2f167def9a775"));
    let gguf = verified.base_model.gguf.unwrap();
    assert_eq!(gguf.sha256, sha256_file(&dir.path().join("base.gguf")).unwrap().sha256);
    assert_eq!(verified.lora_config["r"], 8);
    let summary = verified.eval_summary.unwrap();
    assert_eq!(summary["total_tests"], 10);
    assert_eq!(summary["pass_threshold"], 0.85);
    assert_eq!(verified.data.train.unwrap().size, 14);
    assert!(verified.data.eval.is_some());
    assert_eq!(verified.created_at, "2023-11-14T22:13:20Z");
    assert_eq!(verified.tool.version, env!("CARGO_PKG_VERSION"));

    // The archive holds exactly the manifest and the three files, byte for byte.
    let entries = read_entries(&o.out);
    assert_eq!(entries[0].0, MANIFEST_NAME);
    assert_eq!(entries.len(), 4);
    let config = entries.iter().find(|(n, _)| n == "adapter_config.json").unwrap();
    assert_eq!(config.1, CONFIG.as_bytes());
}

#[test]
fn base_model_flag_overrides_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.base_model = Some("models/qwen-local".into());
    assert_eq!(package(&o).unwrap().base_model.id.as_deref(), Some("models/qwen-local"));
}

#[test]
fn tampered_file_fails_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    package(&o).unwrap();
    let mut entries = read_entries(&o.out);
    let weights = entries.iter_mut().find(|(n, _)| n == "adapter_model.safetensors").unwrap();
    weights.1[100] ^= 1; // one flipped bit, same size
    write_entries(&o.out, &entries);
    let p = problems(&o.out);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("adapter_model.safetensors: content changed"), "{p:?}");
}

#[test]
fn missing_and_extra_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path());
    package(&o).unwrap();
    let mut entries = read_entries(&o.out);
    entries.retain(|(n, _)| n != "README.md");
    entries.push(("payload.bin".into(), b"evil".to_vec()));
    write_entries(&o.out, &entries);
    let p = problems(&o.out);
    assert!(p.iter().any(|l| l.starts_with("README.md: missing")), "{p:?}");
    assert!(p.iter().any(|l| l.starts_with("payload.bin: extra")), "{p:?}");

    entries.retain(|(n, _)| n != MANIFEST_NAME);
    write_entries(&o.out, &entries);
    assert!(problems(&o.out)[0].contains("manifest.json: missing"));
}

#[test]
fn corrupt_archive_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.tar.gz");
    std::fs::write(&p, b"not gzip at all").unwrap();
    let e = verify(&p).unwrap_err().to_string();
    assert!(e.contains("x.tar.gz"), "{e}");
}

#[test]
fn the_manifest_holds_the_same_fractions_for_an_old_percent_report_and_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let summary = |name: &str| {
        let mut o = opts(dir.path());
        o.report = Some(eval_report(name));
        package(&o).unwrap().eval_summary.unwrap()
    };
    let (old, new) = (summary("report_percent.json"), summary("report.json"));
    assert_eq!(old["pass_threshold"], 0.85);
    assert_eq!(new["pass_threshold"], 0.85);
    let keys =
        ["avg_similarity", "avg_similarity_raw", "min_similarity", "refusal_accuracy", "answerable_refusal_rate"];
    for key in keys {
        let (a, b) = (old[key].as_f64().unwrap(), new[key].as_f64().unwrap());
        assert!((a - b).abs() < 1e-12 && (0.0..=1.0).contains(&a), "{key}: {a} vs {b}");
    }
    for (doc, stats) in new["per_doc"].as_object().unwrap() {
        let (a, b) = (old["per_doc"][doc]["accuracy"].as_f64().unwrap(), stats["accuracy"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-12 && (0.0..=1.0).contains(&a), "{doc}: {a} vs {b}");
    }
    assert_eq!(old["buckets"], new["buckets"]);
}

#[test]
fn bad_inputs_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    std::fs::write(dir.path().join("report.json"), r#"{"details": []}"#).unwrap();
    o.report = Some(dir.path().join("report.json"));
    let e = format!("{:#}", anyhow::Error::new(package(&o).unwrap_err()));
    assert!(e.contains("report.json: not a valid report") && e.contains("summary"), "{e}");
    assert!(!o.out.exists());

    let o = opts(dir.path());
    std::fs::remove_file(o.adapter.join("adapter_model.safetensors")).unwrap();
    let e = package(&o).unwrap_err().to_string();
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    assert!(!o.out.exists());
}
