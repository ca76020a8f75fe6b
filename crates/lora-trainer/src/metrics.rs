//! What a run reports: `metrics.jsonl` (one line per logging step and per evaluation), the loss
//! curve `loss.svg`, peak memory and the final [`TrainSummary`].

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use train_summary::{RunStatus, SUMMARY_FILE, TrainSummary, format_mib};

use crate::error::Result;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOSS_PLOT_FILE: &str = "loss.svg";

/// One line of `metrics.jsonl`. Train lines carry `loss`, eval lines `eval_loss` (as in
/// transformers' `log_history`), so either is easy to filter with `jq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricRecord {
    Train {
        step: usize,
        epoch: f64,
        /// Mean micro-batch loss since the previous line.
        loss: f64,
        lr: f64,
        /// Global gradient norm before clipping, at the last step of the window.
        grad_norm: f64,
        /// Real (non-padding) tokens per second of training time over the window.
        tokens_per_sec: f64,
    },
    Eval {
        step: usize,
        epoch: f64,
        eval_loss: f64,
    },
}

/// Rewrites `metrics.jsonl` whole (it is small), so the file is always complete and, after a
/// resume, holds exactly the lines up to the checkpoint plus what followed.
pub fn write_metrics(dir: &Path, records: &[MetricRecord]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("metric records serialize"));
        text.push('\n');
    }
    Ok(kb_dataset::write_atomic(&dir.join(METRICS_FILE), text.as_bytes())?)
}

/// Peak resident memory of this process (`VmHWM`), in bytes; `None` where /proc is unavailable.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The loss curve as a standalone SVG: train loss as a line, eval loss as dots, over optimizer steps.
pub fn loss_svg(records: &[MetricRecord]) -> String {
    let (w, h, left, right, top, bottom) = (800.0, 480.0, 70.0, 20.0, 40.0, 55.0);
    let train: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            MetricRecord::Train { step, loss, .. } => Some((*step as f64, *loss)),
            _ => None,
        })
        .filter(|(_, l)| l.is_finite())
        .collect();
    let eval: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            MetricRecord::Eval { step, eval_loss, .. } => Some((*step as f64, *eval_loss)),
            _ => None,
        })
        .filter(|(_, l)| l.is_finite())
        .collect();
    let all = train.iter().chain(&eval);
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all.map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.05;
    let (pw, ph) = (w - left - right, h - top - bottom);
    let sx = |x: f64| left + x / x_max * pw;
    let sy = |y: f64| top + ph - y / y_max * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Training and evaluation loss</text>"#,
        w / 2.0
    );
    // Axes with five ticks each.
    let _ = writeln!(s, r#"<path d="M{left} {top} V{} H{}" stroke="black" fill="none"/>"#, top + ph, left + pw);
    for i in 0..=5 {
        let f = i as f64 / 5.0;
        let (xv, yv) = (f * x_max, f * y_max);
        let (x, y) = (sx(xv), sy(yv));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{:.0}</text>"##,
            top + ph,
            top + ph + 5.0,
            top + ph + 18.0,
            xv
        );
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{:.2}</text>"##,
            left - 5.0,
            left - 8.0,
            y + 4.0,
            yv
        );
        if i > 0 {
            let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##, left + pw);
        }
    }
    let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">optimizer step</text>"#, left + pw / 2.0, h - 12.0);
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">loss</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    if !train.is_empty() {
        let pts: Vec<String> = train.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        let _ =
            writeln!(s, r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##, pts.join(" "));
    }
    for &(x, y) in &eval {
        let _ = writeln!(s, r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#d62728"/>"##, sx(x), sy(y));
    }
    // Legend.
    let lx = left + pw - 150.0;
    let _ = writeln!(
        s,
        r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#1f77b4" stroke-width="2"/><text x="{}" y="{}">train loss</text>"##,
        top + 10.0,
        lx + 25.0,
        top + 10.0,
        lx + 32.0,
        top + 14.0
    );
    let _ = writeln!(
        s,
        r##"<circle cx="{}" cy="{}" r="5" fill="#d62728"/><text x="{}" y="{}">eval loss (per epoch)</text>"##,
        lx + 12.5,
        top + 30.0,
        lx + 32.0,
        top + 34.0
    );
    s.push_str("</svg>\n");
    s
}

/// Writes `loss.svg` into `dir`.
pub fn write_loss_svg(dir: &Path, records: &[MetricRecord]) -> Result<()> {
    Ok(kb_dataset::write_atomic(&dir.join(LOSS_PLOT_FILE), loss_svg(records).as_bytes())?)
}

/// Writes `summary.json` into `dir`.
pub fn write_summary(dir: &Path, summary: &TrainSummary) -> Result<()> {
    let text = serde_json::to_string_pretty(summary).expect("summary serializes");
    Ok(kb_dataset::write_atomic(&dir.join(SUMMARY_FILE), text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<MetricRecord> {
        vec![
            MetricRecord::Train { step: 5, epoch: 0.5, loss: 2.5, lr: 1e-4, grad_norm: 1.2, tokens_per_sec: 80.0 },
            MetricRecord::Train { step: 10, epoch: 1.0, loss: 1.5, lr: 3e-4, grad_norm: 0.8, tokens_per_sec: 81.0 },
            MetricRecord::Eval { step: 10, epoch: 1.0, eval_loss: 1.7 },
        ]
    }

    #[test]
    fn jsonl_lines_round_trip_and_are_distinguishable() {
        let dir = tempfile::tempdir().unwrap();
        write_metrics(dir.path(), &records()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        let back: Vec<MetricRecord> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, records());
        assert!(text.lines().nth(2).unwrap().contains("\"eval_loss\":1.7"));
        assert!(!text.lines().nth(2).unwrap().contains("\"loss\""));
    }

    #[test]
    fn svg_has_one_line_point_per_record_and_labels() {
        let svg = loss_svg(&records());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        let poly = svg.lines().find(|l| l.starts_with("<polyline")).unwrap();
        assert_eq!(poly.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').count(), 2);
        // One eval dot plus the legend's.
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("optimizer step") && svg.contains(">loss<"));
        // Empty input still gives a valid (empty) plot.
        assert!(loss_svg(&[]).contains("</svg>"));
    }

    #[test]
    fn vm_hwm_is_parsed_in_bytes() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS: 1 kB\n"), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_memory_bytes().unwrap() > 0);
        }
    }
}
