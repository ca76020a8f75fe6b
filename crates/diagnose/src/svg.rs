//! The confusion matrix as an SVG heat map (hand-written: a few rects and texts need no crate).

use std::fmt::Write;

use crate::classify::{ACTUAL_NONE, ACTUAL_REFUSAL, TOPIC_UNANSWERABLE};
use crate::findings::ErrorAnalysis;

const CELL: usize = 44;
const CHAR_W: usize = 8;
const PAD: usize = 16;
const TITLE_H: usize = 40;
const LEGEND_W: usize = 200;
const TITLE: &str = "Eval errors: expected topic (row) → what the answer resembles (column)";
/// Bold 15px sans-serif averages under 9.5px per character.
const TITLE_W: usize = TITLE.len() * 19 / 2 + 2 * PAD;

/// Rows: expected topics (`unanswerable` last); columns: the topic the wrong answer resembles,
/// then `refusal` and `none`. Cells hold error counts; the right-hand column shows errors/total
/// per row so a dark row can be read against its size.
pub fn confusion_svg(a: &ErrorAnalysis) -> String {
    let rows: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let mut cols: Vec<&str> = rows.iter().copied().filter(|t| *t != TOPIC_UNANSWERABLE).collect();
    cols.extend([ACTUAL_REFUSAL, ACTUAL_NONE]);
    for c in &a.confusion {
        if !cols.contains(&c.actual.as_str()) {
            cols.push(&c.actual);
        }
    }
    let count = |r: &str, c: &str| a.confusion.iter().find(|e| e.expected == r && e.actual == c).map_or(0, |e| e.count);
    let max = a.confusion.iter().map(|e| e.count).max().unwrap_or(0);

    let label_w = |labels: &[&str]| labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) * CHAR_W + PAD;
    let left = label_w(&rows).max(80);
    let top = TITLE_H + label_w(&cols).max(60);
    let grid_w = cols.len() * CELL;
    let grid_h = rows.len() * CELL;
    // Wide enough for the title line too.
    let width = (left + grid_w + 110 + PAD).max(TITLE_W);
    let height = top + grid_h + 80;

    let mut s = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{PAD}" y="22" font-size="15" font-weight="bold">{TITLE}</text>"#);
    let _ = writeln!(
        s,
        r##"<text x="{PAD}" y="{}" fill="#555">{} errors of {} (accuracy {:.1}%, raw similarity &lt; {:.2})</text>"##,
        TITLE_H - 4,
        a.errors,
        a.total,
        a.accuracy * 100.0,
        a.threshold
    );
    for (j, c) in cols.iter().enumerate() {
        let x = left + j * CELL + CELL / 2;
        let _ =
            writeln!(s, r#"<text x="{x}" y="{}" transform="rotate(-60 {x} {})">{}</text>"#, top - 6, top - 6, esc(c));
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" font-weight="bold">errors/total</text>"#, left + grid_w + 8, top - 6);
    for (i, r) in rows.iter().enumerate() {
        let y = top + i * CELL;
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 8, y + CELL / 2 + 5, esc(r));
        for (j, c) in cols.iter().enumerate() {
            let n = count(r, c);
            let t = if max == 0 { 0.0 } else { n as f64 / max as f64 };
            let x = left + j * CELL;
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{}" stroke="#ddd"><title>{} → {}: {n}</title></rect>"##,
                colour(if n == 0 { 0.0 } else { t }),
                esc(r),
                esc(c)
            );
            if n > 0 {
                let fg = if t > 0.55 { "white" } else { "black" };
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}" text-anchor="middle" fill="{fg}">{n}</text>"#,
                    x + CELL / 2,
                    y + CELL / 2 + 5
                );
            }
        }
        let (errs, total) = a.topic_errors.get(*r).map_or((0, 0), |t| (t.errors, t.evaluated));
        let _ = writeln!(s, r#"<text x="{}" y="{}">{errs}/{total}</text>"#, left + grid_w + 8, y + CELL / 2 + 5);
    }
    // Colour scale.
    let ly = top + grid_h + 30;
    let _ = writeln!(
        s,
        r#"<defs><linearGradient id="scale"><stop offset="0" stop-color="{}"/><stop offset="1" stop-color="{}"/></linearGradient></defs>"#,
        colour(0.0),
        colour(1.0)
    );
    let _ =
        writeln!(s, r##"<rect x="{left}" y="{ly}" width="{LEGEND_W}" height="14" fill="url(#scale)" stroke="#999"/>"##);
    let _ = writeln!(s, r#"<text x="{left}" y="{}">0</text>"#, ly + 30);
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{max} errors</text>"#, left + LEGEND_W, ly + 30);
    s.push_str("</svg>\n");
    s
}

/// White to dark red (ColorBrewer "Reds" ends) for `t` in [0, 1].
fn colour(t: f64) -> String {
    let (from, to) = ([255.0, 245.0, 240.0], [165.0, 15.0, 21.0]);
    let c: Vec<u8> = (0..3).map(|k| (from[k] + (to[k] - from[k]) * t.clamp(0.0, 1.0)).round() as u8).collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_scale_ends_and_escaping() {
        assert_eq!(colour(0.0), "#fff5f0");
        assert_eq!(colour(1.0), "#a50f15");
        assert_eq!(colour(7.0), "#a50f15");
        assert_eq!(esc("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
