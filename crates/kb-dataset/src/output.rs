//! Writing outputs so that nothing is lost and nothing is let in: the one atomic writer of the
//! workspace, for files ([`AtomicFile`], [`write_atomic`]) and directories ([`AtomicDir`]).
//!
//! - Atomic: the data goes to a temporary file (or directory) beside the target, renamed over it
//!   only once complete, so a reader never sees half a file and a failed run leaves the old one.
//! - Only regular files are replaced. A symlink is written through: its target gets the new
//!   content and the link stays. A directory, device, FIFO or socket at the output path is
//!   refused (renaming over `/dev/full` would replace the device itself).
//! - Permissions: a new file gets what the umask allows (like any program's `open`), a replaced
//!   file keeps its mode.
//! - Temporary names carry the process id (`.NAME.kb-lora-tmp.PID.XXXXXX`): each writer removes
//!   the ones in its directory whose process is gone (an interrupted run), and a Ctrl-C handler
//!   removes those of the running process with [`remove_temps_of_this_process`].
//! - [`check_outputs`] refuses an output that is one of the run's inputs (same canonical path or
//!   same file: device and inode, which catches hard links too), before any work is done.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Between the target's name and the process id in a temporary name.
const TEMP_MARK: &str = ".kb-lora-tmp";

/// The temporaries this process is writing, for [`remove_temps_of_this_process`]. Creating a
/// temporary and registering it, the renames of a commit, and the interrupt's cleanup each hold
/// the lock throughout, so the cleanup never misses a temporary created a moment before, and
/// never runs halfway through a directory swap.
struct Registry {
    live: Vec<PathBuf>,
    /// Set by the cleanup: the process is exiting, no new temporary may start.
    stopping: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { live: Vec::new(), stopping: false });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A writer that panicked while holding the lock left a valid list behind.
    REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unregister(path: &Path) {
    registry().live.retain(|p| p != path);
}

/// Runs `make` (which creates a temporary) and registers what it made, unless the process is
/// being interrupted.
fn create_registered<T>(
    make: impl FnOnce() -> std::io::Result<T>,
    path_of: impl Fn(&T) -> &Path,
) -> std::io::Result<T> {
    let mut reg = registry();
    if reg.stopping {
        return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
    }
    let made = make()?;
    reg.live.push(path_of(&made).to_path_buf());
    Ok(made)
}

/// Removes every temporary file and directory this process is writing an output into, and lets
/// no new one start. Meant for a Ctrl-C handler that exits right after: the writers' renames then
/// fail, which no longer matters, and no partial output is left behind.
pub fn remove_temps_of_this_process() {
    let mut reg = registry();
    reg.stopping = true;
    for path in std::mem::take(&mut reg.live) {
        remove_entry(&path);
    }
}

fn remove_entry(path: &Path) {
    // A writer may still be adding files to a directory being removed: a few rounds catch up.
    let mut result = Ok(());
    for _ in 0..100 {
        result = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(_) => return,
        };
    }
    if let Err(e) = result {
        tracing::warn!("cannot remove the temporary {}: {e}", path.display());
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn refuse(path: &Path, message: impl Into<String>) -> Error {
    Error::Output { path: path.to_path_buf(), message: message.into() }
}

/// What a non-regular file is, for error messages.
fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() { "a directory" } else { "not a regular file" }
}

/// The file an output named `path` is written to: `path` itself, or for a symlink (a chain of
/// them) the file it points to, which need not exist yet. Anything else than a regular file or a
/// new name is refused, naming what is there.
pub fn resolve_output(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    // Linux gives up after 40 links too (ELOOP).
    for _ in 0..40 {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(source) => return Err(Error::Write { path: path.to_path_buf(), source }),
        };
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&current).map_err(|source| Error::Write { path: current.clone(), source })?;
            current = parent_of(&current).join(link);
        } else if meta.is_file() {
            return Ok(current);
        } else if meta.is_dir() {
            return Err(refuse(path, "it is a directory; name the file to write (e.g. a path inside it)"));
        } else {
            return Err(refuse(
                path,
                format!(
                    "it is {}, not a regular file, and writing would replace it; name a regular file or a new path",
                    kind_of(&meta)
                ),
            ));
        }
    }
    Err(refuse(path, "too many levels of symbolic links; point the output at a file"))
}

