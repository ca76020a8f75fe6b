//! `manifest.json`: what a package holds and where it came from, plus the hashing and time
//! helpers it needs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, read_err};

/// Name of the manifest inside the archive.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Bumped when the manifest layout changes incompatibly; `--verify` rejects newer formats.
/// 2: `eval_summary` figures are fractions in 0..=1 (1: percents).
pub const FORMAT_VERSION: u32 = 2;

/// The manifest stored at the root of every package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The tool that wrote the package (`package-lora`) and its version.
    pub tool: Tool,
    /// Creation time, RFC 3339 UTC (`2025-01-31T12:00:00Z`).
    pub created_at: String,
    pub base_model: BaseModel,
    /// `adapter_config.json`, copied verbatim.
    pub lora_config: serde_json::Value,
    /// Every packaged adapter file (archive path -> hash and size); the manifest itself excluded.
    pub files: BTreeMap<String, FileHash>,
    /// Hashes of the training and eval sets, when given.
    pub data: DataHashes,
    /// The eval report's summary, when a report was given: lora-eval's `Summary`, scores and
    /// rates in fractions (0..=1) even when the report was written in percents.
    pub eval_summary: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// What the adapter must be applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseModel {
    /// Hub id or local path (`--base-model`, else adapter_config's `base_model_name_or_path`).
    pub id: Option<String>,
    /// Hub revision from adapter_config's `revision`, when present.
    pub revision: Option<String>,
    /// The GGUF base file, when one was given.
    pub gguf: Option<NamedHash>,
}

/// Hash and size of one packaged file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub sha256: String,
    pub size: u64,
}

/// Hash of a file outside the package, with the name it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedHash {
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHashes {
    pub train: Option<NamedHash>,
    pub eval: Option<NamedHash>,
}

/// Streams `reader` through SHA-256; returns the lowercase hex digest and the byte count.
pub fn sha256_reader(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Hashes a file on disk (streaming, so multi-GB GGUF files are fine).
pub fn sha256_file(path: &Path) -> Result<FileHash> {
    let file = std::fs::File::open(path).map_err(read_err(path))?;
    let (sha256, size) = sha256_reader(std::io::BufReader::new(file)).map_err(read_err(path))?;
    Ok(FileHash { sha256, size })
}

/// Hashes a file and records its displayed path.
pub fn named_hash(path: &Path) -> Result<NamedHash> {
    let FileHash { sha256, size } = sha256_file(path)?;
    Ok(NamedHash { file: path.display().to_string(), sha256, size })
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC. Hand-written (Howard Hinnant's
/// `civil_from_days`) because one timestamp does not justify a date crate.
pub fn rfc3339_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` (leap day of a year divisible by 400).
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339_utc(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn sha256_matches_published_vector() {
        let (hex, n) = sha256_reader(&b"abc"[..]).unwrap();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(n, 3);
    }
}
