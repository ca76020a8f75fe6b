//! Reading and writing `error_analysis.json` and its heat map.

use std::path::{Path, PathBuf};

use kb_dataset::write_atomic;

use crate::error::{Error, Result};
use crate::findings::ErrorAnalysis;
use crate::svg::confusion_svg;

/// Writes the analysis as pretty JSON to `json_path` and the heat map next to it (same name,
/// `.svg`), both atomically. Returns the SVG path.
pub fn write_analysis(a: &ErrorAnalysis, json_path: &Path) -> Result<PathBuf> {
    // Both texts are built before anything is written, so a failure leaves no half result.
    let json = serde_json::to_string_pretty(a).map_err(|e| Error::Options(format!("cannot serialize: {e}")))?;
    let svg = confusion_svg(a);
    let svg_path = json_path.with_extension("svg");
    write_atomic(&svg_path, svg.as_bytes())?;
    write_atomic(json_path, format!("{json}\n").as_bytes())?;
    Ok(svg_path)
}

/// Reads an `error_analysis.json` written by [`write_analysis`]. Its accuracies, thresholds and
/// similarities are fractions (0..=1); any other value is an error naming the field.
pub fn load_analysis(path: &Path) -> Result<ErrorAnalysis> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let invalid = |message: String| Error::AnalysisJson { path: path.to_path_buf(), message };
    let a: ErrorAnalysis = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    match fractions(&a).into_iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        Some((field, v)) => Err(invalid(format!("{field} is {v}, not a fraction between 0 and 1"))),
        None => Ok(a),
    }
}

/// Every fraction of an analysis, named by its place in the JSON.
fn fractions(a: &ErrorAnalysis) -> Vec<(String, f64)> {
    let mut out =
        vec![("accuracy".to_string(), a.accuracy), ("threshold".into(), a.threshold), ("floor".into(), a.floor)];
    for (i, e) in a.detailed_errors.iter().enumerate() {
        out.push((format!("detailed_errors[{i}].similarity"), e.similarity));
        out.extend(e.actual_similarity.map(|v| (format!("detailed_errors[{i}].actual_similarity"), v)));
    }
    for (topic, t) in &a.topic_errors {
        out.push((format!("topic_errors.{topic}.accuracy"), t.accuracy));
    }
    out
}
