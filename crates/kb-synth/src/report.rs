//! The summary as a person reads it at the end of a run.

use std::fmt::Write;

use crate::filter::Counts;
use crate::synth::Summary;

/// A few lines: the run, then what each filter dropped per kind of question, then the pools.
pub fn render_summary(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "language {}, generator {}, seed {}: {} requests ({} from the cache) in {:.1} s",
        s.language.code(),
        s.generator,
        s.config.seed,
        s.requests,
        s.cached,
        s.seconds
    );
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>7} {:>8} {:>5} {:>8} {:>9} {:>8} {:>7} {:>5}  (converted script)",
        "", "generated", "length", "language", "copy", "near-dup", "misplaced", "answered", "surplus", "kept",
    );
    for (name, c) in [("answerable", &s.answerable), ("near-miss", &s.near_miss), ("off-topic", &s.off_topic)] {
        let _ = writeln!(out, "{}", row(name, c));
    }
    let per = |f: fn(&crate::synth::EntrySummary) -> usize| s.entries.iter().map(f).collect::<Vec<_>>();
    let (train, eval, augment, misses) = (per(|e| e.train), per(|e| e.eval), per(|e| e.augment), per(|e| e.near_miss));
    let range = |v: &[usize]| format!("{}-{}", v.iter().min().unwrap_or(&0), v.iter().max().unwrap_or(&0));
    let _ = writeln!(
        out,
        "per entry: train {}, eval {}, augment {}, near-miss {}; contacts found for {} of {} entries",
        range(&train),
        range(&eval),
        range(&augment),
        range(&misses),
        s.entries.iter().filter(|e| e.contact.is_some()).count(),
        s.entries.len()
    );
    out
}

fn row(name: &str, c: &Counts) -> String {
    format!(
        "{:<11} {:>9} {:>7} {:>8} {:>5} {:>8} {:>9} {:>8} {:>7} {:>5}  ({})",
        name,
        c.generated,
        c.too_short_or_long,
        c.wrong_language,
        c.copies_entry,
        c.near_duplicate,
        c.misplaced,
        c.answered,
        c.surplus,
        c.kept,
        c.converted_script
    )
}
