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

/// Reads an `error_analysis.json` written by [`write_analysis`].
pub fn load_analysis(path: &Path) -> Result<ErrorAnalysis> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::AnalysisJson { path: path.to_path_buf(), message: e.to_string() })
}
