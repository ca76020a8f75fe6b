//! The human-readable report, laid out like the Python reference's console output.

use std::collections::HashMap;
use std::io::{self, Write};

use postprocess::Source;

use crate::detail::{Detail, PASS_THRESHOLD};
use crate::report::Report;
use crate::summary::Buckets;

/// What to include in the printed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintOptions {
    /// How many of the first questions to show in full.
    pub examples: usize,
    /// How many lowest-scoring questions to show.
    pub worst: usize,
    /// Optional readable names (e.g. topics) for doc_ids in the per-doc table.
    pub doc_labels: HashMap<String, String>,
}

impl Default for PrintOptions {
    fn default() -> Self {
        PrintOptions { examples: 5, worst: 5, doc_labels: HashMap::new() }
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn rate(out: &mut dyn Write, label: &str, value: Option<f64>, total: usize) -> io::Result<()> {
    match value {
        // The count is recovered from the rate, which is count / total exactly.
        Some(v) => writeln!(out, "{label}: {}/{total} = {}", (v * total as f64).round(), pct(v)),
        None => writeln!(out, "{label}: n/a (no such questions)"),
    }
}

fn example(out: &mut dyn Write, n: usize, d: &Detail) -> io::Result<()> {
    writeln!(out, "[{n}] Question: {}", d.question)?;
    writeln!(out, "    Expected:   {}", d.expected)?;
    writeln!(out, "    Model:      {}", d.model)?;
    if d.raw != d.model {
        writeln!(out, "    Raw:        {}", d.raw)?;
    }
    writeln!(out, "    Similarity: {} (raw {})", pct(d.similarity), pct(d.similarity_raw))?;
    writeln!(out, "    Source:     {} ({})", d.source, d.source_detail)
}

/// Writes the report: the first examples, averages raw and after post-processing, source
/// distribution, similarity bands, per-source averages, refusal figures, per-doc accuracy, the
/// worst cases and the goal check.
pub fn print_report(out: &mut dyn Write, report: &Report, options: &PrintOptions) -> io::Result<()> {
    let s = &report.summary;
    let shown = options.examples.min(report.details.len());
    if shown > 0 {
        writeln!(out, "=== Examples (first {shown} of {}) ===", s.total_tests)?;
        for (i, d) in report.details.iter().take(shown).enumerate() {
            example(out, i + 1, d)?;
        }
        writeln!(out)?;
    }

    writeln!(out, "=== Summary ({} questions) ===", s.total_tests)?;
    writeln!(out, "Average similarity (post-processed): {}", pct(s.avg_similarity))?;
    writeln!(out, "Average similarity (raw model):      {}", pct(s.avg_similarity_raw))?;
    if let (Some(f), Some(r)) = (s.avg_similarity_answerable, s.avg_similarity_answerable_raw) {
        writeln!(out, "Answerable questions only:           {} (raw {})", pct(f), pct(r))?;
    }
    writeln!(
        out,
        "Max / min similarity: {} / {} (raw {} / {})",
        pct(s.max_similarity),
        pct(s.min_similarity),
        pct(s.max_similarity_raw),
        pct(s.min_similarity_raw)
    )?;
    if s.generation_seconds > 0.0 {
        writeln!(out, "Generation time: {:.1} s", s.generation_seconds)?;
    }

    writeln!(out, "\nSource distribution:")?;
    for source in Source::ALL {
        let count = s.source_distribution.get(&source).copied().unwrap_or(0);
        let share = if s.total_tests > 0 { count as f64 / s.total_tests as f64 } else { 0.0 };
        match s.by_source.get(&source) {
            Some(st) => writeln!(
                out,
                "  {source:<16} {count:>4} ({:>7})  avg {} (raw {})",
                pct(share),
                pct(st.avg_similarity),
                pct(st.avg_similarity_raw)
            )?,
            None => writeln!(out, "  {source:<16} {count:>4} ({:>7})", pct(share))?,
        }
    }

    writeln!(out, "\nSimilarity bands      final    raw")?;
    let band = |b: &Buckets| [b.excellent, b.good, b.fair, b.poor];
    let (f, r) = (band(&s.buckets), band(&s.buckets_raw));
    for (i, label) in [">= 85", "70-84", "50-69", "< 50"].iter().enumerate() {
        writeln!(out, "  {label:<18} {:>6} {:>6}", f[i], r[i])?;
    }

    writeln!(out)?;
    rate(out, "Refusal accuracy (unanswerable questions refused)", s.refusal_accuracy, s.unanswerable_total)?;
    rate(out, "Refusals on answerable questions", s.answerable_refusal_rate, s.answerable_total)?;
    rate(out, "Refusals on answerable questions (raw model)", s.answerable_refusal_rate_raw, s.answerable_total)?;
    if report.postprocess.is_some() {
        writeln!(
            out,
            "Raw answers quoting no KB entry (invented or no answer): {}, kept as generated: {}",
            s.raw_unmatched, s.unmatched_kept
        )?;
    }

    if !s.per_doc.is_empty() {
        writeln!(out, "\nPer-doc accuracy (similarity >= {}):", pct(PASS_THRESHOLD))?;
        for (doc, st) in &s.per_doc {
            let label = match options.doc_labels.get(doc) {
                Some(l) => format!("{doc} ({l})"),
                None => doc.clone(),
            };
            writeln!(
                out,
                "  {label:<36} {}/{} {:>8}  avg {} (raw {})",
                st.correct,
                st.total,
                pct(st.accuracy),
                pct(st.avg_similarity),
                pct(st.avg_similarity_raw)
            )?;
        }
    }

    if options.worst > 0 && !report.details.is_empty() {
        let mut order: Vec<usize> = (0..report.details.len()).collect();
        // Stable sort: equal scores keep eval-set order.
        order.sort_by(|&a, &b| report.details[a].similarity.total_cmp(&report.details[b].similarity));
        writeln!(out, "\nWorst cases:")?;
        for &i in order.iter().take(options.worst) {
            example(out, i + 1, &report.details[i])?;
        }
    }

    writeln!(out)?;
    if s.model_broken() {
        return writeln!(
            out,
            "Goal: FAILED: {} of {} raw answers are empty or one repeated character; the model is broken \
             (post-processing hid it: {} after it)",
            s.degenerate_raw,
            s.total_tests,
            pct(s.avg_similarity)
        );
    }
    let verdict = if s.goal_met { "PASSED" } else { "NOT MET" };
    writeln!(out, "Goal: average similarity {} >= {}: {verdict}", pct(s.avg_similarity), pct(s.pass_threshold))
}

/// A Markdown table comparing reports side by side (one row per labelled report): averages raw
/// and final, the ≥ 85 band, refusal accuracy, sources and generation time.
pub fn compare_table(out: &mut dyn Write, reports: &[(String, Report)]) -> io::Result<()> {
    writeln!(
        out,
        "| run | questions | avg raw | avg final | answerable raw / final | >= 85 raw / final | refusal acc. \
         | answerable refused raw / final | rule / retrieval / kb / model | eval time |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for (label, r) in reports {
        let s = &r.summary;
        let count = |src: Source| s.source_distribution.get(&src).copied().unwrap_or(0);
        let refusal = s.refusal_accuracy.map_or("n/a".to_string(), pct);
        let or_na = |v: Option<f64>| v.map_or("n/a".to_string(), pct);
        let time = if s.generation_seconds > 0.0 { format!("{:.1} s", s.generation_seconds) } else { "n/a".into() };
        let label = label.replace('|', "/");
        writeln!(
            out,
            "| {label} | {} | {} | {} | {} / {} | {} / {} | {refusal} | {} / {} | {} / {} / {} / {} | {time} |",
            s.total_tests,
            pct(s.avg_similarity_raw),
            pct(s.avg_similarity),
            or_na(s.avg_similarity_answerable_raw),
            or_na(s.avg_similarity_answerable),
            s.buckets_raw.excellent,
            s.buckets.excellent,
            or_na(s.answerable_refusal_rate_raw),
            or_na(s.answerable_refusal_rate),
            count(Source::RuleOverride),
            count(Source::RetrievalOverride),
            count(Source::KbMatch),
            count(Source::ModelGenerated),
        )?;
    }
    Ok(())
}
