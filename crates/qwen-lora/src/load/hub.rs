//! Hub ids: the Hugging Face cache first, so a cached model loads with no network, then hf-hub's
//! download into that same cache.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

use crate::{Error, Result};

const FILES: [&str; 2] = ["config.json", "tokenizer.json"];
const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// Where the hub cache is and whether the network may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The hub cache (`…/huggingface/hub`, holding `models--org--name/`).
    pub cache_dir: PathBuf,
    /// Hub endpoint; `None` means hf-hub's default, `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

impl HubOptions {
    /// The settings the Python `huggingface_hub` uses: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`; `HF_ENDPOINT`; `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let cache_dir = if let Some(c) = var("HF_HUB_CACHE") {
            PathBuf::from(c)
        } else if let Some(h) = var("HF_HOME") {
            PathBuf::from(h).join("hub")
        } else {
            // No home directory at all is rare; a relative cache then still gives a clear
            // "not in the cache" message instead of a panic inside hf-hub.
            let home = var("HOME").or_else(|| var("USERPROFILE")).unwrap_or_else(|| ".".into());
            PathBuf::from(home).join(".cache").join("huggingface").join("hub")
        };
        let offline =
            var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self { cache_dir, endpoint: var("HF_ENDPOINT"), offline }
    }

    /// Offline use of the cache rooted at `cache_dir`.
    pub fn offline(cache_dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: cache_dir.into(), endpoint: None, offline: true }
    }
}

/// A resolved snapshot directory.
pub(super) struct Snapshot {
    pub dir: PathBuf,
    pub revision: String,
    pub commit: Option<String>,
}

#[derive(Deserialize)]
struct Index {
    weight_map: std::collections::HashMap<String, String>,
}

/// The files that make a snapshot usable, or the first one missing.
fn missing_file(dir: &Path) -> Option<String> {
    if let Some(f) = FILES.iter().find(|f| !dir.join(f).is_file()) {
        return Some(f.to_string());
    }
    if dir.join(SINGLE).is_file() {
        return None;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(INDEX)) else {
        return Some(SINGLE.to_string());
    };
    let Ok(index) = serde_json::from_str::<Index>(&text) else {
        return Some(INDEX.to_string());
    };
    index.weight_map.values().find(|f| !dir.join(f).is_file()).cloned()
}

/// Looks the model up in the cache: `refs/<revision>` names the commit (hf-hub's own lookup);
/// a revision that is itself a commit hash is a snapshot directory name.
fn from_cache(id: &str, revision: &str, opts: &HubOptions) -> (Option<Snapshot>, Option<String>) {
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let repo_dir = opts.cache_dir.join(repo.folder_name());
    let cached_config = Cache::new(opts.cache_dir.clone()).repo(repo).get("config.json");
    let dir = match cached_config.as_deref().and_then(Path::parent) {
        Some(d) => d.to_path_buf(),
        None => repo_dir.join("snapshots").join(revision),
    };
    if !dir.is_dir() {
        return (None, None);
    }
    match missing_file(&dir) {
        None => {
            let commit = dir.file_name().map(|c| c.to_string_lossy().into_owned());
            (Some(Snapshot { dir, revision: revision.to_string(), commit }), None)
        }
        Some(m) => (None, Some(format!("{} lacks {m}", dir.display()))),
    }
}

/// Resolves a hub model to a complete snapshot directory, downloading what the cache lacks.
pub(super) fn resolve_hub(id: &str, revision: Option<&str>, opts: &HubOptions) -> Result<Snapshot> {
    let revision = revision.unwrap_or("main");
    let (found, partial) = from_cache(id, revision, opts);
    if let Some(s) = found {
        tracing::debug!(dir = %s.dir.display(), "using the hub cache");
        return Ok(s);
    }
    let cache_note = match &partial {
        Some(p) => format!("the cache copy is incomplete ({p})"),
        None => format!("it is not in the Hugging Face cache ({})", opts.cache_dir.display()),
    };
    let advice = "Pass --model DIR with a local Hugging Face model directory (config.json, tokenizer.json, \
        *.safetensors) or --gguf FILE with a GGUF checkpoint, or set HF_HOME to a cache that holds it";
    let local_note = " (and there is no local directory of that name)";
    if opts.offline {
        return Err(Error::msg(format!(
            "cannot load model '{id}' (revision {revision}){local_note}: {cache_note}, and HF_HUB_OFFLINE forbids downloading it. {advice}."
        )));
    }
    download(id, revision, opts).map_err(|e| {
        Error::msg(format!(
            "cannot load model '{id}' (revision {revision}){local_note}: {cache_note}, and downloading it failed: {e}. {advice}."
        ))
    })
}

/// Downloads config, tokenizer and weights with hf-hub into the cache.
fn download(id: &str, revision: &str, opts: &HubOptions) -> std::result::Result<Snapshot, String> {
    let mut builder = ApiBuilder::from_cache(Cache::new(opts.cache_dir.clone()))
        .with_progress(std::io::stderr().is_terminal())
        .with_retries(1);
    if let Some(ep) = &opts.endpoint {
        builder = builder.with_endpoint(ep.clone());
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string()));
    let info = repo.info().map_err(|e| e.to_string())?;
    let has = |f: &str| info.siblings.iter().any(|s| s.rfilename == f);
    let get = |f: &str| {
        tracing::info!(file = f, model = id, "downloading");
        repo.get(f).map_err(|e| format!("{f}: {e}"))
    };
    let config = get("config.json")?;
    get("tokenizer.json")?;
    if has(INDEX) {
        let index_path = get(INDEX)?;
        let text = std::fs::read_to_string(&index_path).map_err(|e| format!("{}: {e}", index_path.display()))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| format!("{INDEX}: {e}"))?;
        let shards: std::collections::BTreeSet<&String> = index.weight_map.values().collect();
        for s in shards {
            get(s)?;
        }
    } else if has(SINGLE) {
        get(SINGLE)?;
    } else {
        return Err(format!("the repository has neither {SINGLE} nor {INDEX}"));
    }
    let dir = config.parent().map(Path::to_path_buf).ok_or("downloaded config.json has no parent directory")?;
    Ok(Snapshot { dir, revision: revision.to_string(), commit: Some(info.sha) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_settings_follow_huggingface_hub() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let o = HubOptions::from_vars(vars(&[("HF_HOME", "/h"), ("HOME", "/home/u")]));
        assert_eq!(o.cache_dir, PathBuf::from("/h/hub"));
        assert!(!o.offline);
        let o = HubOptions::from_vars(vars(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h"), ("HF_HUB_OFFLINE", "1")]));
        assert_eq!(o.cache_dir, PathBuf::from("/c"));
        assert!(o.offline);
        let o = HubOptions::from_vars(vars(&[("HOME", "/home/u"), ("HF_ENDPOINT", "http://mirror")]));
        assert_eq!(o.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(o.endpoint.as_deref(), Some("http://mirror"));
    }
}