/// The permission bits of `path`, if it exists (what a replaced file or directory keeps).
fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The start of a temporary name beside `target` (see the module doc); tempfile adds the
/// random end.
fn temp_prefix(target: &Path) -> String {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // File names are limited to 255 bytes; the prefix keeps the start of long names.
    let mut short: String = name.chars().take(100).collect();
    while short.len() > 200 {
        short.pop();
    }
    format!(".{short}{TEMP_MARK}.{}.", std::process::id())
}

/// A builder of temporaries named `prefix…`, created with `mode` before the umask.
fn temp_builder(prefix: &str, _mode: u32) -> tempfile::Builder<'_, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(_mode));
    }
    b
}

/// The process id in one of our temporary names, if `name` is one.
fn temp_pid(name: &str) -> Option<u32> {
    let (head, random) = name.rsplit_once('.')?;
    let (head, pid) = head.rsplit_once('.')?;
    (name.starts_with('.') && head.ends_with(TEMP_MARK) && !random.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// Removes the temporaries in `dir` whose process no longer runs: what an interrupted or killed
/// run left. Where `/proc` is missing, nothing tells which processes run, so nothing is removed.
fn remove_stale_temps(dir: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else { continue };
        if pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        tracing::info!("removing {}: left by an interrupted run (process {pid} is gone)", path.display());
        remove_entry(&path);
    }
}

/// An output file being written: a temporary beside the target until [`AtomicFile::commit`]
/// renames it into place. Dropped without a commit, the temporary is removed and the target is
/// untouched.
pub struct AtomicFile {
    /// As the caller named it, for messages.
    shown: PathBuf,
    /// Where the rename goes (a symlink's target).
    target: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
    /// What the umask gave the temporary: the mode of a new output.
    new_mode: Option<u32>,
}

impl AtomicFile {
    /// Reserves `path`: checks it can be replaced (see [`resolve_output`]), creates its directory
    /// and the temporary, and removes stale temporaries there.
    pub fn create(path: &Path) -> Result<Self> {
        let target = resolve_output(path)?;
        let dir = parent_of(&target);
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })?;
        remove_stale_temps(dir);
        let prefix = temp_prefix(&target);
        let tmp = create_registered(|| temp_builder(&prefix, 0o666).tempfile_in(dir), |t| t.path())
            .map_err(|source| Error::Write { path: path.to_path_buf(), source })?;
        let new_mode = mode_of(tmp.path());
        Ok(Self { shown: path.to_path_buf(), target, tmp: Some(tmp), new_mode })
    }

    fn tmp(&self) -> &tempfile::NamedTempFile {
        self.tmp.as_ref().expect("the temporary lives until commit consumes self")
    }

    /// The open temporary, to write the content into.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_mut().expect("the temporary lives until commit consumes self").as_file_mut()
    }

    /// The temporary's path, for writers that open the file themselves (even ones that replace
    /// it with a file of their own: the commit syncs and sets the mode through this path).
    pub fn temp_path(&self) -> &Path {
        self.tmp().path()
    }

    /// The path as the caller gave it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// An error writing this output, for callers' own write loops.
    pub fn write_error(&self, source: std::io::Error) -> Error {
        Error::Write { path: self.shown.clone(), source }
    }

    /// Syncs the temporary, gives it the mode of the file it replaces, and renames it into place.
    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("the temporary lives until commit consumes self");
        let err = |source| Error::Write { path: self.shown.clone(), source };
        std::fs::File::open(tmp.path()).and_then(|f| f.sync_all()).map_err(err)?;
        if let Some(mode) = mode_of(&self.target).or(self.new_mode) {
            set_mode(tmp.path(), mode).map_err(err)?;
        }
        let mut reg = registry();
        reg.live.retain(|p| p != tmp.path());
        if reg.stopping {
            return Err(err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted")));
        }
        tmp.persist(&self.target).map_err(|e| err(e.error))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            unregister(tmp.path());
        }
    }
}

