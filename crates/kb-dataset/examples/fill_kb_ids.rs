//! Fills in (or checks) `doc_id` and `text_hash` of a KB file, using the library's own hashing.
//!
//! A KB may be written with `text` only; this rewrites it with ids, atomically:
//!
//! ```text
//! cargo run -p kb-dataset --example fill_kb_ids -- data/kb.jsonl
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fill_kb_ids <kb.jsonl>");
        return ExitCode::FAILURE;
    };
    let result = kb_dataset::Kb::load(&path).and_then(|kb| {
        kb.write_jsonl(&path)?;
        Ok(kb)
    });
    match result {
        Ok(kb) => {
            for e in kb.entries() {
                println!("{}  {}", e.doc_id, e.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
