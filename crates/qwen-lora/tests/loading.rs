//! Loading a base model from every kind of source, and every kind of bad input.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use qwen_lora::fixture::{
    tiny_config, tiny_tensors, tiny_tokenizer, write_tiny_gguf, write_tiny_model, write_tiny_model_sharded,
};
use qwen_lora::load::{BaseModel, HubOptions, ModelSource, SourceInfo, expected_tensors, load_base, load_base_with};

const TEXT: &str = "<|im_start|>user\n請問年假有幾天? Hello world<|im_end|>\n<|im_start|>assistant\n依據公司規範:";

fn load(src: &ModelSource) -> qwen_lora::Result<BaseModel> {
    load_base(src, &Device::Cpu, DType::F32)
}

fn dir_src(p: &Path) -> ModelSource {
    ModelSource::Dir(p.to_path_buf())
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

/// Every expected tensor served by `base` equals the fixture's, converted to `dtype`.
fn assert_same_weights(base: &BaseModel, seed: u64, dtype: DType) {
    let want = tiny_tensors(seed).unwrap();
    assert_eq!(want.len(), expected_tensors(&base.config).len());
    for (name, t) in want {
        let got = base.vb.get(t.dims(), &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.dtype(), dtype, "{name}");
        assert_eq!(flat(&got), flat(&t.to_dtype(dtype).unwrap()), "{name}");
    }
}

fn err_text(r: qwen_lora::Result<BaseModel>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            // Shown with --nocapture, to read the messages users get.
            eprintln!("error: {e}");
            e.to_string()
        }
    }
}

#[test]
fn local_dir_single_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 7).unwrap();
    let base = load(&dir_src(tmp.path())).unwrap();
    assert_eq!(base.config, tiny_config());
    assert_same_weights(&base, 7, DType::F32);
    assert!(!base.vb.contains_tensor("lm_head.bias"));
    assert_eq!(base.source, SourceInfo::Dir { dir: tmp.path().into() });
    let v = tiny_config().vocab_size as u32;
    assert_eq!(base.eos_token_ids(), vec![v - 1, v - 3]);
    let ids = base.tokenizer.encode(TEXT, false).unwrap().get_ids().to_vec();
    assert_eq!(base.tokenizer.decode(&ids, false).unwrap(), TEXT);
}

#[test]
fn local_dir_serves_the_requested_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 7).unwrap();
    let base = load_base(&dir_src(tmp.path()), &Device::Cpu, DType::BF16).unwrap();
    assert_same_weights(&base, 7, DType::BF16);
}

#[test]
fn bf16_on_disk_loads_as_f32() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 3).unwrap();
    let bf16: std::collections::HashMap<String, Tensor> =
        tiny_tensors(3).unwrap().into_iter().map(|(n, t)| (n, t.to_dtype(DType::BF16).unwrap())).collect();
    candle_core::safetensors::save(&bf16, tmp.path().join("model.safetensors")).unwrap();
    let base = load(&dir_src(tmp.path())).unwrap();
    let name = "model.layers.1.mlp.up_proj.weight";
    let got = base.vb.get((128, 64), name).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    assert_eq!(flat(&got), flat(&bf16[name]));
}

#[test]
fn sharded_dir_matches_single_file() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tiny_model(a.path(), 11).unwrap();
    write_tiny_model_sharded(b.path(), 11).unwrap();
    assert!(!b.path().join("model.safetensors").exists());
    let single = load(&dir_src(a.path())).unwrap();
    let sharded = load(&dir_src(b.path())).unwrap();
    assert_eq!(single.config, sharded.config);
    for (name, shape) in expected_tensors(&single.config) {
        let x = single.vb.get(shape.clone(), &name).unwrap();
        let y = sharded.vb.get(shape, &name).unwrap();
        assert_eq!(flat(&x), flat(&y), "{name}");
    }
    assert_same_weights(&sharded, 11, DType::F32);
}

#[test]
fn gguf_gives_the_same_model_as_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 5).unwrap();
    let path = tmp.path().join("tiny.gguf");
    write_tiny_gguf(&path, 5).unwrap();
    let st = load(&dir_src(tmp.path())).unwrap();
    let gg = load(&ModelSource::Gguf(path.clone())).unwrap();
    assert_eq!(gg.config, st.config, "config from GGUF metadata equals config.json");
    assert_same_weights(&gg, 5, DType::F32);
    assert_eq!(gg.source, SourceInfo::Gguf { path: path.clone() });
    let a = st.tokenizer.encode(TEXT, false).unwrap();
    let b = gg.tokenizer.encode(TEXT, false).unwrap();
    assert_eq!(a.get_ids(), b.get_ids());
    assert_eq!(gg.tokenizer.decode(b.get_ids(), false).unwrap(), TEXT);
    assert_eq!(gg.eos_token_ids(), st.eos_token_ids());
    assert_eq!(tiny_tokenizer().unwrap().get_vocab_size(true), gg.tokenizer.get_vocab_size(true));
    // bf16 compute dtype from a GGUF too.
    let gb = load_base(&ModelSource::Gguf(path), &Device::Cpu, DType::BF16).unwrap();
    assert_same_weights(&gb, 5, DType::BF16);
}

