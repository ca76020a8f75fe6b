//! The human-readable summary `diagnose-errors` prints to stdout.

use std::io::{self, Write};

use crate::findings::ErrorAnalysis;

/// How many wrong answers are shown per topic.
const SHOWN_PER_TOPIC: usize = 5;
/// Long answers are cut to this many characters on screen (the JSON keeps them whole).
const SHOWN_CHARS: usize = 80;

/// Writes the summary, errors per topic (first 5 each), the confusion table, the two failure
/// kinds and the suggestions.
pub fn print_report(a: &ErrorAnalysis, w: &mut impl Write) -> io::Result<()> {
    writeln!(
        w,
        "Error analysis: {} eval questions, {} correct, {} errors, accuracy {:.1}% (raw similarity >= {:.2})",
        a.total,
        a.correct,
        a.errors,
        a.accuracy * 100.0,
        a.threshold
    )?;

    writeln!(w, "\nErrors per topic:")?;
    let mut any = false;
    for topic in &a.topics {
        let Some(t) = a.topic_errors.get(topic).filter(|t| t.errors > 0) else {
            continue;
        };
        any = true;
        writeln!(w, "  {topic}: {}/{} wrong (accuracy {:.1}%)", t.errors, t.evaluated, t.accuracy * 100.0)?;
        let errors = a.detailed_errors.iter().filter(|e| &e.expected_topic == topic);
        for e in errors.take(SHOWN_PER_TOPIC) {
            writeln!(w, "    - Q: {}", cut(&e.question))?;
            writeln!(w, "      expected: {}", cut(&e.expected))?;
            writeln!(w, "      got ({:.2}, closest: {}): {}", e.similarity, e.actual_topic, cut(&e.raw))?;
        }
        if t.errors > SHOWN_PER_TOPIC {
            writeln!(w, "    … and {} more (see the JSON)", t.errors - SHOWN_PER_TOPIC)?;
        }
    }
    if !any {
        writeln!(w, "  none")?;
    }

    writeln!(w, "\nConfusion (expected topic → what the answer resembles):")?;
    if a.confusion.is_empty() {
        writeln!(w, "  none")?;
    } else {
        let width = a.confusion.iter().map(|c| c.expected.chars().count()).max().unwrap_or(0);
        let awidth = a.confusion.iter().map(|c| c.actual.chars().count()).max().unwrap_or(0);
        for c in &a.confusion {
            writeln!(
                w,
                "  {:>4}×  {:<width$} → {:<awidth$}  e.g. {}",
                c.count,
                c.expected,
                c.actual,
                cut(&c.example_question)
            )?;
        }
    }

    writeln!(w, "\nFailure kinds:")?;
    let kinds = [
        ("unanswerable but answered", &a.failure_kinds.answered_unanswerable),
        ("answerable but refused", &a.failure_kinds.refused_answerable),
    ];
    for (name, questions) in kinds {
        writeln!(w, "  {name}: {}", questions.len())?;
        for q in questions.iter().take(SHOWN_PER_TOPIC) {
            writeln!(w, "    - {}", cut(q))?;
        }
    }

    writeln!(w, "\nSuggestions:")?;
    for (i, s) in a.suggestions.iter().enumerate() {
        writeln!(w, "  {}. {s}", i + 1)?;
    }
    Ok(())
}

/// First [`SHOWN_CHARS`] characters on one line.
fn cut(s: &str) -> String {
    let one_line = s.replace('\n', "⏎");
    if one_line.chars().count() <= SHOWN_CHARS {
        one_line
    } else {
        let mut t: String = one_line.chars().take(SHOWN_CHARS).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_characters_not_bytes() {
        let long = "依".repeat(100);
        let c = cut(&long);
        assert_eq!(c.chars().count(), SHOWN_CHARS + 1);
        assert!(c.ends_with('…'));
        assert_eq!(cut("a\nb"), "a⏎b");
    }
}
