//! Fixtures shared by the integration tests: a fake adapter dir and an archive rewriter.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

pub const CONFIG: &str = r#"{"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "revision": "7ae557604adf67be50417f59c2c2f167def9a775", "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#;

/// One of lora-eval's two reports of the same answers (`report.json` in fractions,
/// `report_percent.json` in percents, as older versions wrote them).
pub fn eval_report(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lora-eval/tests/fixtures").join(name)
}

/// A fake adapter: config, some weight bytes, a README and a checkpoint subdir to be skipped.
pub fn fake_adapter(root: &Path) -> PathBuf {
    let dir = root.join("final_model");
    std::fs::create_dir_all(dir.join("checkpoint-10")).unwrap();
    std::fs::write(dir.join("adapter_config.json"), CONFIG).unwrap();
    let weights: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("adapter_model.safetensors"), weights).unwrap();
    std::fs::write(dir.join("README.md"), "adapter card\n").unwrap();
    std::fs::write(dir.join("checkpoint-10/optimizer.pt"), "x").unwrap();
    dir
}

/// Reads every (name, bytes) entry of a tar.gz.
pub fn read_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(path).unwrap()));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

/// Writes entries back as a tar.gz (to simulate tampering).
pub fn write_entries(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast()));
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}