/// Lays out `model` as the hub cache does: blobs, a snapshot per commit, refs/main.
fn fake_cache(cache: &Path, id: &str, commit: &str, seed: u64) -> PathBuf {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join(commit);
    write_tiny_model(&snap, seed).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), commit).unwrap();
    snap
}

#[test]
fn hub_id_loads_from_the_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = fake_cache(tmp.path(), "org/tiny-qwen", commit, 9);
    let opts = HubOptions::offline(tmp.path());
    let src = ModelSource::resolve("org/tiny-qwen", None, None);
    let base = load_base_with(&src, &Device::Cpu, DType::F32, &opts).unwrap();
    assert_same_weights(&base, 9, DType::F32);
    let want =
        SourceInfo::Hub { id: "org/tiny-qwen".into(), revision: "main".into(), commit: Some(commit.into()), dir: snap };
    assert_eq!(base.source, want);
    // A commit hash as the revision finds the snapshot without a ref.
    let src = ModelSource::Hub { id: "org/tiny-qwen".into(), revision: Some(commit.into()) };
    assert!(load_base_with(&src, &Device::Cpu, DType::F32, &opts).is_ok());
    // Network allowed but unreachable: the cache alone is enough.
    let net = HubOptions { endpoint: Some("http://127.0.0.1:9".into()), offline: false, ..opts.clone() };
    assert!(
        load_base_with(
            &ModelSource::Hub { id: "org/tiny-qwen".into(), revision: None },
            &Device::Cpu,
            DType::F32,
            &net
        )
        .is_ok()
    );
}

#[test]
fn hub_model_missing_everywhere_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let src = ModelSource::Hub { id: "org/absent".into(), revision: None };
    let offline = HubOptions::offline(tmp.path());
    let e = err_text(load_base_with(&src, &Device::Cpu, DType::F32, &offline));
    assert!(e.contains("org/absent") && e.contains("not in the Hugging Face cache"), "{e}");
    assert!(e.contains("--model DIR") && e.contains("--gguf FILE"), "{e}");
    // With the network allowed but unreachable (a closed local port, so no real traffic).
    let net = HubOptions { endpoint: Some("http://127.0.0.1:9".into()), offline: false, ..offline };
    let e = err_text(load_base_with(&src, &Device::Cpu, DType::F32, &net));
    assert!(e.contains("downloading it failed") && e.contains("--model DIR") && e.contains("--gguf FILE"), "{e}");
}

#[test]
fn incomplete_cache_snapshot_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = fake_cache(tmp.path(), "org/half", "abc", 1);
    std::fs::remove_file(snap.join("tokenizer.json")).unwrap();
    let src = ModelSource::Hub { id: "org/half".into(), revision: None };
    let e = err_text(load_base_with(&src, &Device::Cpu, DType::F32, &HubOptions::offline(tmp.path())));
    assert!(e.contains("incomplete") && e.contains("tokenizer.json"), "{e}");
}

#[test]
fn missing_dir_and_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = err_text(load(&dir_src(&tmp.path().join("nope"))));
    assert!(e.contains("nope") && e.contains("not found"), "{e}");

    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let d = tmp.path().join(file.replace('.', "_"));
        write_tiny_model(&d, 1).unwrap();
        std::fs::remove_file(d.join(file)).unwrap();
        let e = err_text(load(&dir_src(&d)));
        assert!(e.contains(file), "{file}: {e}");
    }

    let d = tmp.path().join("shard");
    write_tiny_model_sharded(&d, 1).unwrap();
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    let e = err_text(load(&dir_src(&d)));
    assert!(e.contains("model-00002-of-00002.safetensors") && e.contains("missing"), "{e}");

    let e = err_text(load(&ModelSource::Gguf(tmp.path().join("absent.gguf"))));
    assert!(e.contains("absent.gguf"), "{e}");
}

