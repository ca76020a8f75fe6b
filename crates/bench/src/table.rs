//! The report's building blocks: a side-by-side row, a Markdown table, and how durations, sizes
//! and rates read.

use std::fmt::Write as _;

use crate::reference::Figure;
use crate::targets::Target;

/// A duration as it reads best: seconds, minutes or hours.
pub fn secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.2} h", s / 3600.0)
    }
}

/// Bytes in GiB.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0)
}

pub fn bytes(b: f64) -> String {
    format!("{:.2} GiB", gib(b as u64))
}

/// A side-by-side row: what, ours, other, source, speed-up, target, met.
pub struct Row {
    pub cells: [String; 7],
}

/// `speedup` is ours-vs-other (> 1: we are faster); `target` is the target and whether it is met.
pub fn row(
    what: &str,
    ours: String,
    other: Option<(String, &str)>,
    speedup: Option<f64>,
    target: Option<(&Target, bool)>,
) -> Row {
    let (o, src) = other.map_or(("—".to_string(), "—".to_string()), |(v, s)| (v, s.to_string()));
    let sp = speedup.map_or("—".into(), |x| format!("{x:.2}×"));
    let (t, met) = target.map_or(("—".into(), "—".into()), |(target, met)| (target.label(), yes_no(met)));
    Row { cells: [what.into(), ours, o, src, sp, t, met] }
}

fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "**no**".into() }
}

/// A Markdown table with a blank line after it.
pub fn table(out: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

/// A reference rate as the "other" cells: value with unit, and its source.
pub fn rate(f: &Figure, unit: &str) -> Option<(String, &'static str)> {
    Some((format!("{:.1} {unit}", f.value), f.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(secs(5.0), "5.0 s");
        assert_eq!(secs(600.0), "10.0 min");
        assert_eq!(secs(3.0 * 3600.0), "3.00 h");
    }
}
