//! Fixtures shared by the integration tests: the shipped data and a tiny KB + templates.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kb_dataset::{Kb, KbEntry, Templates};

/// The repository's `data/` directory.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

pub fn shipped() -> (Kb, Templates) {
    let kb = Kb::load(data_dir().join("kb.jsonl")).expect("shipped KB loads");
    let t = Templates::load(data_dir().join("questions.toml"), &kb).expect("shipped templates load");
    (kb, t)
}

pub const TEXTS: [&str; 2] = ["甲規定。", "乙規定。"];

/// A two-entry KB written to `dir/kb.jsonl`.
pub fn tiny_kb(dir: &Path) -> Kb {
    let kb = Kb::from_entries(dir.join("kb.jsonl"), TEXTS.iter().map(|t| KbEntry::from_text(t)).collect());
    kb.write_jsonl(dir.join("kb.jsonl")).unwrap();
    Kb::load(dir.join("kb.jsonl")).unwrap()
}

/// Templates for [`tiny_kb`]: `per_style` training questions in each of two styles per doc,
/// two eval questions, one augment question, and `unanswerable` refusals.
pub fn tiny_templates_toml(per_style: usize, unanswerable: usize) -> String {
    let mut s = String::new();
    for (i, text) in TEXTS.iter().enumerate() {
        let id = kb_dataset::doc_id_for(text);
        let qs = |style: &str| (0..per_style).map(|k| format!("\"d{i} {style} {k}\"")).collect::<Vec<_>>().join(", ");
        s += &format!(
            "[[doc]]\ntopic = \"t{i}\"\ndoc_id = \"{id}\"\neval = [\"d{i} eval a\", \"d{i} eval b\"]\n\
             augment = [\"d{i} aug\"]\n[doc.train]\nshort = [{}]\nformal = [{}]\n\n",
            qs("short"),
            qs("formal")
        );
    }
    s += "[unanswerable]\ntrain = [\n";
    for k in 0..unanswerable {
        s += &format!("  {{ question = \"u{k}\", refusal = \"抱歉，請洽人資部(HR)。{k}\" }},\n");
    }
    s += "]\neval = [{ question = \"ue\", refusal = \"抱歉，請洽資訊部(IT)。\" }]\n";
    s
}

pub fn tiny(dir: &Path, per_style: usize, unanswerable: usize) -> (Kb, Templates) {
    let kb = tiny_kb(dir);
    let p = dir.join("questions.toml");
    std::fs::write(&p, tiny_templates_toml(per_style, unanswerable)).unwrap();
    let t = Templates::load(&p, &kb).unwrap();
    (kb, t)
}