#[test]
fn config_that_is_not_qwen2_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 1).unwrap();
    let p = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("\"qwen2\"", "\"llama\"");
    std::fs::write(&p, text).unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("config.json") && e.contains("llama") && e.contains("qwen2"), "{e}");
    std::fs::write(&p, "{\"model_type\": \"qwen2\"").unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("config.json") && e.contains("not a valid model config"), "{e}");
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 1).unwrap();
    let p = tmp.path().join("config.json");
    let mut cfg = tiny_config();
    cfg.intermediate_size = 96;
    std::fs::write(&p, serde_json::to_string(&cfg).unwrap()).unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("model.safetensors") && e.contains("mlp.gate_proj.weight"), "{e}");
    assert!(e.contains("[128, 64]") && e.contains("[96, 64]"), "{e}");

    // A missing tensor is named too.
    let mut ts: std::collections::HashMap<String, Tensor> = tiny_tensors(1).unwrap().into_iter().collect();
    ts.remove("model.layers.1.self_attn.v_proj.bias");
    candle_core::safetensors::save(&ts, tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(&p, serde_json::to_string(&tiny_config()).unwrap()).unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("model.layers.1.self_attn.v_proj.bias") && e.contains("missing"), "{e}");
}

#[test]
fn truncated_safetensors_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 1).unwrap();
    let p = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
    std::fs::write(&p, &bytes[..100]).unwrap();
    let e = err_text(load(&dir_src(tmp.path())));
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
}

#[test]
fn corrupt_or_truncated_gguf_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("tiny.gguf");
    write_tiny_gguf(&p, 1).unwrap();
    let bytes = std::fs::read(&p).unwrap();

    std::fs::write(&p, &bytes[..bytes.len() - 5000]).unwrap();
    let e = err_text(load(&ModelSource::Gguf(p.clone())));
    assert!(e.contains("tiny.gguf") && e.contains("truncated"), "{e}");

    std::fs::write(&p, &bytes[..200]).unwrap();
    let e = err_text(load(&ModelSource::Gguf(p.clone())));
    assert!(e.contains("tiny.gguf") && e.contains("not a readable GGUF"), "{e}");

    let mut garbage = bytes.clone();
    garbage[..4].copy_from_slice(b"NOPE");
    std::fs::write(&p, &garbage).unwrap();
    let e = err_text(load(&ModelSource::Gguf(p.clone())));
    assert!(e.contains("tiny.gguf") && e.contains("not a readable GGUF"), "{e}");
}

#[test]
fn gguf_of_another_architecture_is_rejected() {
    use candle_core::quantized::gguf_file::{self, Value};
    use candle_core::quantized::{GgmlDType, QTensor};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("llama.gguf");
    let arch = Value::String("llama".into());
    let q = QTensor::quantize(&Tensor::zeros((4, 32), DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32).unwrap();
    let mut f = std::fs::File::create(&p).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("token_embd.weight", &q)]).unwrap();
    drop(f);
    let e = err_text(load(&ModelSource::Gguf(p)));
    assert!(e.contains("llama.gguf") && e.contains("'llama'") && e.contains("qwen2"), "{e}");
}

/// The real 0.5B checkpoint (`scripts/fetch-model.sh 0.5b` fetches it); run with
/// `QWEN_GGUF=path cargo test -p qwen-lora --release --test loading -- --ignored --nocapture`.
#[test]
#[ignore = "needs the real 0.5B GGUF (QWEN_GGUF or models/qwen2.5-coder-0.5b-instruct.gguf)"]
fn real_gguf_loads_with_hf_shapes() {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/qwen2.5-coder-0.5b-instruct.gguf");
    let path = std::env::var_os("QWEN_GGUF").map(PathBuf::from).unwrap_or(default);
    assert!(path.is_file(), "{} not found", path.display());
    let start = std::time::Instant::now();
    let base = load(&ModelSource::Gguf(path)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let c = &base.config;
    println!("loaded in {secs:.2} s: {c:?}");
    assert_eq!((c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads), (896, 24, 14, 2));
    assert_eq!((c.intermediate_size, c.vocab_size), (4864, 151936));
    for (name, shape) in [
        ("model.embed_tokens.weight", vec![151936, 896]),
        ("model.layers.0.self_attn.q_proj.weight", vec![896, 896]),
        ("model.layers.0.self_attn.k_proj.weight", vec![128, 896]),
        ("model.layers.0.self_attn.k_proj.bias", vec![128]),
        ("model.layers.23.mlp.down_proj.weight", vec![896, 4864]),
        ("model.norm.weight", vec![896]),
    ] {
        let t = base.vb.get(shape.clone(), name).unwrap();
        println!("{name}: {:?}", t.dims());
    }
    println!("lm_head present: {}", base.vb.contains_tensor("lm_head.weight"));
    let ids = base.tokenizer.encode("<|im_start|>user\n請用一句話介紹你自己<|im_end|>\n", false).unwrap();
    println!("ids: {:?}", ids.get_ids());
    assert_eq!(ids.get_ids()[0], 151644);
    assert_eq!(base.eos_token_ids(), vec![151645, 151643]);
}
