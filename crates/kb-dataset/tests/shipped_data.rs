//! The shipped data sets survive a read into typed samples and a write back, byte for byte.

use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data").join(name)
}

#[test]
fn shipped_sets_round_trip_byte_identical() {
    for name in ["train_qwen_v1.jsonl", "eval_qwen_v1.jsonl"] {
        let path = data(name);
        let samples = kb_dataset::read_jsonl(&path).unwrap();
        assert!(samples.len() > 10, "{name}");
        let bytes = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kb_dataset::to_jsonl(&samples), bytes, "{name} changed on a read/write round trip");
    }
}