/// Writes `contents` to `path` atomically (see the module doc): a reader never sees half a file,
/// a failed run leaves the old file untouched, a symlink's target is updated, and a device, FIFO
/// or directory at `path` is refused.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut out = AtomicFile::create(path)?;
    out.file().write_all(contents).map_err(|e| out.write_error(e))?;
    out.commit()
}

/// An output directory being filled: a temporary directory beside the target until
/// [`AtomicDir::commit`] moves it into place, replacing the old directory whole. Dropped
/// without a commit, the temporary is removed and the target is untouched.
pub struct AtomicDir {
    target: PathBuf,
    tmp: Option<tempfile::TempDir>,
    /// What the umask gave the temporary directory.
    new_mode: Option<u32>,
}

impl AtomicDir {
    /// Creates the temporary directory beside `target` (whose parent is created), and removes
    /// stale temporaries there. `target` may exist (as a directory) or not.
    pub fn create(target: &Path) -> Result<Self> {
        if target.exists() && !target.is_dir() {
            return Err(refuse(target, "it is not a directory; choose a new path for the output directory"));
        }
        let parent = parent_of(target);
        std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
        remove_stale_temps(parent);
        let prefix = temp_prefix(target);
        let tmp = create_registered(|| temp_builder(&prefix, 0o777).tempdir_in(parent), |t| t.path())
            .map_err(|source| Error::Write { path: target.to_path_buf(), source })?;
        let new_mode = mode_of(tmp.path());
        Ok(Self { target: target.to_path_buf(), tmp: Some(tmp), new_mode })
    }

    /// The temporary directory, to fill.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("the temporary lives until commit consumes self").path()
    }

    /// Moves the filled directory to the target, replacing (and removing) a previous directory
    /// there, whose mode it keeps. The files directly in it get the mode a new file gets: some
    /// writers (safetensors' `serialize_to_file`) go through a private temporary of their own.
    pub fn commit(mut self) -> Result<PathBuf> {
        let tmp = self.tmp.take().expect("the temporary lives until commit consumes self");
        let tmp_path = tmp.keep();
        let target = self.target.clone();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        let new_mode = self.new_mode;
        let result = (|| {
            if let Some(file_mode) = new_mode.map(|m| m & 0o666) {
                for entry in std::fs::read_dir(&tmp_path).map_err(io(&target))?.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_file()) {
                        set_mode(&entry.path(), file_mode).map_err(io(&target))?;
                    }
                }
            }
            if let Some(mode) = mode_of(&target) {
                set_mode(&tmp_path, mode).map_err(io(&target))?;
            }
            // The swap runs under the registry's lock: an interrupt waits for it rather than
            // leaving the old directory aside and the target missing.
            let mut reg = registry();
            reg.live.retain(|p| p != &tmp_path);
            if reg.stopping {
                return Err(io(&target)(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted")));
            }
            // A directory cannot be renamed over a non-empty one: the old one moves aside first,
            // so the target name always points at a complete directory (or briefly at nothing).
            let mut aside = None;
            if target.exists() {
                let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let old = parent_of(&target).join(format!(".{name}{TEMP_MARK}.{}.old", std::process::id()));
                remove_entry(&old);
                std::fs::rename(&target, &old).map_err(io(&target))?;
                aside = Some(old);
            }
            if let Err(e) = std::fs::rename(&tmp_path, &target) {
                if let Some(old) = &aside {
                    let _ = std::fs::rename(old, &target);
                }
                return Err(io(&target)(e));
            }
            if let Some(old) = aside {
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            Ok(target.clone())
        })();
        if result.is_err() {
            unregister(&tmp_path);
            remove_entry(&tmp_path);
        }
        result
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            unregister(tmp.path());
        }
    }
}

