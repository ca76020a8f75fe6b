//! Which base model an adapter belongs to: taken from what was loaded ([`SourceInfo`]), written
//! to `adapter_config.json` (PEFT's `base_model_name_or_path` and `revision`), and from there
//! copied into the package manifest by `package-lora`.

use crate::Result;
use crate::load::{SourceInfo, gguf_sha256};

/// The base model's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseModelId {
    /// Hub id, local directory or GGUF file.
    pub name_or_path: String,
    /// For a hub model, the commit its snapshot resolved to (else the revision asked for); for a
    /// GGUF file, `sha256:<hex>` of the file; `None` for a local directory.
    pub revision: Option<String>,
}

impl BaseModelId {
    /// A base known only by name (tests, benchmarks).
    pub fn named(name: impl Into<String>) -> Self {
        BaseModelId { name_or_path: name.into(), revision: None }
    }

    /// The identity of what was loaded; a GGUF file is hashed (read whole).
    pub fn of(source: &SourceInfo) -> Result<Self> {
        Ok(match source {
            SourceInfo::Hub { id, revision, commit, .. } => BaseModelId {
                name_or_path: id.clone(),
                revision: Some(commit.clone().unwrap_or_else(|| revision.clone())),
            },
            SourceInfo::Dir { dir } => Self::named(dir.display().to_string()),
            SourceInfo::Gguf { path } => BaseModelId {
                name_or_path: path.display().to_string(),
                revision: Some(format!("sha256:{}", gguf_sha256(path)?)),
            },
        })
    }
}

impl From<&str> for BaseModelId {
    fn from(name: &str) -> Self {
        Self::named(name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn identity_of_each_source() {
        let hub = |commit: Option<&str>| SourceInfo::Hub {
            id: "Qwen/Qwen2.5-0.5B-Instruct".into(),
            revision: "main".into(),
            commit: commit.map(str::to_string),
            dir: PathBuf::from("/cache/snap"),
        };
        let id = BaseModelId::of(&hub(Some("7ae5576"))).unwrap();
        assert_eq!((id.name_or_path.as_str(), id.revision.as_deref()), ("Qwen/Qwen2.5-0.5B-Instruct", Some("7ae5576")));
        assert_eq!(BaseModelId::of(&hub(None)).unwrap().revision.as_deref(), Some("main"));
        let dir = BaseModelId::of(&SourceInfo::Dir { dir: PathBuf::from("/m") }).unwrap();
        assert_eq!(dir, BaseModelId::named("/m"));

        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("m.gguf");
        std::fs::write(&p, b"abc").unwrap();
        let g = BaseModelId::of(&SourceInfo::Gguf { path: p.clone() }).unwrap();
        assert_eq!(g.name_or_path, p.display().to_string());
        assert_eq!(
            g.revision.as_deref(),
            Some("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(BaseModelId::of(&SourceInfo::Gguf { path: tmp.path().join("gone.gguf") }).is_err());
    }
}
