//! Compares `seqmatch::ratio` with CPython's difflib on the committed fixture written by
//! `scripts/gen-difflib-golden.py` (regenerate with `python3 scripts/gen-difflib-golden.py`).

use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    pairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    ratio: f64,
}

fn load() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

#[test]
fn ratio_matches_python_difflib() {
    let golden = load();
    assert!(golden.pairs.len() >= 300, "fixture too small");
    let mut failures = Vec::new();
    for (n, p) in golden.pairs.iter().enumerate() {
        let got = seqmatch::ratio(&p.a, &p.b);
        if (got - p.ratio).abs() > 1e-12 {
            failures.push(format!(
                "pair {n}: python {} rust {got} (len a {}, len b {})",
                p.ratio,
                p.a.chars().count(),
                p.b.chars().count()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixture_exercises_autojunk() {
    // The golden test only proves the autojunk port if some pairs depend on it.
    let golden = load();
    let differs = golden
        .pairs
        .iter()
        .filter(|p| {
            let a: Vec<char> = p.a.chars().collect();
            let b: Vec<char> = p.b.chars().collect();
            seqmatch::SequenceMatcher::with_autojunk(&a, &b, false).ratio() != p.ratio
        })
        .count();
    assert!(differs >= 10, "only {differs} pairs depend on autojunk");
}
