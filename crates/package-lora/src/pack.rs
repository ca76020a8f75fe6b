//! Building a package: collect the adapter files, hash everything, write the tar.gz atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{Error, Result, read_err, write_err};
use crate::manifest::{
    BaseModel, DataHashes, FORMAT_VERSION, MANIFEST_NAME, Manifest, Tool, named_hash, rfc3339_utc, sha256_file,
};

/// The adapter's config file; a directory without it is not a PEFT adapter.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter weights; required too.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// What to package and where. Paths are taken as given (relative to the working directory).
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// The adapter directory (its top-level regular files are packaged).
    pub adapter: PathBuf,
    /// A test-qwen-lora report whose summary goes into the manifest (in fractions).
    pub report: Option<PathBuf>,
    /// Training set to hash.
    pub train: Option<PathBuf>,
    /// Eval set to hash.
    pub eval: Option<PathBuf>,
    /// Overrides adapter_config's `base_model_name_or_path`.
    pub base_model: Option<String>,
    /// A GGUF base model file to hash.
    pub base_gguf: Option<PathBuf>,
    /// The archive to write.
    pub out: PathBuf,
    /// Creation time in seconds since the epoch (the binary passes now or `SOURCE_DATE_EPOCH`).
    pub created_unix: u64,
}

/// Writes the package described by `opts` and returns its manifest. Nothing is written on error.
pub fn package(opts: &PackageOptions) -> Result<Manifest> {
    let files = adapter_files(&opts.adapter)?;
    let config_path = opts.adapter.join(ADAPTER_CONFIG);
    let lora_config = read_json(&config_path)?;
    if !lora_config.is_object() {
        return Err(Error::Invalid {
            path: config_path,
            message: "expected a JSON object (the PEFT LoraConfig)".into(),
        });
    }
    let config_str = |key: &str| lora_config.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let base_model = BaseModel {
        id: opts.base_model.clone().or_else(|| config_str("base_model_name_or_path")),
        revision: config_str("revision"),
        gguf: opts.base_gguf.as_deref().map(named_hash).transpose()?,
    };
    if base_model.id.is_none() && base_model.gguf.is_none() {
        tracing::warn!(
            "{} has no base_model_name_or_path; pass --base-model or --base-gguf to record the base",
            config_path.display()
        );
    }
    let eval_summary = opts.report.as_deref().map(read_summary).transpose()?;
    let data = DataHashes {
        train: opts.train.as_deref().map(named_hash).transpose()?,
        eval: opts.eval.as_deref().map(named_hash).transpose()?,
    };

    let mut hashes = BTreeMap::new();
    for (name, path) in &files {
        hashes.insert(name.clone(), sha256_file(path)?);
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        tool: Tool { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into() },
        created_at: rfc3339_utc(opts.created_unix),
        base_model,
        lora_config,
        files: hashes,
        data,
        eval_summary,
    };
    write_archive(opts, &manifest, &files)?;
    Ok(manifest)
}

/// The top-level regular files of the adapter dir, by archive name (sorted, so archives are
/// reproducible). Subdirectories (trainer checkpoints) are skipped with a warning.
fn adapter_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let invalid = |message: String| Error::Invalid { path: dir.to_path_buf(), message };
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(read_err(&path))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(invalid(format!("file name {:?} is not UTF-8; rename it", entry.file_name())));
        };
        if meta.is_dir() {
            tracing::warn!("skipping subdirectory {} (only top-level files are packaged)", path.display());
        } else if !meta.is_file() {
            tracing::warn!("skipping {} (not a regular file)", path.display());
        } else if name == MANIFEST_NAME {
            return Err(invalid(format!(
                "contains a {MANIFEST_NAME}, which would clash with the package manifest; remove it"
            )));
        } else {
            files.insert(name, path);
        }
    }
    for required in [ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
        if !files.contains_key(required) {
            return Err(invalid(format!(
                "no {required}; pass the directory the trainer saved the adapter to (e.g. qwen_lora_output/final_model)"
            )));
        }
    }
    Ok(files)
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).map_err(read_err(path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })
}

/// The summary of a test-qwen-lora report, read as lora-eval reads it: in fractions, whether the
/// report holds fractions or (written by an older version) percents.
fn read_summary(path: &Path) -> Result<serde_json::Value> {
    let report = lora_eval::read_report(path)?;
    serde_json::to_value(&report.summary).map_err(|e| Error::Invalid {
        path: path.to_path_buf(),
        message: format!("cannot serialize its summary for the manifest: {e}"),
    })
}

/// Streams manifest + files into a gzip'd tar in a temp file next to `out`, then renames it
/// (the workspace's one atomic writer: a symlink's target is written, a device or FIFO refused).
fn write_archive(opts: &PackageOptions, manifest: &Manifest, files: &BTreeMap<String, PathBuf>) -> Result<()> {
    let out = &opts.out;
    let mut target = kb_dataset::AtomicFile::create(out)?;
    let manifest_json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Invalid { path: out.clone(), message: format!("cannot serialize the manifest: {e}") })?;
    {
        let mut builder =
            tar::Builder::new(GzEncoder::new(std::io::BufWriter::new(target.file()), Compression::default()));
        append(&mut builder, MANIFEST_NAME, opts.created_unix, manifest_json.len() as u64, &manifest_json[..])
            .map_err(write_err(out))?;
        for (name, path) in files {
            let file = std::fs::File::open(path).map_err(read_err(path))?;
            let size = file.metadata().map_err(read_err(path))?.len();
            append(&mut builder, name, opts.created_unix, size, file).map_err(write_err(out))?;
        }
        let mut buffered = builder.into_inner().and_then(GzEncoder::finish).map_err(write_err(out))?;
        buffered.flush().map_err(write_err(out))?;
    }
    Ok(target.commit()?)
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    mtime: u64,
    size: u64,
    data: impl std::io::Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}