/// Whether `a` and `b` are the same existing file: the same canonical path, or the same device
/// and inode (a hard link, or a path through a bind mount).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (ma.dev(), ma.ino()) == (mb.dev(), mb.ino()) {
            return true;
        }
    }
    let _ = (ma, mb);
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Where `path` would be, canonical as far as it exists (its parent when it does not), so two
/// new outputs with different spellings of one path compare equal.
fn planned_location(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    Some(parent_of(path).canonicalize().ok()?.join(name))
}

/// Checks, before any work, that no output overwrites an input or another output. Each item is
/// `(flag, path)`; the flag names it in the error. An input that is a directory (a model or an
/// adapter) stands for every file directly in it; an output that is an existing directory (one
/// replaced whole) must not hold an input.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<()> {
    for (i, &(out_flag, out)) in outputs.iter().enumerate() {
        for &(in_flag, input) in inputs {
            let clash = if input.is_dir() {
                std::fs::read_dir(input)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .find(|f| f.is_file() && same_file(out, f))
                    .map(|f| format!("is {} in {in_flag} {}", f.display(), input.display()))
            } else if same_file(out, input) {
                Some(format!("is the same file as {in_flag} {}", input.display()))
            } else if out.is_dir()
                && let (Ok(o), Ok(p)) = (out.canonicalize(), input.canonicalize())
                && p.starts_with(&o)
            {
                Some(format!("holds {in_flag} {}, and the output directory is replaced whole", input.display()))
            } else {
                None
            };
            if let Some(how) = clash {
                return Err(refuse(
                    out,
                    format!(
                        "{out_flag} {how}, which this run reads; writing would destroy that input: choose another {out_flag}"
                    ),
                ));
            }
        }
        for &(other_flag, other) in &outputs[i + 1..] {
            if planned_location(out).is_some_and(|p| Some(p) == planned_location(other)) {
                return Err(refuse(
                    out,
                    format!("{out_flag} and {other_flag} name the same file; give them different paths"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn creates_dirs_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.txt");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(names(&dir.path().join("sub")), ["out.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("made.txt"), &dangling).unwrap();
        write_atomic(&dangling, b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("made.txt")).unwrap(), b"x");
    }

    #[cfg(unix)]
    #[test]
    fn directories_fifos_and_devices_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = write_atomic(&fifo, b"x").unwrap_err().to_string();
        assert!(e.contains("pipe") && e.contains("FIFO"), "{e}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let e = write_atomic(Path::new("/dev/null"), b"x").unwrap_err().to_string();
        assert!(e.contains("/dev/null") && e.contains("device"), "{e}");
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        assert_eq!(names(dir.path()), ["pipe"]);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_follow_the_umask_and_replaced_ones_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"").unwrap();
        // What a plain create gets under this process's umask.
        let plain = mode(&p);
        std::fs::remove_file(&p).unwrap();
        write_atomic(&p, b"1").unwrap();
        assert_eq!(mode(&p), plain);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o604)).unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(mode(&p), 0o604);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".out.txt{TEMP_MARK}.{dead}.abc123"));
        std::fs::write(&stale, b"half").unwrap();
        let stale_dir = dir.path().join(format!(".model{TEMP_MARK}.{dead}.def456"));
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("w"), b"half").unwrap();
        let live = dir.path().join(format!(".x{TEMP_MARK}.{}.ghi789", std::process::id()));
        std::fs::write(&live, b"mine").unwrap();
        let other = dir.path().join(".unrelated.tmp");
        std::fs::write(&other, b"").unwrap();
        write_atomic(&dir.path().join("out.txt"), b"ok").unwrap();
        let left = names(dir.path());
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(live.exists() && other.exists() && !stale.exists() && !stale_dir.exists(), "{left:?}");
    }

    #[test]
    fn temp_names_carry_the_pid() {
        assert_eq!(temp_pid(&format!(".a.b{TEMP_MARK}.42.XyZ123")), Some(42));
        assert_eq!(temp_pid(".a.b.42.XyZ123"), None);
        assert_eq!(temp_pid(&format!("a{TEMP_MARK}.42.XyZ123")), None);
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::create(&dir.path().join("x.json")).unwrap();
        let name = f.temp_path().file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(temp_pid(&name), Some(std::process::id()), "{name}");
    }

    #[test]
    fn an_interrupt_removes_this_process_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = AtomicFile::create(&dir.path().join("big.bin")).unwrap();
        f.file().write_all(b"partial").unwrap();
        let d = AtomicDir::create(&dir.path().join("merged")).unwrap();
        std::fs::write(d.path().join("model.safetensors"), b"partial").unwrap();
        // What the Ctrl-C handler does, limited to this test's directory: tests run in parallel,
        // and the real cleanup stops every writer of the process.
        let mine: Vec<PathBuf> = {
            let mut reg = registry();
            let (mine, others) = std::mem::take(&mut reg.live).into_iter().partition(|p| p.starts_with(dir.path()));
            reg.live = others;
            mine
        };
        mine.iter().for_each(|p| remove_entry(p));
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        assert!(f.commit().is_err());
    }

    #[test]
    fn a_dir_is_replaced_whole_and_a_dropped_one_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("final_model");
        for name in ["a", "b"] {
            let d = AtomicDir::create(&target).unwrap();
            write_atomic(&d.path().join(name), b"1").unwrap();
            d.commit().unwrap();
        }
        assert_eq!(names(&target), ["b"]);
        let d = AtomicDir::create(&target).unwrap();
        std::fs::write(d.path().join("c"), b"1").unwrap();
        drop(d);
        assert_eq!(names(&target), ["b"]);
        assert_eq!(names(root.path()), ["final_model"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_dir_follows_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let d = AtomicDir::create(&root.path().join("made")).unwrap();
        let made = d.commit().unwrap();
        assert_eq!(mode(&made), mode(&plain));
    }

    #[test]
    fn outputs_over_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path().join("kb.jsonl");
        std::fs::write(&kb, b"{}").unwrap();
        let e = check_outputs(&[("--out", &kb)], &[("--kb", &kb)]).unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("--kb") && e.contains("kb.jsonl"), "{e}");
        // Another spelling of the same path.
        let other = dir.path().join("./sub/../kb.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(check_outputs(&[("--out", &other)], &[("--kb", &kb)]).is_err());
        #[cfg(unix)]
        {
            let hard = dir.path().join("hard.jsonl");
            std::fs::hard_link(&kb, &hard).unwrap();
            assert!(check_outputs(&[("--out", &hard)], &[("--kb", &kb)]).is_err());
        }
        // A file of an input directory.
        let adapter = dir.path().join("adapter");
        std::fs::create_dir(&adapter).unwrap();
        let weights = adapter.join("adapter_model.safetensors");
        std::fs::write(&weights, b"w").unwrap();
        let e = check_outputs(&[("--out", &weights)], &[("--adapter", &adapter)]).unwrap_err().to_string();
        assert!(e.contains("--adapter"), "{e}");
        // An output directory replaced whole that holds an input.
        let e = check_outputs(&[("--output", &adapter)], &[("--train", &weights)]).unwrap_err().to_string();
        assert!(e.contains("replaced whole"), "{e}");
        // Two outputs on one new path.
        let new = dir.path().join("new.json");
        let e = check_outputs(&[("--out", &new), ("--json", &dir.path().join("sub/../new.json"))], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--json"), "{e}");
        // Distinct files pass; a missing input is not an error here (its reader says so).
        check_outputs(&[("--out", &new)], &[("--kb", &kb), ("--adapter", &adapter), ("--x", &dir.path().join("no"))])
            .unwrap();
    }
}
